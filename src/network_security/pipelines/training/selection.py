"""Model selection: duplicate-aware cross-validation of the candidates, the choice of one
configuration, its decision threshold, and its fits.

nodes   search_candidates -> select_best_candidate -> choose_threshold
        -> fit_evaluation_model, fit_production_model; build_model_selection_report

Cross-validation is scikit-learn's ``cross_val_predict`` on ``StratifiedGroupKFold`` folds with
one group per distinct feature vector: about half the rows of the phishing data set repeat
another row's vector, and a plain K-fold would score a model on copies of its own training
rows. The fits run on ``training.cv_jobs`` joblib workers (``parallel_backend``), each limited
to ``threads_per_fit`` OpenMP/BLAS threads, so the machine's cores are used once.

Selection does not chase noise: configurations whose mean CV score is within the standard
error of the best one (fold-to-fold std / sqrt(n_splits)) are tied with it, and a tie goes to
the first of them in ``training.preference``. Retraining on the same records then keeps the
champion's configuration, and the selection report says when a tie decided.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_config
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import cross_val_predict
from threadpoolctl import threadpool_limits

from network_security.features import feature_vector_codes, grouped_folds
from network_security.model import PhishingModel, flags_phishing
from network_security.pipelines.training.evaluation import (
    check_frame,
    classification_metrics,
    labels_of,
    threshold_objective,
    threshold_objectives,
)
from network_security.pipelines.training.params import TrainingParams
from network_security.pipelines.training.search import (
    Configuration,
    build_selected_model,
    configure_models,
    expand_search_space,
)
from network_security.sanitize import jsonable
from network_security.schema import Schema, feature_columns, target_column

logger = logging.getLogger(__name__)

Folds = Sequence[tuple[np.ndarray, np.ndarray]]

SCORE_KEYS = (
    "cv_accuracy",
    "cv_accuracy_std",
    "cv_roc_auc",
    "cv_roc_auc_std",
    "oof_accuracy",
    "oof_roc_auc",
    "oof_accuracy_distinct",
    "oof_roc_auc_distinct",
)
"""The CV scores of a configuration (see ``summarize_configuration``)."""


# ------------------------------------------------------------------------------ CV scores


def score_probabilities(
    labels: np.ndarray, probability: np.ndarray, phishing_label: int, threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy (at ``threshold``) and ROC-AUC, phishing as the positive class."""
    is_phishing = labels == phishing_label
    predicted = flags_phishing(probability, threshold)
    scores = {"accuracy": float(accuracy_score(is_phishing, predicted))}
    scores["roc_auc"] = (
        float(roc_auc_score(is_phishing, probability))
        if 0 < is_phishing.sum() < len(is_phishing)
        else float("nan")
    )
    return scores


def distinct_records(features: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each distinct (feature vector, label) record."""
    frame = features.reset_index(drop=True).assign(__label=labels)
    return ~frame.duplicated().to_numpy()


def summarize_configuration(
    config_id: str,
    candidate: str,
    params: dict[str, Any],
    pooled: np.ndarray,
    labels: np.ndarray,
    folds: Folds,
    phishing_label: int,
    distinct_rows: np.ndarray,
) -> dict[str, Any]:
    """One row of CV results from a configuration's out-of-fold P(phishing) ``pooled``.

    ``cv_*`` are the mean (and std) of the per-fold scores; ``oof_*`` the scores of the pooled
    out-of-fold predictions; ``oof_*_distinct`` the same on the distinct records only (each
    (feature vector, label) pair once; ``distinct_rows`` marks their first occurrences), which
    tells how the model does per site rather than per repeated row.
    """
    folded = [score_probabilities(labels[test], pooled[test], phishing_label) for _, test in folds]
    pooled_scores = score_probabilities(labels, pooled, phishing_label)
    distinct = score_probabilities(labels[distinct_rows], pooled[distinct_rows], phishing_label)
    row: dict[str, Any] = {"config_id": config_id, "candidate": candidate, "params": params}
    for metric in ("accuracy", "roc_auc"):
        values = [scores[metric] for scores in folded]  # NaN when a fold has one label
        row[f"cv_{metric}"], row[f"cv_{metric}_std"] = float(np.mean(values)), float(np.std(values))
    row.update({f"oof_{metric}": pooled_scores[metric] for metric in ("accuracy", "roc_auc")})
    row.update({f"oof_{metric}_distinct": distinct[metric] for metric in ("accuracy", "roc_auc")})
    return row


def cross_validated_probabilities(
    models: Mapping[str, Any],
    features: pd.DataFrame,
    labels: np.ndarray,
    folds: Folds,
    phishing_label: int,
    training: TrainingParams,
) -> pd.DataFrame:
    """Out-of-fold P(phishing) of every model (one column per ``config_id``), by scikit-learn's
    ``cross_val_predict`` on ``folds``.

    The fits of a model run on ``training.cv_jobs`` workers of ``training.parallel_backend``:
    ``threading`` (threads of this process, no start-up; one process-wide limit of
    ``threads_per_fit`` OpenMP/BLAS threads) or ``loky`` (worker processes with that limit each).
    """
    column = list(np.unique(labels)).index(phishing_label)
    threads = training.threads_per_fit
    if training.parallel_backend == "threading":
        context, limits = parallel_config(backend="threading"), threadpool_limits(limits=threads)
    else:
        context = parallel_config(backend="loky", inner_max_num_threads=threads)
        limits = nullcontext()
    with context, limits:
        probabilities = {
            config_id: cross_val_predict(
                model, features, labels, cv=folds, n_jobs=training.cv_jobs, method="predict_proba"
            )[:, column]
            for config_id, model in models.items()
        }
    return pd.DataFrame(probabilities, index=features.index)


def score_ensembles(
    results: pd.DataFrame,
    oof: pd.DataFrame,
    training: TrainingParams,
    scoring: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add soft-voting ensembles of the candidates' best configurations to the CV results.

    An ensemble averages the out-of-fold P(phishing) of each member candidate's best
    configuration (by ``selection_metric``). On the same folds this is exactly the CV of the
    soft-voting ensemble of those configurations, so ensembles cost no extra fits.
    ``scoring`` holds ``labels``, ``folds``, ``phishing_label`` and ``distinct_rows``.
    """
    rows, columns = [], {}
    order = [f"cv_{training.selection_metric}", "config_id"]
    for name, spec in training.ensembles.items():
        best = {
            member: results[results["candidate"] == member]
            .sort_values(order, ascending=[False, True])
            .iloc[0]
            for member in spec.members
        }
        config_id = f"{name}#0"
        columns[config_id] = oof[[row["config_id"] for row in best.values()]].mean(axis=1)
        params = {member: dict(row["params"]) for member, row in best.items()}
        rows.append(
            summarize_configuration(
                config_id, name, params, columns[config_id].to_numpy(), **scoring
            )
        )
    if not rows:
        return results, oof
    return (
        pd.concat([results, pd.DataFrame(rows)], ignore_index=True),
        pd.concat([oof, pd.DataFrame(columns, index=oof.index)], axis=1),
    )


# ------------------------------------------------------------------------------ nodes


def search_candidates(
    model_input_train: pd.DataFrame, schema: Schema, training: TrainingParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grouped cross-validation of every candidate configuration on the training split.

    Returns:
        ``(cv_results, oof_probabilities)``: one row per configuration (and ensemble) with the
        mean and standard deviation of its fold accuracies and ROC-AUCs; and the out-of-fold
        P(phishing) of every configuration (one column per ``config_id``).
    """
    check_frame(model_input_train, schema, "model_input_train")
    features = feature_columns(schema)
    labels = model_input_train[target_column(schema)].to_numpy()
    folds = grouped_folds(
        model_input_train, labels, features, training.cv.n_splits, training.cv.random_state,
        "Ingest more records or lower training.cv.n_splits.",
    )  # fmt: skip
    configurations: list[Configuration] = expand_search_space(training.candidates)
    models = configure_models(configurations, training, features)
    started = time.perf_counter()
    frame = model_input_train[features]
    scoring = {
        "labels": labels,
        "folds": folds,
        "phishing_label": labels_of(schema)[0],
        "distinct_rows": distinct_records(frame, labels),
    }
    oof = cross_validated_probabilities(
        models, frame, labels, folds, scoring["phishing_label"], training
    )
    results = pd.DataFrame(
        [
            summarize_configuration(
                c.config_id, c.candidate, dict(c.params), oof[c.config_id].to_numpy(), **scoring
            )
            for c in configurations
        ]
    )
    results, oof = score_ensembles(results, oof, training, scoring)
    logger.info(
        "Cross-validated %d configuration(s) of %d candidate(s) on %d folds in %.1f s:\n%s",
        len(configurations), results["candidate"].nunique(), len(folds),
        time.perf_counter() - started,
        results[["config_id", "cv_accuracy", "cv_roc_auc"]].to_string(index=False),
    )  # fmt: skip
    return results, oof


def rank_with_ties(cv_results: pd.DataFrame, training: TrainingParams) -> tuple[pd.Series, dict]:
    """The selected configuration and how it was chosen.

    The best mean CV ``selection_metric`` (then the other of roc_auc / accuracy, then the
    ``config_id``) leads. A configuration is tied with it when their means differ by less than
    the larger of their standard errors (fold-to-fold std / sqrt(n_splits)); among the tied,
    the first candidate or ensemble in ``training.preference`` wins (the names it does not
    list come after, best score first).

    Returns:
        ``(row, selection)``: the winner's row of ``cv_results``, and ``selection``: the rule,
        the best configuration by score, the tied ones and ``decided_by`` (``score`` or
        ``preference``).
    """
    metric = training.selection_metric
    other = "accuracy" if metric == "roc_auc" else "roc_auc"
    score, spread = f"cv_{metric}", f"cv_{metric}_std"
    ranked = cv_results.sort_values(
        [score, f"cv_{other}", "config_id"], ascending=[False, False, True], ignore_index=True
    )
    top = ranked.iloc[0]
    errors = ranked[spread] / np.sqrt(training.cv.n_splits)
    margin = np.maximum(errors, errors.iloc[0])
    tied = ranked[(top[score] - ranked[score] < margin) | (ranked.index == 0)]
    order = {name: position for position, name in enumerate(training.preference)}
    preferred = tied["candidate"].map(order).fillna(len(order))
    winner = tied.loc[preferred.sort_values(kind="stable").index[0]]
    selection = {
        "rule": (
            f"configurations whose mean CV {metric} is within the larger of their standard "
            f"errors (fold std / sqrt({training.cv.n_splits})) of the best are tied; a tie "
            "goes to the first of them in training.preference"
        ),
        "preference": list(training.preference),
        "best_by_score": str(top["config_id"]),
        "tied_with_best": [str(config_id) for config_id in tied["config_id"]],
        "decided_by": "score" if winner["config_id"] == top["config_id"] else "preference",
    }
    return winner, selection


def _baseline(training: TrainingParams, cv_accuracy: float) -> dict[str, Any] | None:
    """``training.baseline`` and the winner's difference to it, or None when not set."""
    if training.baseline is None:
        return None
    baseline = training.baseline.model_dump()
    return {**baseline, "difference": cv_accuracy - baseline["cv_accuracy"]}


def select_best_candidate(cv_results: pd.DataFrame, training: TrainingParams) -> dict[str, Any]:
    """The selected configuration: the best mean CV score, ties to ``training.preference``
    (``rank_with_ties``).

    Returns:
        ``config_id``, ``candidate``, ``params``, the CV scores of the winner and ``selection``
        (how it was chosen); with ``training.baseline`` set, also ``baseline``: that
        grouped-CV accuracy, where it comes from, and the winner's difference to it.
    """
    best, selection = rank_with_ties(cv_results, training)
    selected: dict[str, Any] = {
        "config_id": str(best["config_id"]),
        "candidate": str(best["candidate"]),
        "params": dict(best["params"]),
        "selection_metric": training.selection_metric,
        **{key: float(best[key]) for key in SCORE_KEYS},
        "selection": selection,
    }
    if (baseline := _baseline(training, selected["cv_accuracy"])) is not None:
        selected["baseline"] = baseline
    tie = (
        f" (tied with {selection['best_by_score']}: chosen by training.preference)"
        if selection["decided_by"] == "preference"
        else ""
    )
    logger.info(
        "Selected %s %s%s: grouped-CV accuracy %.4f, ROC-AUC %.4f.",
        best["candidate"], best["params"], tie, best["cv_accuracy"], best["cv_roc_auc"],
    )  # fmt: skip
    return selected


def choose_threshold(
    oof_probabilities: pd.DataFrame,
    model_input_train: pd.DataFrame,
    best_candidate: dict[str, Any],
    schema: Schema,
    training: TrainingParams,
) -> dict[str, Any]:
    """The decision threshold on P(phishing), chosen on the winner's out-of-fold predictions.

    Every threshold of the grid is scored by ``threshold.objective`` (F1 of the phishing class,
    or accuracy). The best one replaces 0.5 only if it beats 0.5 by at least ``min_gain``;
    among equally good thresholds the one closest to 0.5 is kept.
    """
    settings = training.threshold
    phishing, _ = labels_of(schema)
    labels = model_input_train[target_column(schema)].to_numpy()
    probability = oof_probabilities[best_candidate["config_id"]].to_numpy()
    objective = settings.objective
    grid = np.round(np.arange(settings.min, settings.max + 1e-9, settings.step), 6)
    at_default = threshold_objective(labels, probability, 0.5, phishing, objective)
    values = threshold_objectives(labels, probability, grid, phishing, objective)
    best_value = values.max() if len(values) else at_default
    ties = grid[values >= best_value - 1e-12]
    candidate = float(ties[np.argmin(np.abs(ties - 0.5))]) if len(ties) else 0.5
    threshold = candidate if best_value - at_default >= settings.min_gain else 0.5
    choice = {
        "threshold": threshold,
        "objective": objective,
        "objective_at_0.5": float(at_default),
        "objective_at_threshold": float(
            threshold_objective(labels, probability, threshold, phishing, objective)
        ),
        "cv_metrics_at_0.5": classification_metrics(labels, probability, 0.5, phishing),
        "cv_metrics_at_threshold": classification_metrics(labels, probability, threshold, phishing),
    }
    logger.info(
        "Decision threshold %.2f on P(phishing) (out-of-fold %s %.4f; %.4f at 0.5).",
        threshold, objective, choice["objective_at_threshold"], at_default,
    )  # fmt: skip
    return choice


def fit_phishing_model(
    records: pd.DataFrame,
    best_candidate: dict[str, Any],
    threshold_choice: dict[str, Any],
    schema: Schema,
    training: TrainingParams,
    fitted_on: str = "model_input_train",
    operating_points: dict[str, float] | None = None,
) -> PhishingModel:
    """Fit the selected configuration, with its decision threshold and operating points
    (``decisions.choose_operating_points``), on ``records``.

    The pipeline fits it twice: on the training split (the evaluation model, scored on the
    held-out split) and on all validated records (the production model that is registered and
    may be promoted). ``fitted_on`` names the records in the model's provenance, which also
    keeps the codes of the feature vectors it was fit on.
    """
    check_frame(records, schema, fitted_on)
    features = feature_columns(schema)
    phishing, legitimate = labels_of(schema)
    estimator = build_selected_model(best_candidate, training, features)
    with threadpool_limits(limits=training.threads_per_fit):
        estimator.fit(records[features], records[target_column(schema)])
    if sorted(estimator.classes_) != sorted([phishing, legitimate]):
        raise ValueError(
            f"The training split has labels {list(estimator.classes_)}, expected both "
            f"{[phishing, legitimate]}; check '{target_column(schema)}' in {fitted_on}."
        )
    codes = np.unique(feature_vector_codes(records, features))
    return PhishingModel(
        estimator=estimator,
        feature_columns=features,
        phishing_label=phishing,
        legitimate_label=legitimate,
        threshold=float(threshold_choice["threshold"]),
        operating_points=dict(operating_points) if operating_points is not None else None,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics={key: best_candidate[key] for key in ("cv_accuracy", "cv_roc_auc")},
        params={
            "candidate": best_candidate["candidate"],
            "hyperparameters": dict(best_candidate["params"]),
            "threshold_objective": threshold_choice["objective"],
            "fitted_on": fitted_on,
            "training_rows": len(records),
            "training_vectors": int(len(codes)),
        },
        fitted_vector_codes=codes,
    )


def fit_evaluation_model(
    model_input_train: pd.DataFrame,
    best_candidate: dict[str, Any],
    threshold_choice: dict[str, Any],
    schema: Schema,
    training: TrainingParams,
    operating_points: dict[str, float],
) -> PhishingModel:
    """The selected configuration fit on the training split: scored on the held-out split."""
    return fit_phishing_model(
        model_input_train, best_candidate, threshold_choice, schema, training,
        "the training split", operating_points,
    )  # fmt: skip


def fit_production_model(
    validated_records: pd.DataFrame,
    best_candidate: dict[str, Any],
    threshold_choice: dict[str, Any],
    schema: Schema,
    training: TrainingParams,
    operating_points: dict[str, float],
) -> PhishingModel:
    """The selected configuration refit on all validated records: registered and promoted."""
    return fit_phishing_model(
        validated_records, best_candidate, threshold_choice, schema, training,
        "all validated records", operating_points,
    )  # fmt: skip


def build_model_selection_report(
    cv_results: pd.DataFrame, best_candidate: dict[str, Any], threshold_choice: dict[str, Any]
) -> dict[str, Any]:
    """The selection as JSON: the winner, how it was chosen (``selection``: whether a tie
    decided), against the baseline, its threshold, and every configuration's CV scores (best
    ROC-AUC first).

    ``baseline`` (when ``training.baseline`` is set) holds the previous winner's grouped-CV
    accuracy, where that figure comes from, and this winner's accuracy and difference to it.
    """
    selected = {k: v for k, v in best_candidate.items() if k not in ("baseline", "selection")}
    selection = dict(best_candidate["selection"])
    if selection["decided_by"] == "preference":
        selection["summary"] = (
            f"tie: {selected['config_id']} was chosen over {selection['best_by_score']} (the "
            "best mean score, by less than the standard error) because training.preference "
            "lists it first"
        )
    report: dict[str, Any] = {
        "cross_validation": "StratifiedGroupKFold, groups = distinct feature vectors",
        "selected": selected,
        "selection": selection,
    }
    if "baseline" in best_candidate:
        report["baseline"] = {
            **best_candidate["baseline"],
            "winner": selected["config_id"],
            "winner_cv_accuracy": selected["cv_accuracy"],
        }
    report["threshold"] = threshold_choice
    report["configurations"] = [
        {k: (v if k == "params" else jsonable(v)) for k, v in row.items()}
        for row in cv_results.sort_values("cv_roc_auc", ascending=False).to_dict(orient="records")
    ]
    return report
