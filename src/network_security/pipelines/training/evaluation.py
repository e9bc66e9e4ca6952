"""Evaluation helpers: metrics with phishing as the positive class, and the report charts.

Precision, recall and F1 are those of the phishing class (the one an analyst acts on); ROC-AUC
ranks sites by P(phishing). The charts are plotly figures, so kedro-viz previews them and MLflow
stores them as artifacts.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from network_security.model import flags_phishing

METRIC_NAMES: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc")


def classification_metrics(
    labels: np.ndarray, probability: np.ndarray, threshold: float, phishing_label: int
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (phishing positive) and ROC-AUC of P(phishing).

    A site is predicted phishing when ``probability >= threshold``. ROC-AUC is NaN when only
    one label is present.
    """
    is_phishing = np.asarray(labels) == phishing_label
    predicted = flags_phishing(probability, threshold)
    metrics = {
        "accuracy": float(accuracy_score(is_phishing, predicted)),
        "precision": float(precision_score(is_phishing, predicted, zero_division=0)),
        "recall": float(recall_score(is_phishing, predicted, zero_division=0)),
        "f1": float(f1_score(is_phishing, predicted, zero_division=0)),
        "roc_auc": (
            float(roc_auc_score(is_phishing, probability))
            if 0 < is_phishing.sum() < len(is_phishing)
            else float("nan")
        ),
    }
    return metrics


THRESHOLD_OBJECTIVES: tuple[str, ...] = ("accuracy", "f1")


def threshold_objective(
    labels: np.ndarray, probability: np.ndarray, threshold: float, phishing_label: int, name: str
) -> float:
    """The value of the threshold objective (``accuracy`` or ``f1`` of the phishing class)."""
    return float(
        threshold_objectives(labels, probability, np.array([threshold]), phishing_label, name)[0]
    )


def threshold_objectives(
    labels: np.ndarray,
    probability: np.ndarray,
    thresholds: np.ndarray,
    phishing_label: int,
    name: str,
) -> np.ndarray:
    """The objective (``accuracy`` or ``f1`` of the phishing class) at every threshold at once.

    Equal to ``classification_metrics(...)[name]`` at each threshold (a site is phishing when
    ``probability >= threshold``), from one sort instead of one pass per threshold.
    """
    if name not in THRESHOLD_OBJECTIVES:
        raise ValueError(
            f"training.threshold.objective must be 'accuracy' or 'f1', got {name!r}; fix "
            "conf/base/parameters_training.yml."
        )
    is_phishing = np.asarray(labels) == phishing_label
    order = np.sort(np.asarray(probability, dtype=float))
    order_phishing = np.sort(np.asarray(probability, dtype=float)[is_phishing])
    thresholds = np.asarray(thresholds, dtype=float)
    flagged = len(order) - np.searchsorted(order, thresholds, side="left")
    caught = len(order_phishing) - np.searchsorted(order_phishing, thresholds, side="left")
    if name == "accuracy":
        correct = caught + (len(order) - is_phishing.sum()) - (flagged - caught)
        return correct / max(len(order), 1)
    denominator = flagged + is_phishing.sum()
    return np.where(denominator > 0, 2 * caught / np.maximum(denominator, 1), 0.0)


PERMUTATION_BATCH_ROWS = 262_144
"""Rows per ``predict_proba`` call of ``permutation_importances`` (bounds its memory)."""


def permutation_importances(
    estimator: Any,
    features: pd.DataFrame,
    labels: np.ndarray,
    n_repeats: int,
    random_state: int,
    workers: int = 1,
) -> np.ndarray:
    """Permutation importance of every column: the drop in ROC-AUC when it is shuffled.

    The same permutations, hence the same numbers, as scikit-learn's
    ``permutation_importance(estimator, features, labels, scoring="roc_auc",
    n_repeats=n_repeats, random_state=random_state)``, but the permuted copies are stacked and
    scored in a few large ``predict_proba`` calls (split over ``workers`` threads; tree
    traversals release the GIL) instead of one call per column and repeat: per-call overheads
    are most of the cost of a call on a few thousand rows.

    Returns:
        ``(n_columns, n_repeats)`` array of baseline ROC-AUC minus permuted ROC-AUC.
    """
    values = features.to_numpy()
    n_rows, n_columns = values.shape
    seed = np.random.RandomState(random_state).randint(np.iinfo(np.int32).max + 1)
    permuted: list[tuple[int, np.ndarray]] = []  # (column, its values), column-major
    for column in range(n_columns):
        generator = np.random.RandomState(seed)  # scikit-learn reseeds for every column
        order = np.arange(n_rows)
        shuffled = values[:, column]
        for _ in range(n_repeats):
            generator.shuffle(order)
            shuffled = shuffled[order]  # scikit-learn shuffles the shuffled column again
            permuted.append((column, shuffled))

    def legitimate_probability(block: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(block, columns=features.columns)
        return estimator.predict_proba(frame)[:, 1]  # the scorer's column: classes_[1]

    copies = max(1, PERMUTATION_BATCH_ROWS // max(n_rows, 1))
    scores = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        baseline = roc_auc_score(labels, legitimate_probability(values))
        for start in range(0, len(permuted), copies):
            batch = permuted[start : start + copies]
            stacked = np.tile(values, (len(batch), 1))
            for index, (column, shuffled) in enumerate(batch):
                stacked[index * n_rows : (index + 1) * n_rows, column] = shuffled
            parts = np.array_split(stacked, max(1, min(workers, len(batch))))
            probability = np.concatenate(list(pool.map(legitimate_probability, parts)))
            scores.extend(
                roc_auc_score(labels, probability[index * n_rows : (index + 1) * n_rows])
                for index in range(len(batch))
            )
    return baseline - np.asarray(scores).reshape(n_columns, n_repeats)


def confusion_matrix_figure(
    labels: np.ndarray,
    predictions: np.ndarray,
    phishing_label: int,
    legitimate_label: int,
    title: str,
) -> go.Figure:
    """Heatmap of counts: rows the actual class, columns the predicted one (phishing first)."""
    order = [phishing_label, legitimate_label]
    counts = confusion_matrix(labels, predictions, labels=order)
    names = ["phishing", "legitimate"]
    total = max(int(counts.sum()), 1)
    text = [[f"{value}<br>({value / total:.1%})" for value in row] for row in counts]
    figure = go.Figure(
        go.Heatmap(
            z=counts,
            x=[f"predicted {name}" for name in names],
            y=[f"actual {name}" for name in names],
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    figure.update_layout(title=title, yaxis={"autorange": "reversed"}, width=520, height=460)
    return figure


def roc_curve_figure(
    labels: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    phishing_label: int,
    title: str,
) -> go.Figure:
    """ROC curve of P(phishing), with the chance line and the model's operating point."""
    is_phishing = np.asarray(labels) == phishing_label
    fpr, tpr, _ = roc_curve(is_phishing, probability)
    auc = roc_auc_score(is_phishing, probability)
    predicted = flags_phishing(probability, threshold)
    point_fpr = float((predicted & ~is_phishing).sum() / max((~is_phishing).sum(), 1))
    point_tpr = float((predicted & is_phishing).sum() / max(is_phishing.sum(), 1))
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"model (AUC {auc:.4f})"))
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash"})
    )
    figure.add_trace(
        go.Scatter(
            x=[point_fpr],
            y=[point_tpr],
            mode="markers",
            marker={"size": 10},
            name=f"threshold {threshold:.2f}",
        )
    )
    figure.update_layout(
        title=title,
        xaxis_title="false positive rate (legitimate flagged as phishing)",
        yaxis_title="true positive rate (phishing caught)",
        width=620,
        height=520,
    )
    return figure


def feature_importance_figure(importances: pd.DataFrame, title: str) -> go.Figure:
    """Horizontal bars of ``importance_mean`` (with ``importance_std``), largest on top."""
    ordered = importances.sort_values("importance_mean", ascending=True)
    figure = go.Figure(
        go.Bar(
            x=ordered["importance_mean"],
            y=ordered["feature"],
            orientation="h",
            error_x={"type": "data", "array": ordered["importance_std"]},
        )
    )
    figure.update_layout(
        title=title,
        xaxis_title="mean decrease in test ROC-AUC when the feature is shuffled",
        height=max(400, 22 * len(ordered)),
        width=760,
        margin={"l": 220},
    )
    return figure


def importance_frame(
    feature_names: Sequence[str], means: np.ndarray, stds: np.ndarray
) -> pd.DataFrame:
    """Importances as a frame sorted by decreasing mean."""
    frame = pd.DataFrame(
        {"feature": list(feature_names), "importance_mean": means, "importance_std": stds}
    )
    return frame.sort_values("importance_mean", ascending=False, ignore_index=True)
