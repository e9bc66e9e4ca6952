"""Evaluation: metrics with phishing as the positive class, the report charts, and the nodes
that score the evaluation model on the held-out split.

Precision, recall and F1 are those of the phishing class (the one an analyst acts on); ROC-AUC
ranks sites by P(phishing). The charts are plotly figures, so kedro-viz previews them and MLflow
stores them as artifacts.

nodes   evaluate_model, plot_confusion_matrix, plot_roc_curve, compute_feature_importances ->
        plot_feature_importances, collect_mlflow_metrics
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from joblib import parallel_config
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from threadpoolctl import threadpool_limits

from network_security.model import PhishingModel, flags_phishing
from network_security.pipelines.training.params import TrainingParams
from network_security.schema import Schema, record_columns, target_column
from network_security.validator import require_columns

logger = logging.getLogger(__name__)


def labels_of(schema: Schema) -> tuple[int, int]:
    """(phishing, legitimate) label values from the schema."""
    return int(schema["target"]["phishing"]), int(schema["target"]["legitimate"])


def check_frame(frame: pd.DataFrame, schema: Schema, name: str) -> None:
    """Raise if ``frame`` lacks a schema column or is empty, naming the dataset and column."""
    require_columns(
        frame.columns, record_columns(schema), f"'{name}'", "columns of a labelled record"
    )
    if frame.empty:
        raise ValueError(
            f"'{name}' is empty: nothing to train or evaluate on. Ingest records and run the "
            "feature_engineering pipeline first."
        )


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


# ------------------------------------------------------------------------------ nodes


def _test_probability(
    model: PhishingModel, model_input_test: pd.DataFrame, schema: Schema
) -> tuple[np.ndarray, np.ndarray]:
    check_frame(model_input_test, schema, "model_input_test")
    labels = model_input_test[target_column(schema)].to_numpy()
    # scored once here: scikit-learn's predict_proba, without compiling the model
    return labels, model.phishing_probability(model_input_test, compiled=False)


def evaluate_model(
    fitted_model: PhishingModel, model_input_test: pd.DataFrame, schema: Schema
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC-AUC on the test split (phishing positive)."""
    labels, probability = _test_probability(fitted_model, model_input_test, schema)
    metrics = classification_metrics(
        labels, probability, fitted_model.threshold, fitted_model.phishing_label
    )
    logger.info(
        "Test split (%d rows, no feature vector shared with training): %s",
        len(labels),
        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
    )
    return metrics


def plot_confusion_matrix(
    fitted_model: PhishingModel, model_input_test: pd.DataFrame, schema: Schema
) -> go.Figure:
    """Confusion matrix of the test split at the model's threshold."""
    check_frame(model_input_test, schema, "model_input_test")
    return confusion_matrix_figure(
        model_input_test[target_column(schema)].to_numpy(),
        fitted_model.predict(model_input_test, compiled=False),  # scored once: not compiled
        fitted_model.phishing_label,
        fitted_model.legitimate_label,
        f"Confusion matrix, test split (threshold {fitted_model.threshold:.2f})",
    )


def plot_roc_curve(
    fitted_model: PhishingModel, model_input_test: pd.DataFrame, schema: Schema
) -> go.Figure:
    """ROC curve of P(phishing) on the test split, with the model's operating point."""
    labels, probability = _test_probability(fitted_model, model_input_test, schema)
    return roc_curve_figure(
        labels,
        probability,
        fitted_model.threshold,
        fitted_model.phishing_label,
        "ROC curve, test split (phishing = positive class)",
    )


class _CompiledClassifier(ClassifierMixin, BaseEstimator):
    """``model`` as the classifier scikit-learn's scorers expect, its probabilities from the
    model's compiled predictor (the same numbers as ``predict_proba``).

    ``permutation_importance`` scores one copy of the test rows per feature and repeat: 90
    calls for 30 features. Each ``predict_proba`` of the scikit-learn pipeline costs tens of
    ms of fixed overhead on a few thousand rows (HistGradientBoosting's own column transformer
    runs per call), twice the whole node time of this compiled path.
    """

    def __init__(self, model: PhishingModel | None = None) -> None:
        self.model = model

    def fit(self, X: pd.DataFrame, y: object = None) -> _CompiledClassifier:
        """Nothing to fit: the model is fitted."""
        return self

    @property
    def classes_(self) -> np.ndarray:
        return np.sort([self.model.phishing_label, self.model.legitimate_label])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities of ``classes_``, from the compiled P(phishing)."""
        phishing = self.model.phishing_probability(X)
        if self.classes_[0] == self.model.phishing_label:
            return np.column_stack([phishing, 1 - phishing])
        return np.column_stack([1 - phishing, phishing])


def compute_feature_importances(
    fitted_model: PhishingModel,
    model_input_test: pd.DataFrame,
    schema: Schema,
    training: TrainingParams,
) -> pd.DataFrame:
    """Permutation importance of each schema feature: the drop in test ROC-AUC when shuffled.

    scikit-learn's ``permutation_importance``: model-agnostic (it also covers ensembles and the
    engineered counts, which move with the features they count), measured on rows the model
    never saw. The probabilities come from the model's compiled predictor
    (``_CompiledClassifier``); the columns are scored on ``training.n_jobs`` threads.
    """
    check_frame(model_input_test, schema, "model_input_test")
    features = model_input_test[fitted_model.feature_columns]
    labels = model_input_test[target_column(schema)].to_numpy()
    with (
        parallel_config(backend="threading"),
        threadpool_limits(limits=training.threads_per_fit),
    ):
        result = permutation_importance(
            _CompiledClassifier(fitted_model),
            features,
            labels,
            scoring="roc_auc",
            n_repeats=training.feature_importance.n_repeats,
            random_state=training.random_state,
            n_jobs=training.n_jobs,
        )
    return importance_frame(
        fitted_model.feature_columns, result.importances_mean, result.importances_std
    )


def plot_feature_importances(feature_importances: pd.DataFrame) -> go.Figure:
    """Bar chart of the permutation importances."""
    return feature_importance_figure(
        feature_importances, "Feature importance (permutation, test split)"
    )


def collect_mlflow_metrics(
    test_metrics: dict[str, float],
    best_candidate: dict[str, Any],
    threshold_choice: dict[str, Any],
    cv_results: pd.DataFrame,
    quality_gate: dict[str, Any],
    operating_points: dict[str, float] | None = None,
) -> dict[str, dict[str, float]]:
    """Every metric of the run in kedro-mlflow's format (``{name: {"value": v, "step": 0}}``).

    ``test_<metric>`` on the test split; ``cv_<metric>`` of the selected configuration;
    ``cv_<metric>.<candidate>`` of each candidate's best configuration;
    ``cv_accuracy_baseline`` and ``cv_accuracy_vs_baseline`` when a baseline is set; the
    operating points (``allow_below``, ``block_above``) and their out-of-fold rates
    (``expected_missed_phishing``, ``expected_false_block``, ``expected_review_share``).
    """
    metrics: dict[str, float] = {f"test_{k}": v for k, v in test_metrics.items()}
    for key in ("cv_accuracy", "cv_accuracy_std", "cv_roc_auc", "cv_roc_auc_std"):
        metrics[key] = best_candidate[key]
    for key in ("oof_accuracy_distinct", "oof_roc_auc_distinct"):
        metrics[f"cv_{key}"] = best_candidate[key]
    if "baseline" in best_candidate:
        metrics["cv_accuracy_baseline"] = best_candidate["baseline"]["cv_accuracy"]
        metrics["cv_accuracy_vs_baseline"] = best_candidate["baseline"]["difference"]
    metrics["decision_threshold"] = threshold_choice["threshold"]
    for key, value in threshold_choice["cv_metrics_at_threshold"].items():
        metrics[f"cv_oof_{key}_at_threshold"] = value
    best_per_candidate = cv_results.sort_values("cv_roc_auc", ascending=False).drop_duplicates(
        "candidate"
    )
    for row in best_per_candidate.itertuples():
        metrics[f"cv_roc_auc.{row.candidate}"] = row.cv_roc_auc
        metrics[f"cv_accuracy.{row.candidate}"] = row.cv_accuracy
    metrics["quality_gate_passed"] = 1.0 if quality_gate["passed"] else 0.0
    for key, value in (operating_points or {}).items():
        if not key.startswith("max_"):  # the budgets are parameters of the run
            metrics[key] = value
    return {
        name: {"value": float(value), "step": 0}
        for name, value in metrics.items()
        if value is not None and np.isfinite(value)
    }
