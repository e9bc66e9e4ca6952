"""The training pipeline's wiring, in memory: model inputs -> selected, evaluated, packaged model
and the promotion decision; then the project's ``training`` composition (validation +
feature_engineering + training) and the inference pipeline kedro-mlflow would log with it
(no database, no MLflow store)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.framework.startup import bootstrap_project

from network_security.model import PhishingModel
from network_security.pipelines.training import create_pipeline
from network_security.schema import feature_columns

PROJECT_ROOT = Path(__file__).resolve().parents[3]

INTERNALS = {
    "training.settings",
    "training.cv_results",
    "training.oof_probabilities",
    "training.best_candidate",
    "training.threshold_choice",
    "training.operating_points",
    "training.fitted_model",
    "training.production_model",
    "training.test_metrics",
    "training.quality_gate",
}
OUTPUTS = {
    "model_input_example",
    "candidate_model",
    "drift_reference",
    "promotion_decision",
    "model_fits",
    "training_metrics",
    "model_selection_report",
    "feature_importances",
    "confusion_matrix_chart",
    "roc_curve_chart",
    "feature_importance_chart",
}


@pytest.fixture
def model_inputs(synthetic_records, schema):
    """Validated records and a split of them with no feature vector on both sides."""
    records = synthetic_records(700, seed=31)
    features = feature_columns(schema)
    vectors = records[features].astype(str).agg("".join, axis=1)
    in_test = vectors.isin(vectors.drop_duplicates().sample(frac=0.25, random_state=1))
    return {
        "validated_records": records,
        "model_input_train": records[~in_test].reset_index(drop=True),
        "model_input_test": records[in_test].reset_index(drop=True),
    }


def test_training_selects_packages_and_decides(run_in_memory, model_inputs, schema):
    pipeline = create_pipeline()
    assert {n.namespace for n in pipeline.nodes} == {"training"}

    outputs = run_in_memory(pipeline, {**model_inputs, "champion_model": None})

    assert set(outputs) == INTERNALS | OUTPUTS
    candidate = outputs["candidate_model"]
    assert isinstance(candidate, PhishingModel)
    # the drift reference (of all validated records) is stored inside the registered model
    assert candidate.drift_reference == outputs["drift_reference"]
    assert outputs["drift_reference"]["n_records"] == len(model_inputs["validated_records"])
    assert candidate.params["training_rows"] == len(model_inputs["validated_records"])
    evaluated = outputs["training.fitted_model"]
    assert evaluated.params["training_rows"] == len(model_inputs["model_input_train"])
    assert candidate.metrics["test_roc_auc"] == outputs["training.test_metrics"]["roc_auc"]
    # the operating points travel in both models and their rates are metrics of the run
    points = outputs["training.operating_points"]
    assert candidate.operating_points == evaluated.operating_points == points
    assert 0 <= points["allow_below"] <= candidate.threshold <= points["block_above"] <= 1
    logged = outputs["training_metrics"]
    for key in ("allow_below", "block_above", "expected_missed_phishing"):
        assert logged[key]["value"] == points[key]
    assert logged["expected_false_block"]["value"] == points["expected_false_block"]
    assert logged["expected_review_share"]["value"] == points["expected_review_share"]
    assert outputs["model_selection_report"]["selected"]["candidate"] in {
        "hist_gradient_boosting",
        "extra_trees",
        "soft_vote",
    }
    decision = outputs["promotion_decision"]
    gate = outputs["training.quality_gate"]
    assert decision["quality_gate_passed"] is gate["passed"]
    assert decision["promote"] is gate["passed"]  # no champion yet: the gate decides
    assert list(outputs["model_input_example"].columns) == feature_columns(schema)


def test_the_training_composition_runs_and_its_logged_inference_scores(
    run_in_memory, synthetic_records, synthetic_profile, schema
):
    from synthetic import make_batch  # scripts/synthetic.py (pytest pythonpath)

    from network_security.pipeline_registry import register_pipelines

    bootstrap_project(PROJECT_ROOT)
    training = register_pipelines()["training"]
    assert {n.namespace for n in training.nodes} == {
        "validation",
        "feature_engineering",
        "training",
    }
    records = synthetic_records(700, seed=37)
    records.insert(0, schema["record_key"], [f"r{i:04d}" for i in range(len(records))])

    outputs = run_in_memory(training, {"phishing_records": records, "champion_model": None})

    assert outputs["validated_records"].shape[0] == len(records)
    assert len(outputs["model_input_train"]) + len(outputs["model_input_test"]) == len(records)
    candidate = outputs["candidate_model"]
    assert candidate.drift_reference["n_records"] == len(records)

    # the pipeline kedro-mlflow registers: this run's model scores a features frame
    batch = make_batch(synthetic_profile, schema, 25, seed=41)[feature_columns(schema)]
    scored = run_in_memory(
        training.inference,
        {"model_input_example": batch, "candidate_model": candidate},
    )["mlflow_predictions"]
    if not isinstance(scored, pd.DataFrame):
        scored = pd.concat(list(scored), ignore_index=True)
    assert len(scored) == len(batch)
    expected = candidate.estimator.predict_proba(batch)[:, 0]
    assert scored["phishing_probability"].to_numpy() == pytest.approx(expected, abs=1e-6)
