"""The training pipeline end to end: MongoDB (test server) -> validation -> split -> training,
through a KedroSession with kedro-mlflow, into a temporary MLflow store; then what MLflow holds.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from network_security.schema import feature_columns

PROJECT_ROOT = Path(__file__).resolve().parents[3]
FAST = {"training": {"cv": {"n_splits": 3}, "feature_importance": {"n_repeats": 1}}}


def test_training_and_default_keep_their_model_logging_through_the_session_composition():
    from network_security.pipeline_registry import register_pipelines

    bootstrap_project(PROJECT_ROOT)
    pipelines = register_pipelines()
    for name in ("training", "__default__"):
        pipeline = pipelines[name]
        assert isinstance(pipeline, PipelineML), name
        # what KedroSession.run does with it: Pipeline([]) + pipeline, then filter()
        session_pipeline = (Pipeline([]) + pipeline).filter()
        assert isinstance(session_pipeline, PipelineML), name
        assert session_pipeline.input_name == "model_input_example"
        assert session_pipeline.inference.outputs() == {"mlflow_predictions"}
    training_nodes = {node.name for node in pipelines["training"].nodes}
    assert {"find_schema_violations", "split_train_test", "register_model"} <= training_nodes
    assert "ingest_raw_records" not in training_nodes
    default_nodes = {node.name for node in pipelines["__default__"].nodes}
    assert training_nodes < default_nodes
    assert {"score_inference_batch"} <= default_nodes


def _latest_run(client: mlflow.MlflowClient, run_id: str):
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    return run


@pytest.mark.slow
def test_training_run_logs_registers_and_promotes_then_gates(
    kedro_project, run_kedro, mlflow_store, schema
):
    run_kedro(kedro_project, "ingestion")  # the committed synthetic sample
    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("network_security")
    registry_before = {v.version for v in client.search_model_versions("name='network_security'")}

    run_kedro(kedro_project, "training", FAST)

    models = kedro_project / "data" / "06_models"
    with (models / "champion.pkl").open("rb") as handle:
        champion = pickle.load(handle)
    run_id = champion.params["mlflow_run_id"]
    run = _latest_run(client, run_id)
    assert run.info.experiment_id == experiment.experiment_id

    # parameters (flattened) and metrics
    assert run.data.params["training.cv.n_splits"] == "3"
    assert run.data.params["schema.target.name"] == "Result"
    metrics = run.data.metrics
    for word in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert any(word in name for name in metrics), word
    assert metrics["training_metrics.test_accuracy"] == pytest.approx(
        champion.metrics["test_accuracy"]
    )
    assert metrics["training_metrics.quality_gate_passed"] == 1.0

    # artifacts: the charts and reports
    charts = {a.path for a in client.list_artifacts(run_id, "charts")}
    assert charts == {
        "charts/confusion_matrix.json",
        "charts/roc_curve.json",
        "charts/feature_importance.json",
    }
    reports = {a.path for a in client.list_artifacts(run_id, "reporting")}
    assert {"reporting/model_selection_report.json", "reporting/promotion_decision.json"} <= reports
    reporting = kedro_project / "data" / "08_reporting"
    for name in ("confusion_matrix.json", "roc_curve.json", "feature_importance.json"):
        assert json.loads((reporting / name).read_text())["data"], name

    # the models of the run, the registered version and the champion alias
    logged = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    assert {model.name for model in logged} == {"phishing_model", "inference_pipeline"}
    versions = client.search_model_versions(f"name='network_security' and run_id='{run_id}'")
    assert len(versions) == 1
    version = str(versions[0].version)
    assert version not in registry_before
    assert str(client.get_model_version_by_alias("network_security", "champion").version) == version
    assert champion.version == version
    decision = json.loads((reporting / "promotion_decision.json").read_text())
    assert decision["promote"] is True
    drift_reference = json.loads((models / "drift_reference.json").read_text())
    assert drift_reference["source"] == "training"

    # the inference pipeline as one MLflow model, through mlflow.pyfunc
    batch = pd.read_csv(kedro_project / "data" / "01_raw" / "new_batch.csv").head(20)
    features = batch[feature_columns(schema)]
    pipeline_model = mlflow.pyfunc.load_model(f"runs:/{run_id}/inference_pipeline")
    scored = pipeline_model.predict(features)
    assert len(scored) == 20
    assert {"prediction", "label", "phishing_probability", "risk_level"} <= set(scored.columns)
    assert set(scored["model_version"].astype(str)) == {version}
    assert scored["prediction"].tolist() == champion.predict(features).tolist()
    registered = mlflow.pyfunc.load_model("models:/network_security@champion")
    assert registered.predict(features)["prediction"].tolist() == scored["prediction"].tolist()

    # a second run under an unreachable gate: logged and registered, never promoted
    champion_bytes = (models / "champion.pkl").read_bytes()
    reference_bytes = (models / "drift_reference.json").read_bytes()
    run_kedro(
        kedro_project,
        "training",
        {"training": {**FAST["training"], "quality_gate": {"min_accuracy": 0.9999}}},
    )
    with (models / "candidate_model.pkl").open("rb") as handle:
        gated = pickle.load(handle)
    gated_run = _latest_run(client, gated.params["mlflow_run_id"])
    assert gated_run.info.run_id != run_id
    assert gated_run.data.metrics["training_metrics.quality_gate_passed"] == 0.0
    assert int(gated.version) > int(version)
    assert str(client.get_model_version_by_alias("network_security", "champion").version) == version
    assert (models / "champion.pkl").read_bytes() == champion_bytes
    assert (models / "drift_reference.json").read_bytes() == reference_bytes
    decision = json.loads((reporting / "promotion_decision.json").read_text())
    assert decision["promote"] is False
    assert decision["reason"].startswith("quality gate failed: test_accuracy")
