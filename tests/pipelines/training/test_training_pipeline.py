"""The training pipeline end to end: MongoDB (test server) -> validation -> split -> training,
through a KedroSession with kedro-mlflow, into a temporary MLflow store; then what MLflow holds.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

PROJECT_ROOT = Path(__file__).resolve().parents[3]
FAST = {"training": {"cv": {"n_splits": 3}, "feature_importance": {"n_repeats": 1}}}
VERDICT_COLUMNS = (
    "prediction",
    "label",
    "phishing_probability",
    "risk_level",
    "recommended_action",
    "model_version",
    "reasons",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_invocations(tracking_uri: str, rows: pd.DataFrame) -> list[dict]:
    """POST ``rows`` to ``mlflow models serve -m models:/network_security@champion``."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m",
         "models:/network_security@champion", "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations",
                    data=body.encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.loads(response.read())["predictions"]
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, "mlflow models serve exited"
                assert time.monotonic() < deadline, "mlflow models serve did not answer"
                time.sleep(0.5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


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
        # the registered inference pipeline is the namespaced one, fed by this run's model
        assert {n.namespace for n in session_pipeline.inference.nodes} == {"inference"}
        assert session_pipeline.inference.inputs() == {
            "model_input_example",
            "candidate_model",
            "params:schema",
            "params:scoring",
        }
    training_nodes = {node.name for node in pipelines["training"].nodes}
    assert {
        "validation.find_schema_violations",
        "feature_engineering.split_train_test",
        "training.register_model",
        "training.decide_promotion",
    } <= training_nodes
    assert {n.namespace for n in pipelines["training"].nodes} == {
        "validation",
        "feature_engineering",
        "training",
    }
    default_nodes = {node.name for node in pipelines["__default__"].nodes}
    assert training_nodes < default_nodes
    assert {"ingestion.add_record_keys", "inference.score_inference_batch"} <= default_nodes
    # the promotion hook finds the decision and the registered model under their plain names
    assert {"promotion_decision", "candidate_model"} <= pipelines["training"].all_outputs()
    # only `kedro run` scores after the decision (`--pipeline training` scores nothing)
    assert "model_in_use" not in pipelines["training"].all_outputs()
    assert "model_in_use" in pipelines["__default__"].all_outputs()


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
    for key, value in champion.operating_points.items():
        if key.startswith("expected_") or key in ("allow_below", "block_above"):
            assert metrics[f"training_metrics.{key}"] == pytest.approx(value)
    assert run.data.params["training.decisions.max_missed_phishing"] == "0.01"

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
    assert {model.name for model in logged} == {"inference_pipeline"}  # one form of the model
    versions = client.search_model_versions(f"name='network_security' and run_id='{run_id}'")
    assert len(versions) == 1
    version = str(versions[0].version)
    assert version not in registry_before
    assert str(client.get_model_version_by_alias("network_security", "champion").version) == version
    assert champion.version == version
    decision = json.loads((reporting / "promotion_decision.json").read_text())
    assert decision["promote"] is True
    assert champion.drift_reference["source"] == "training"  # the reference travels inside
    assert champion.drift_reference["n_records"] == champion.params["training_rows"]

    assert champion.params["fitted_on"] == "all validated records"
    assert (
        client.get_model_version("network_security", version)
        .tags["fitted_on"]
        .startswith("all validated records")
    )
    assert run.data.tags["promotion.outcome"] == "promoted"
    fits = json.loads((reporting / "model_fits.json").read_text())
    assert fits["production_model"]["rows"] > fits["evaluation_model"]["rows"]

    # the registered champion is the whole inference pipeline: it answers what
    # `kedro run --pipeline inference` writes for the same rows (500 of the demo batch)
    output = kedro_project / "data" / "07_model_output" / "scored.csv"
    run_kedro(kedro_project, "inference", {"inference_output_path": str(output)})
    written = pd.read_csv(output)
    batch = pd.read_csv(kedro_project / "data" / "01_raw" / "new_batch.csv")
    registered = mlflow.pyfunc.load_model("models:/network_security@champion")
    scored = registered.predict(batch)  # the features and an extra `url` column
    assert len(scored) == len(written) == 500
    verdicts = [*VERDICT_COLUMNS]
    assert set(verdicts) <= set(scored.columns)
    pd.testing.assert_frame_equal(
        scored[verdicts].reset_index(drop=True),
        written[verdicts].astype(scored[verdicts].dtypes.to_dict()),
        check_exact=False,
        rtol=0,
        atol=1e-12,
    )
    assert set(scored["model_version"].astype(str)) == {version}
    assert scored["prediction"].tolist() == champion.predict(batch).tolist()

    # `mlflow models serve` on it answers /invocations the same
    served = serve_invocations(mlflow_store, batch.head(50))
    np.testing.assert_allclose(
        [row["phishing_probability"] for row in served],
        scored["phishing_probability"].head(50),
        rtol=0,
        atol=1e-12,
    )
    assert [row["risk_level"] for row in served] == scored["risk_level"].head(50).tolist()
    assert {str(row["model_version"]) for row in served} == {version}

    # a second run under an unreachable gate: logged and registered, never promoted
    champion_bytes = (models / "champion.pkl").read_bytes()
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
    decision = json.loads((reporting / "promotion_decision.json").read_text())
    assert decision["promote"] is False
    assert decision["reason"].startswith("quality gate failed: test_accuracy")
    assert gated_run.data.tags["promotion.outcome"] == "not_promoted"
    assert (
        client.get_model_version("network_security", gated.version).run_id == gated_run.info.run_id
    )
