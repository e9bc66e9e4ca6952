"""The champion holder (load, reload, bad files) and the training runner: its command, its
environment, and jobs read back from their MLflow runs."""

from __future__ import annotations

import os
import pickle
import sys
import time
import uuid

import pytest
from mlflow import MlflowClient

from network_security.champion import write_cache
from network_security.sanitize import redact
from network_security.service.champion import ChampionStore
from network_security.service.settings import ServiceSettings
from network_security.service.training import (
    JOB_TAG,
    PREVIOUS_TAG,
    TrainingRunner,
    _failure_reason,
)


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory) -> str:
    """An MLflow store with no registered model: the champion path falls back to the cache."""
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


def test_the_store_serves_from_memory_and_refreshes_off_the_request_path(
    tmp_path, champion, make_champion, write_champion, empty_registry
):
    path = tmp_path / "champion.pkl"
    store = ChampionStore(path, empty_registry, refresh_seconds=3600)
    assert store.refresh() is None and store.current() is None
    write_champion(champion, path)
    first = store.refresh()
    assert (first.model.version, first.origin) == (champion.version, "cache")
    assert store.current() is first  # no refresh due: the model in memory, nothing read
    write_champion(make_champion("test-champion-2", seed=1), path)
    assert store.current() is first
    assert store.refresh().model.version == "test-champion-2"

    store.refresh_seconds = 0.01  # due: current() answers at once and refreshes in the background
    write_champion(champion, path)
    time.sleep(0.02)
    deadline = time.monotonic() + 30
    while store.current().model.version != champion.version:
        assert time.monotonic() < deadline, "the background refresh did not pick up the champion"
        time.sleep(0.05)


def test_an_unreadable_champion_keeps_the_model_in_memory(
    tmp_path, champion, write_champion, empty_registry
):
    path = tmp_path / "champion.pkl"
    write_champion(champion, path)
    store = ChampionStore(path, empty_registry, refresh_seconds=3600)
    loaded = store.refresh()
    path.write_bytes(b"\x80\x04half a pickle")  # e.g. a copy made by hand, cut short
    assert store.refresh() is loaded
    assert "champion.pkl" in store.last_error and "integrity check" in store.last_error
    write_cache(pickle.dumps({"not": "a model"}), path)  # signed, but no model inside
    assert store.refresh() is loaded
    assert "not a PhishingModel" in store.last_error
    write_cache(b"\x80\x04half a pickle, signed", path)
    assert store.refresh() is loaded
    assert "cannot be read" in store.last_error
    write_champion(champion, path)
    assert store.refresh() is loaded  # the same champion again: nothing to reload
    assert store.last_error is None


class _WritesAMarker:
    """Unpickling this writes a file: what a hostile pickle could do instead."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).write_text, (self.marker, "unpickled"))


def test_a_tampered_champion_is_not_loaded_and_clients_see_no_path_or_exception(
    tmp_path, champion, write_champion, empty_registry, caplog
):
    path, marker = tmp_path / "champion.pkl", tmp_path / "unpickled.txt"
    write_champion(champion, path)
    store = ChampionStore(path, empty_registry, refresh_seconds=3600)
    loaded = store.refresh()
    path.write_bytes(pickle.dumps(_WritesAMarker(marker)))  # the signature no longer matches
    with caplog.at_level("ERROR", logger="network_security.service.champion"):
        assert store.refresh() is loaded  # the verified model in memory keeps serving
    assert not marker.exists()
    assert "champion.pkl" in store.last_error
    assert str(tmp_path) not in store.last_error
    assert str(tmp_path) in caplog.text and "does not match its signature" in caplog.text

    write_cache(b"\x80\x04cut short", path)  # verified bytes that do not unpickle
    store.refresh()
    assert "UnpicklingError" in caplog.text  # the exception text goes to the log only
    assert "Unpickling" not in store.last_error and str(tmp_path) not in store.last_error

    fresh = ChampionStore(path, empty_registry, refresh_seconds=3600)  # nothing in memory
    path.write_bytes(pickle.dumps(_WritesAMarker(marker)))
    assert fresh.refresh() is None and fresh.current() is None
    assert not marker.exists()


def test_redact_hides_credentials_in_uris():
    line = "connecting to mongodb://admin:pa55@db.example:27017/x and https://u:p@h/ fine"
    assert redact(line) == "connecting to mongodb://***@db.example:27017/x and https://***@h/ fine"


def test_failure_reason_is_the_exception_at_the_end_of_the_output():
    lines = [
        "INFO starting",
        "Traceback ...",
        "  File x",
        "ValueError: Failed to find the",
        "pipeline named 'x'",
    ]
    assert _failure_reason(lines) == ": ValueError: Failed to find the pipeline named 'x'"
    assert _failure_reason(["just output"]) == ""


def test_runner_command_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    settings = ServiceSettings(
        project_path=tmp_path, training_runtime_params={"mongo_database": "db1", "x": "2"},
        kedro_env="prod",
    )  # fmt: skip
    runner = TrainingRunner(
        settings, ChampionStore(tmp_path / "c.pkl", None), "sqlite:///x.db", "e"
    )
    assert runner.command() == [
        sys.executable, "-m", "kedro", "run", "--pipeline", "training",
        "--env", "prod", "--params", "mongo_database=db1,x=2",
    ]  # fmt: skip
    env = runner._environment()
    assert env["PYTHONPATH"].endswith(os.pathsep + "/elsewhere")
    import network_security

    assert os.path.dirname(os.path.dirname(network_security.__file__)) in env["PYTHONPATH"]
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"  # the run logs where the service reads


def test_a_job_is_read_from_its_mlflow_run_by_any_runner(tmp_path):
    """Status, promotion outcome and metrics come from the run tagged with the job id (here a
    runner that did not start the job, as another service worker would be)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("network_security")
    job_id = uuid.uuid4().hex
    run_id = client.create_run(
        experiment, tags={JOB_TAG: job_id, PREVIOUS_TAG: "3"}, run_name="training"
    ).info.run_id
    runner = TrainingRunner(ServiceSettings(project_path=tmp_path), None, uri, "network_security")
    client.update_run(run_id, status="SCHEDULED")
    assert runner.get(job_id)["status"] == "queued"
    client.update_run(run_id, status="RUNNING")
    assert runner.get(job_id) | {"created_at": None} == {
        "job_id": job_id, "run_id": run_id, "pipeline": "training", "status": "running",
        "created_at": None, "finished_at": None, "exit_code": None, "promoted": None,
        "reason": None, "previous_model_version": "3", "model_version": "3",
        "candidate_version": None, "metrics": {}, "error": None, "log_tail": [],
    }  # fmt: skip

    client.log_metric(run_id, "training_metrics.test_accuracy", 0.96)
    client.set_terminated(run_id, "FINISHED")
    assert runner.get(job_id)["status"] == "running"  # until the child's exit is recorded
    client.set_tag(run_id, "network_security.exit_code", "0")
    for key, value in {
        "promotion.outcome": "promoted",
        "promotion.version": "4",
        "promotion.reason": "beats the champion",
    }.items():
        client.set_tag(run_id, key, value)
    job = runner.get(job_id)
    assert job["status"] == "succeeded" and job["finished_at"] >= job["created_at"]
    assert (job["promoted"], job["reason"]) == (True, "beats the champion")
    assert (job["candidate_version"], job["model_version"]) == ("4", "4")
    assert job["metrics"] == {"training_metrics.test_accuracy": 0.96}

    client.set_tag(run_id, "promotion.outcome", "not_promoted")
    job = runner.get(job_id)
    assert (job["status"], job["promoted"], job["model_version"]) == ("succeeded", False, "3")
    client.set_tag(run_id, "promotion.outcome", "failed")  # the promotion step failed
    job = runner.get(job_id)
    assert (job["status"], job["promoted"], job["model_version"]) == ("failed", None, "3")

    # what the service records when the child has exited: any worker reads it back
    for key, value in {"exit_code": "2", "error": "exited with code 2", "log_tail": "a\nb"}.items():
        client.set_tag(run_id, f"network_security.{key}", value)
    job = runner.get(job_id)
    assert (job["status"], job["exit_code"], job["error"]) == ("failed", 2, "exited with code 2")
    assert job["log_tail"] == ["a", "b"]

    assert runner.get(uuid.uuid4().hex) is None
    assert runner.get("' OR 1=1 --") is None
