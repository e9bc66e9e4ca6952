"""Nodes of the training pipeline: pure functions from the model inputs to a registered champion.

model selection   search_candidates -> select_best_candidate -> choose_threshold
                  -> fit_phishing_model
evaluation        evaluate_model, plot_confusion_matrix, plot_roc_curve,
                  compute_feature_importances -> plot_feature_importances,
                  build_model_selection_report, collect_mlflow_metrics
registry          apply_quality_gate, build_input_example, package_model_for_registry,
                  describe_model_fits, decide_promotion -> select_model_in_use

All I/O (parquet, pickles, MLflow runs and registry, charts) goes through the catalog; see the
``# ---- training`` section of conf/base/catalog.yml.
"""

from __future__ import annotations

import logging
from copy import copy
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from threadpoolctl import threadpool_limits

from network_security.features import feature_vector_codes, grouped_folds
from network_security.model import PhishingModel
from network_security.pipelines.training.evaluation import (
    METRIC_NAMES,
    classification_metrics,
    confusion_matrix_figure,
    feature_importance_figure,
    importance_frame,
    permutation_importances,
    roc_curve_figure,
    threshold_objective,
    threshold_objectives,
)
from network_security.pipelines.training.search import (
    build_selected_model,
    configure_models,
    cross_validate_configurations,
    expand_search_space,
    score_ensembles,
)
from network_security.sanitize import jsonable
from network_security.schema import (
    Schema,
    allowed_values,
    feature_columns,
    record_columns,
    target_column,
)
from network_security.validator import require_columns

logger = logging.getLogger(__name__)

Params = dict[str, Any]


def _labels(schema: Schema) -> tuple[int, int]:
    """(phishing, legitimate) label values from the schema."""
    return int(schema["target"]["phishing"]), int(schema["target"]["legitimate"])


def _check_frame(frame: pd.DataFrame, schema: Schema, name: str) -> None:
    """Raise if ``frame`` lacks a schema column or is empty, naming the dataset and column."""
    require_columns(
        frame.columns, record_columns(schema), f"'{name}'", "columns of a labelled record"
    )
    if frame.empty:
        raise ValueError(
            f"'{name}' is empty: nothing to train or evaluate on. Ingest records and run the "
            "feature_engineering pipeline first."
        )


def search_candidates(
    model_input_train: pd.DataFrame, schema: Schema, training: Params
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Grouped cross-validation of every candidate configuration on the training split.

    Folds come from ``StratifiedGroupKFold`` with one group per distinct feature vector, so no
    vector is in both the training and the validation rows of a fold.

    Returns:
        ``(cv_results, oof_probabilities)``: one row per configuration with the mean and
        standard deviation of its fold accuracies and ROC-AUCs; and the out-of-fold
        P(phishing) of every configuration (one column per ``config_id``).
    """
    _check_frame(model_input_train, schema, "model_input_train")
    features = feature_columns(schema)
    phishing, _ = _labels(schema)
    labels = model_input_train[target_column(schema)].to_numpy()
    cv = training.get("cv", {})
    seed = int(training.get("random_state", 42))
    threads = int(training.get("threads_per_fit", 1))
    configurations = expand_search_space(training["candidates"])
    models = configure_models(
        configurations,
        training["candidates"],
        features,
        seed,
        bool(training.get("engineered_features", True)),
        int(training.get("n_jobs", 1)),
    )
    folds = grouped_folds(
        model_input_train,
        labels,
        features,
        int(cv.get("n_splits", 5)),
        int(cv.get("random_state", seed)),
        "Ingest more records or lower training.cv.n_splits.",
    )
    ensembles = dict(training.get("ensembles") or {})
    clashes = sorted(set(ensembles) & set(training["candidates"]))
    if clashes:
        raise ValueError(
            f"training.ensembles {clashes} reuse candidate names; give ensembles their own names."
        )
    started = datetime.now(UTC)
    results, oof = cross_validate_configurations(
        configurations,
        models,
        model_input_train[features],
        labels,
        folds,
        phishing,
        int(training.get("cv_jobs", 1)),
        threads,
        str(training.get("parallel_backend", "threading")),
    )
    results, oof = score_ensembles(
        results,
        oof,
        ensembles,
        model_input_train[features],
        labels,
        folds,
        phishing,
        _selection_metric(training),
    )
    logger.info(
        "Cross-validated %d configuration(s) of %d candidate(s) on %d folds in %.1f s:\n%s",
        len(configurations),
        results["candidate"].nunique(),
        len(folds),
        (datetime.now(UTC) - started).total_seconds(),
        results[["config_id", "cv_accuracy", "cv_roc_auc"]].to_string(index=False),
    )
    return results, oof


def _selection_metric(training: Params) -> str:
    metric = str(training.get("selection_metric", "roc_auc"))
    if metric not in ("roc_auc", "accuracy"):
        raise ValueError(
            f"training.selection_metric must be 'roc_auc' or 'accuracy', got {metric!r}; fix "
            "conf/base/parameters_training.yml."
        )
    return metric


def select_best_candidate(cv_results: pd.DataFrame, training: Params) -> dict[str, Any]:
    """The configuration with the best mean CV score (``selection_metric``; ties: the other).

    Returns:
        ``config_id``, ``candidate``, ``params`` and the CV scores of the winner; with
        ``training.baseline`` set, also ``baseline``: that grouped-CV accuracy, where it comes
        from, and the winner's difference to it.
    """
    metric = _selection_metric(training)
    other = "accuracy" if metric == "roc_auc" else "roc_auc"
    ranked = cv_results.sort_values(
        [f"cv_{metric}", f"cv_{other}", "config_id"], ascending=[False, False, True]
    )
    best = ranked.iloc[0]
    selected: dict[str, Any] = {
        "config_id": str(best["config_id"]),
        "candidate": str(best["candidate"]),
        "params": dict(best["params"]),
        "selection_metric": metric,
        **{
            key: float(best[key])
            for key in (
                "cv_accuracy",
                "cv_accuracy_std",
                "cv_roc_auc",
                "cv_roc_auc_std",
                "oof_accuracy",
                "oof_roc_auc",
                "oof_accuracy_distinct",
                "oof_roc_auc_distinct",
            )
        },
    }
    baseline = _baseline(training)
    comparison = ""
    if baseline is not None:
        difference = selected["cv_accuracy"] - baseline["cv_accuracy"]
        selected["baseline"] = {**baseline, "difference": difference}
        comparison = f" ({difference:+.4f} against the baseline {baseline['cv_accuracy']:.4f})"
    logger.info(
        "Selected %s %s: grouped-CV accuracy %.4f%s, ROC-AUC %.4f.",
        best["candidate"],
        best["params"],
        best["cv_accuracy"],
        comparison,
        best["cv_roc_auc"],
    )
    return selected


def _baseline(training: Params) -> dict[str, Any] | None:
    """``training.baseline`` (``cv_accuracy`` and its ``source``), or None when not set."""
    baseline = training.get("baseline")
    if not baseline:
        return None
    try:
        accuracy = float(baseline["cv_accuracy"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            "training.baseline must have a numeric 'cv_accuracy' (and a 'source'), got "
            f"{baseline!r}; fix conf/base/parameters_training.yml."
        ) from error
    return {"cv_accuracy": accuracy, "source": str(baseline.get("source", "not given"))}


def choose_threshold(
    oof_probabilities: pd.DataFrame,
    model_input_train: pd.DataFrame,
    best_candidate: dict[str, Any],
    schema: Schema,
    training: Params,
) -> dict[str, Any]:
    """The decision threshold on P(phishing), chosen on the winner's out-of-fold predictions.

    Every threshold of the grid is scored by ``threshold.objective`` (F1 of the phishing class,
    or accuracy). The best one replaces 0.5 only if it beats 0.5 by at least ``min_gain``;
    among equally good thresholds the one closest to 0.5 is kept.
    """
    settings = training.get("threshold", {})
    phishing, _ = _labels(schema)
    labels = model_input_train[target_column(schema)].to_numpy()
    probability = oof_probabilities[best_candidate["config_id"]].to_numpy()
    objective = str(settings.get("objective", "f1"))
    grid = np.round(
        np.arange(
            float(settings.get("min", 0.2)),
            float(settings.get("max", 0.8)) + 1e-9,
            float(settings.get("step", 0.01)),
        ),
        6,
    )
    at_default = threshold_objective(labels, probability, 0.5, phishing, objective)
    values = threshold_objectives(labels, probability, grid, phishing, objective)
    best_value = values.max() if len(values) else at_default
    ties = grid[values >= best_value - 1e-12]
    candidate = float(ties[np.argmin(np.abs(ties - 0.5))]) if len(ties) else 0.5
    gain = float(best_value - at_default)
    threshold = candidate if gain >= float(settings.get("min_gain", 0.001)) else 0.5
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
        threshold,
        objective,
        choice["objective_at_threshold"],
        at_default,
    )
    return choice


def fit_phishing_model(
    records: pd.DataFrame,
    best_candidate: dict[str, Any],
    threshold_choice: dict[str, Any],
    schema: Schema,
    training: Params,
    fitted_on: str = "model_input_train",
) -> PhishingModel:
    """Fit the selected configuration, with its decision threshold, on ``records``.

    The pipeline fits it twice: on the training split (the evaluation model, scored on the
    held-out split) and on all validated records (the production model that is registered and
    may be promoted). ``fitted_on`` names the records in the model's provenance, which also
    keeps the codes of the feature vectors it was fit on.
    """
    _check_frame(records, schema, fitted_on)
    features = feature_columns(schema)
    phishing, legitimate = _labels(schema)
    threads = int(training.get("threads_per_fit", 1))
    estimator = build_selected_model(best_candidate, training, features)
    with threadpool_limits(limits=threads):
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
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics={
            "cv_accuracy": best_candidate["cv_accuracy"],
            "cv_roc_auc": best_candidate["cv_roc_auc"],
        },
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
    training: Params,
) -> PhishingModel:
    """The selected configuration fit on the training split: scored on the held-out split."""
    return fit_phishing_model(
        model_input_train, best_candidate, threshold_choice, schema, training, "the training split"
    )


def fit_production_model(
    validated_records: pd.DataFrame,
    best_candidate: dict[str, Any],
    threshold_choice: dict[str, Any],
    schema: Schema,
    training: Params,
) -> PhishingModel:
    """The selected configuration refit on all validated records: registered and promoted."""
    return fit_phishing_model(
        validated_records, best_candidate, threshold_choice, schema, training,
        "all validated records",
    )  # fmt: skip


def _test_probability(
    model: PhishingModel, model_input_test: pd.DataFrame, schema: Schema
) -> tuple[np.ndarray, np.ndarray]:
    _check_frame(model_input_test, schema, "model_input_test")
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
    _check_frame(model_input_test, schema, "model_input_test")
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


def compute_feature_importances(
    fitted_model: PhishingModel, model_input_test: pd.DataFrame, schema: Schema, training: Params
) -> pd.DataFrame:
    """Permutation importance of each schema feature: the drop in test ROC-AUC when shuffled.

    Model-agnostic (it also covers ensembles and the engineered counts, which move with the
    features they count), and measured on rows the model never saw. scikit-learn's
    permutations, scored in a few batched calls on ``n_jobs`` threads
    (``evaluation.permutation_importances``).
    """
    _check_frame(model_input_test, schema, "model_input_test")
    labels = model_input_test[target_column(schema)].to_numpy()
    settings = training.get("feature_importance", {})
    threads = int(training.get("threads_per_fit", 1))
    with threadpool_limits(limits=threads):
        importances = permutation_importances(
            fitted_model.estimator,
            model_input_test[fitted_model.feature_columns],
            labels,
            n_repeats=int(settings.get("n_repeats", 3)),
            random_state=int(training.get("random_state", 42)),
            workers=int(training.get("n_jobs", 1)),
        )
    return importance_frame(
        fitted_model.feature_columns, importances.mean(axis=1), importances.std(axis=1)
    )


def plot_feature_importances(feature_importances: pd.DataFrame) -> go.Figure:
    """Bar chart of the permutation importances."""
    return feature_importance_figure(
        feature_importances, "Feature importance (permutation, test split)"
    )


def build_model_selection_report(
    cv_results: pd.DataFrame, best_candidate: dict[str, Any], threshold_choice: dict[str, Any]
) -> dict[str, Any]:
    """The selection as JSON: the winner against the baseline, its threshold, and every
    configuration's CV scores (best ROC-AUC first).

    ``baseline`` (when ``training.baseline`` is set) holds the previous winner's grouped-CV
    accuracy, where that figure comes from, and this winner's accuracy and difference to it.
    """
    table = cv_results.sort_values("cv_roc_auc", ascending=False)
    selected = {k: v for k, v in best_candidate.items() if k != "baseline"}
    report: dict[str, Any] = {
        "cross_validation": "StratifiedGroupKFold, groups = distinct feature vectors",
        "selected": selected,
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
        for row in table.to_dict(orient="records")
    ]
    return report


def collect_mlflow_metrics(
    test_metrics: dict[str, float],
    best_candidate: dict[str, Any],
    threshold_choice: dict[str, Any],
    cv_results: pd.DataFrame,
    quality_gate: dict[str, Any],
) -> dict[str, dict[str, float]]:
    """Every metric of the run in kedro-mlflow's format (``{name: {"value": v, "step": 0}}``).

    ``test_<metric>`` on the test split; ``cv_<metric>`` of the selected configuration;
    ``cv_<metric>.<candidate>`` of each candidate's best configuration;
    ``cv_accuracy_baseline`` and ``cv_accuracy_vs_baseline`` when a baseline is set.
    """
    metrics: dict[str, float] = {f"test_{k}": v for k, v in test_metrics.items()}
    for key in (
        "cv_accuracy",
        "cv_accuracy_std",
        "cv_roc_auc",
        "cv_roc_auc_std",
        "oof_accuracy_distinct",
        "oof_roc_auc_distinct",
    ):
        metrics[key if key.startswith("cv_") else f"cv_{key}"] = best_candidate[key]
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
    return {
        name: {"value": float(value), "step": 0}
        for name, value in metrics.items()
        if value is not None and np.isfinite(value)
    }


def apply_quality_gate(test_metrics: dict[str, float], training: Params) -> dict[str, Any]:
    """Check the test metrics against ``quality_gate.min_<metric>``; the verdict and checks."""
    thresholds = dict(training.get("quality_gate", {}))
    checks = []
    for key, minimum in thresholds.items():
        metric = key.removeprefix("min_")
        if not key.startswith("min_") or metric not in METRIC_NAMES:
            raise ValueError(
                f"training.quality_gate.{key} is not a gate: use min_<metric> with a metric in "
                f"{list(METRIC_NAMES)}."
            )
        value = float(test_metrics[metric])
        checks.append(
            {
                "metric": f"test_{metric}",
                "value": value,
                "minimum": float(minimum),
                "passed": bool(value >= float(minimum)),
            }
        )
    passed = all(check["passed"] for check in checks)
    failures = [
        f"{c['metric']} {c['value']:.4f} < {c['minimum']:.4f}" for c in checks if not c["passed"]
    ]
    if passed:
        logger.info("Quality gate passed: %s", ", ".join(c["metric"] for c in checks))
    else:
        logger.warning(
            "Quality gate FAILED (%s): the model is logged and registered but not promoted.",
            "; ".join(failures),
        )
    return {"passed": passed, "checks": checks, "failures": failures}


def build_input_example(schema: Schema) -> pd.DataFrame:
    """A small features frame built from the schema (no data rows): each feature's lowest,
    middle and highest allowed value. It gives the MLflow models their signature and example.
    """
    values = allowed_values(schema)
    rows = {
        name: [min(allowed), sorted(allowed)[len(allowed) // 2], max(allowed)]
        for name, allowed in values.items()
    }
    return pd.DataFrame(rows, columns=feature_columns(schema)).astype("int64")


def package_model_for_registry(
    production_model: PhishingModel,
    fitted_model: PhishingModel,
    test_metrics: dict[str, float],
    quality_gate: dict[str, Any],
    training_drift_reference: dict[str, Any],
) -> PhishingModel:
    """The production model with the evidence it is judged on and its drift reference.

    ``production_model`` (fit on all validated records) is what gets registered. Its test
    metrics are those of ``fitted_model``, the same configuration fit on the training split
    only and scored on the held-out split, which the production model has seen. The drift
    reference (the feature distributions of the records it was fit on) travels inside it, so
    validation compares new records with what the champion in use was trained on.
    """
    model = copy(production_model)
    model.drift_reference = training_drift_reference
    model.metrics = {
        **production_model.metrics,
        **{f"test_{k}": v for k, v in test_metrics.items()},
        "quality_gate_passed": 1.0 if quality_gate["passed"] else 0.0,
    }
    model.params = {
        **production_model.params,
        "evaluated_as": (
            f"the same configuration fit on {fitted_model.params.get('fitted_on')} "
            f"({fitted_model.params.get('training_rows')} rows), scored on the held-out split"
        ),
    }
    return model


def describe_model_fits(
    fitted_model: PhishingModel, production_model: PhishingModel
) -> dict[str, Any]:
    """What each model of the run was fit on, for the run's record (``model_fits.json``)."""

    def fit(model: PhishingModel, role: str) -> dict[str, Any]:
        return {
            "role": role,
            "fitted_on": model.params.get("fitted_on"),
            "rows": model.params.get("training_rows"),
            "distinct_feature_vectors": model.params.get("training_vectors"),
            "candidate": model.params.get("candidate"),
            "hyperparameters": model.params.get("hyperparameters"),
            "decision_threshold": model.threshold,
        }

    return {
        "evaluation_model": fit(
            fitted_model, "scored on the held-out split: the test_* metrics and the promotion"
        ),
        "production_model": fit(
            production_model, "registered in MLflow and promoted when the evidence says so"
        ),
    }


def _unseen_rows(
    model_input_test: pd.DataFrame, champion: PhishingModel, schema: Schema
) -> tuple[pd.DataFrame, str]:
    """The test rows whose feature vectors ``champion`` was not fit on, and how they were found."""
    if champion.fitted_vector_codes is None:
        return model_input_test, (
            "the champion does not record the vectors it was fit on: compared on the whole "
            "held-out split"
        )
    codes = feature_vector_codes(model_input_test, feature_columns(schema))
    unseen = model_input_test[~champion.has_seen(codes)]
    return unseen, "held-out rows whose feature vectors neither model was fit on"


def decide_promotion(
    fitted_model: PhishingModel,
    quality_gate: dict[str, Any],
    champion_model: PhishingModel | None,
    model_input_test: pd.DataFrame,
    schema: Schema,
    training: Params,
) -> dict[str, Any]:
    """Whether this run's model replaces the champion: only on evidence neither has been fit on.

    The candidate is judged by its evaluation model (fit on the training split, so no held-out
    row was seen). The champion was fit on all the records of its own run, which may include
    rows of today's held-out split, so both are scored only on the held-out rows whose feature
    vectors the champion was not fit on either. The candidate must pass the quality gate and
    beat the champion's ``promotion.metric`` there by more than ``promotion.min_improvement``,
    on at least ``promotion.min_evidence_rows`` rows; with less evidence (retraining on the
    same records) the champion stays.
    """
    settings = training.get("promotion", {})
    metric = str(settings.get("metric", "roc_auc"))
    if metric not in METRIC_NAMES:
        raise ValueError(f"training.promotion.metric must be one of {list(METRIC_NAMES)}.")
    min_improvement = float(settings.get("min_improvement", 0.0))
    min_rows = int(settings.get("min_evidence_rows", 100))
    decision: dict[str, Any] = {
        "promote": False,
        "metric": metric,
        "candidate_value": None,
        "champion_version": None,
        "champion_value": None,
        "evidence_rows": None,
        "quality_gate_passed": bool(quality_gate["passed"]),
    }
    if not quality_gate["passed"]:
        decision["reason"] = "quality gate failed: " + "; ".join(quality_gate["failures"])
    elif champion_model is None:
        decision.update(promote=True, reason="no champion yet")
    else:
        decision["champion_version"] = str(champion_model.version)
        missing = [c for c in champion_model.feature_columns if c not in model_input_test]
        if missing:
            decision.update(
                promote=True,
                reason=f"the champion needs column(s) {missing} absent from the records",
            )
        else:
            evidence, basis = _unseen_rows(model_input_test, champion_model, schema)
            decision.update(evidence=basis, evidence_rows=len(evidence))
            labels = evidence[target_column(schema)].to_numpy()
            if len(evidence) < min_rows or len(np.unique(labels)) < 2:
                decision["reason"] = (
                    f"not enough evidence: {len(evidence)} {basis} (at least {min_rows} with "
                    "both labels are needed, training.promotion.min_evidence_rows); the "
                    "champion stays. Ingest new records and train again."
                )
            else:
                scores = {
                    name: classification_metrics(
                        labels,
                        model.phishing_probability(evidence, compiled=False),
                        model.threshold,
                        model.phishing_label,
                    )
                    for name, model in (("candidate", fitted_model), ("champion", champion_model))
                }
                decision["candidate_metrics"] = scores["candidate"]
                decision["champion_metrics"] = scores["champion"]
                decision["candidate_value"] = scores["candidate"][metric]
                decision["champion_value"] = scores["champion"][metric]
                beats = decision["candidate_value"] > decision["champion_value"] + min_improvement
                comparison = (
                    f"{metric} {decision['candidate_value']:.4f} vs champion version "
                    f"{champion_model.version} {decision['champion_value']:.4f} on "
                    f"{len(evidence)} {basis}"
                )
                decision.update(
                    promote=bool(beats),
                    reason=("beats the champion: " if beats else "does not beat the champion: ")
                    + comparison,
                )
    log = logger.info if decision["promote"] else logger.warning
    log("Promotion: %s (%s).", "yes" if decision["promote"] else "no", decision["reason"])
    return decision


def select_model_in_use(
    candidate_model: PhishingModel,
    promotion_decision: dict[str, Any],
    champion_model: PhishingModel | None,
) -> PhishingModel:
    """The model that scores after this run: the candidate when promoted, else the champion.

    ``kedro run`` (``__default__``) scores its demo batch with it in the same run; the promotion
    itself (registry alias, then the local cache) happens when the run has ended and
    kedro-mlflow has registered the candidate.

    Raises:
        ValueError: If the candidate is not promoted and there is no champion: nothing can score.
    """
    chosen = candidate_model if promotion_decision["promote"] else champion_model
    if chosen is None:
        raise ValueError(
            "No model to score with: this run's model was not promoted "
            f"({promotion_decision.get('reason', 'no reason given')}) and there is no champion "
            "yet. See data/08_reporting/promotion_decision.json; train on more or better "
            "records (kedro run --pipeline training) before scoring."
        )
    return chosen
