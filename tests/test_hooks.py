"""The embedded database starts only when a MongoDB dataset is used: for a run, before a pipeline
that reads or writes one; in an interactive session, on the first load. Creating the context or
the catalog (every Kedro command does) starts nothing."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from kedro.framework.project import pipelines, settings
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from network_security.hooks import EmbeddedMongoHook, ProjectMlflowHook


def servers_on(storage: Path) -> list[int]:
    """PIDs of SecantusDB processes keeping their data in ``storage``."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if "secantus" in line and str(storage) in line:
            found.append(process.info["pid"])
    return found


@pytest.fixture
def session(kedro_project: Path, mlflow_tracking_uri: str, monkeypatch: pytest.MonkeyPatch):
    """A session on a temporary project with MONGODB_URI unset (the embedded default)."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    bootstrap_project(kedro_project)
    with KedroSession.create(project_path=kedro_project) as session:
        yield session


@pytest.fixture
def hook():
    """The project's EmbeddedMongoHook (the instance the sessions use); stopped afterwards."""
    (hook,) = (h for h in settings.HOOKS if isinstance(h, EmbeddedMongoHook))
    yield hook
    hook.stop()


def test_the_context_and_catalog_start_nothing_and_the_first_load_starts_the_database(
    session, hook, kedro_project
):
    storage = kedro_project / "data" / "mongo"
    catalog = session.load_context().catalog
    # the git-ignored local credentials were created from their template for the catalog
    local = kedro_project / "conf" / "local"
    template = (local / "credentials.yml.example").read_text()
    assert (local / "credentials.yml").read_text() == template
    assert "(no URI yet)" in str(catalog.get("phishing_records"))
    assert not storage.exists() and servers_on(storage) == []

    assert catalog.load("phishing_records").empty  # the project's own, still empty, database
    assert len(servers_on(storage)) == 1
    assert "127.0.0.1:" in str(catalog.get("phishing_records"))
    hook.stop()
    assert servers_on(storage) == []


def test_a_run_starts_the_database_only_for_a_pipeline_with_a_mongodb_dataset(
    session, hook, kedro_project
):
    storage = kedro_project / "data" / "mongo"
    catalog = session.load_context().catalog
    inference, validation = pipelines["inference"], pipelines["validation"]

    hook.before_pipeline_run(pipeline=inference, catalog=catalog)
    assert servers_on(storage) == []
    hook.after_pipeline_run(pipeline=inference, catalog=catalog)

    for end in (hook.after_pipeline_run, hook.on_pipeline_error):
        hook.before_pipeline_run(pipeline=validation, catalog=catalog)
        assert len(servers_on(storage)) == 1
        end(pipeline=validation, catalog=catalog)
        assert servers_on(storage) == []

    # a server an interactive session started stays up across a run in that session
    assert catalog.load("phishing_records").empty
    (started,) = servers_on(storage)
    hook.before_pipeline_run(pipeline=validation, catalog=catalog)
    hook.after_pipeline_run(pipeline=validation, catalog=catalog)
    assert servers_on(storage) == [started]
    assert catalog.load("phishing_records").empty


def test_kedro_mlflow_hook_is_the_projects_one_logging_each_parameter_once(
    session, mlflow_tracking_uri
):
    import mlflow
    from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

    # one kedro-mlflow hook in the session: the project's, the plugin's own instance disabled
    registered = session._hook_manager.get_plugins()
    assert [type(p) for p in registered if isinstance(p, MlflowHook)] == [ProjectMlflowHook]

    hook = ProjectMlflowHook()
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    client = mlflow.MlflowClient(mlflow_tracking_uri)
    sent = []
    original = mlflow.log_param
    try:
        mlflow.log_param = lambda name, value: sent.append((name, value)) or original(name, value)
        for _ in range(2):
            with mlflow.start_run() as run:
                hook.run_id = run.info.run_id
                for _ in range(3):  # the same parameters node after node
                    hook._log_param("schema.target.name", "Result")
                    hook._log_param("training.cv.n_splits", 5)
            assert client.get_run(run.info.run_id).data.params == {
                "schema.target.name": "Result",
                "training.cv.n_splits": "5",
            }
    finally:
        mlflow.log_param = original
    assert len(sent) == 4  # once per parameter and run
