"""One training job end to end: ingest the real data set into the test server, then
``POST /train`` on a running service, poll the job, and predict with the champion it promoted."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def accuracy_of(job: dict) -> dict[str, float]:
    """The test and cross-validated accuracy of the model the job trained, as its MLflow run
    logged them (kedro-mlflow's ``training_metrics`` dataset)."""
    names = ("training_metrics.test_accuracy", "training_metrics.cv_accuracy")
    assert set(names) <= set(job["metrics"]), job["metrics"]
    return {name: job["metrics"][name] for name in names}


def wait_for(http: httpx.Client, job_id: str, headers: dict, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = http.get(f"/train/{job_id}", headers=headers)
        assert status.status_code == 200, status.text
        if status.json()["status"] in {"succeeded", "failed"}:
            return status.json()
        time.sleep(1.0)
    raise AssertionError(f"training job {job_id} did not finish within {timeout} s")


def test_a_training_job_promotes_a_champion_that_predict_then_serves(
    kedro_project: Path,
    run_kedro,
    mongo_database: str,
    real_data_path: Path,
    api_token: str,
    batch,
    start_service,
):
    if importlib.util.find_spec("network_security.pipelines.training") is None:
        pytest.skip("the training pipeline (network_security.pipelines.training) does not exist")
    # the records the training run will read; run_kedro also points MONGODB_URI at the test
    # server and MLFLOW_TRACKING_URI at a temporary store, which the service's runs inherit
    run_kedro(kedro_project, "ingestion", {"raw_data_path": str(real_data_path)})

    server = start_service(
        kedro_project,
        project_path=str(kedro_project),
        api_token=api_token,
        training_runtime_params=json.dumps({"mongo_database": mongo_database}),
    )
    auth = {"Authorization": f"Bearer {api_token}"}
    records = json.loads(batch.to_json(orient="records"))
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.get("/health").json()["model_loaded"] is False
        assert http.post("/predict", json={"records": records}).status_code == 503

        started = http.post("/train", headers=auth)
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        assert http.post("/train", headers=auth).status_code == 409

        job = wait_for(http, job_id, auth, timeout=900)
        assert job["status"] == "succeeded", json.dumps(job, indent=1)
        assert job["exit_code"] == 0
        assert job["promoted"] is True
        assert job["previous_model_version"] is None
        assert job["candidate_version"] == job["model_version"]
        assert job["reason"]
        assert min(accuracy_of(job).values()) > 0.9

        info = http.get("/model").json()
        assert info["version"] == job["model_version"]
        # the champion's own metrics are those its run logged
        logged = {name: job["metrics"][f"training_metrics.{name}"] for name in info["metrics"]}
        assert info["metrics"] == pytest.approx(logged)

        predicted = http.post("/predict", json={"records": records})
        assert predicted.status_code == 200
        body = predicted.json()
        assert body["model_version"] == job["model_version"]
        assert len(body["predictions"]) == len(records)

        # the same data again: the new model does not beat the champion, which stays in use
        again = wait_for(http, http.post("/train", headers=auth).json()["job_id"], auth, 900)
        assert again["status"] == "succeeded", json.dumps(again, indent=1)
        assert again["promoted"] is False
        assert again["previous_model_version"] == job["model_version"]
        assert again["model_version"] == job["model_version"]
        assert again["candidate_version"] not in {None, job["model_version"]}
        assert again["run_id"] != job["run_id"]
        assert "champion" in again["reason"]
        assert min(accuracy_of(again).values()) > 0.9
        assert http.get("/model").json()["version"] == job["model_version"]
    assert (kedro_project / "data" / "06_models" / "champion.pkl").is_file()
