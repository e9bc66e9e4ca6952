"""Promotion: the quality gate, the model packaged for the registry, and whether it replaces
the champion.

nodes   apply_quality_gate, build_input_example, package_model_for_registry,
        describe_model_fits, decide_promotion -> select_model_in_use

The registry work itself (alias, verified cache) happens after the run, once kedro-mlflow has
registered the model: ``network_security.hooks.PromotionHook`` and ``network_security.champion``.
"""

from __future__ import annotations

import logging
from copy import copy
from typing import Any

import numpy as np
import pandas as pd

from network_security.features import feature_vector_codes
from network_security.model import PhishingModel
from network_security.pipelines.training.evaluation import classification_metrics
from network_security.pipelines.training.params import TrainingParams
from network_security.schema import Schema, allowed_values, feature_columns, target_column

logger = logging.getLogger(__name__)


def apply_quality_gate(test_metrics: dict[str, float], training: TrainingParams) -> dict[str, Any]:
    """Check the test metrics against ``quality_gate.min_<metric>``; the verdict and checks."""
    checks = []
    for key, minimum in training.quality_gate.items():
        metric = key.removeprefix("min_")
        value = float(test_metrics[metric])
        checks.append(
            {
                "metric": f"test_{metric}",
                "value": value,
                "minimum": minimum,
                "passed": value >= minimum,
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


def _compare_with_champion(
    fitted_model: PhishingModel,
    champion_model: PhishingModel,
    model_input_test: pd.DataFrame,
    schema: Schema,
    training: TrainingParams,
) -> dict[str, Any]:
    """The part of the decision that compares the candidate with an existing champion."""
    settings = training.promotion
    decision: dict[str, Any] = {"champion_version": str(champion_model.version)}
    missing = [c for c in champion_model.feature_columns if c not in model_input_test]
    if missing:
        reason = f"the champion needs column(s) {missing} absent from the records"
        return {**decision, "promote": True, "reason": reason}
    evidence, basis = _unseen_rows(model_input_test, champion_model, schema)
    decision.update(evidence=basis, evidence_rows=len(evidence))
    labels = evidence[target_column(schema)].to_numpy()
    if len(evidence) < settings.min_evidence_rows or len(np.unique(labels)) < 2:
        decision["reason"] = (
            f"not enough evidence: {len(evidence)} {basis} (at least "
            f"{settings.min_evidence_rows} with both labels are needed, "
            "training.promotion.min_evidence_rows); the champion stays. Ingest new records and "
            "train again."
        )
        return decision
    scores = {
        name: classification_metrics(
            labels,
            model.phishing_probability(evidence, compiled=False),
            model.threshold,
            model.phishing_label,
        )
        for name, model in (("candidate", fitted_model), ("champion", champion_model))
    }
    candidate, champion = scores["candidate"][settings.metric], scores["champion"][settings.metric]
    beats = candidate > champion + settings.min_improvement
    comparison = (
        f"{settings.metric} {candidate:.4f} vs champion version {champion_model.version} "
        f"{champion:.4f} on {len(evidence)} {basis}"
    )
    return {
        **decision,
        "candidate_metrics": scores["candidate"],
        "champion_metrics": scores["champion"],
        "candidate_value": candidate,
        "champion_value": champion,
        "promote": bool(beats),
        "reason": ("beats the champion: " if beats else "does not beat the champion: ")
        + comparison,
    }


def decide_promotion(
    fitted_model: PhishingModel,
    quality_gate: dict[str, Any],
    champion_model: PhishingModel | None,
    model_input_test: pd.DataFrame,
    schema: Schema,
    training: TrainingParams,
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
    decision: dict[str, Any] = {
        "promote": False,
        "metric": training.promotion.metric,
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
        decision.update(
            _compare_with_champion(fitted_model, champion_model, model_input_test, schema, training)
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
