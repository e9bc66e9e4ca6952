"""Shared fixtures: a real MongoDB-compatible server over TCP, temporary Kedro projects, data.

``mongo_uri`` is ``MONGODB_URI`` when it is set (a real MongoDB or Atlas), otherwise a SecantusDB
server this session starts on a free loopback port with a temporary data directory.

Tests of behaviour read the committed synthetic sample (``sample_data_path``); the tests that
need the real distribution read the real data set (``real_data_path``), which lives beside the
checkout and is never copied into it. Every test that uses ``real_data_path`` is marked
``realdata`` and skips, saying where it looked, when the data set is absent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from pymongo import MongoClient

from network_security.embedded_mongo import EmbeddedMongo
from network_security.schema import allowed_values, record_key_column, target_column, target_values
from network_security.warning_filters import QUIET_WARNINGS, silence_third_party_warnings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = PROJECT_ROOT.parent / "shared" / "data" / "phishing_websites.csv"
SAMPLE_DATA = PROJECT_ROOT / "data" / "01_raw" / "phishing_sample.csv"

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
silence_third_party_warnings()  # the same list as every run (network_security.warning_filters)


def pytest_configure(config: pytest.Config) -> None:
    """pytest resets warning filters around each test: give it the same list as ini filters."""
    for message, category in QUIET_WARNINGS:
        config.addinivalue_line("filterwarnings", f"ignore:{message}:{category.__name__}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``realdata`` every test that reads the real data set (directly or via a fixture)."""
    for item in items:
        if "real_data_path" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(autouse=True)
def _no_mlflow_run_left_active() -> Iterator[None]:
    """End any MLflow run a test leaves active, so the next test starts from a clean slate."""
    yield
    import mlflow

    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(autouse=True)
def _release_the_champion_alias(request: pytest.FixtureRequest) -> Iterator[None]:
    """The session's MLflow store is shared: a test that promoted a champion (the alias
    `champion` of `network_security`) releases it, so later tests start without one."""
    yield
    if "mlflow_tracking_uri" not in request.fixturenames:
        return
    import mlflow

    uri = request.getfixturevalue("mlflow_tracking_uri")
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        mlflow.MlflowClient(uri).delete_registered_model_alias("network_security", "champion")


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    """The schema from conf/base/parameters.yml (the one the pipelines use)."""
    return yaml.safe_load((PROJECT_ROOT / "conf/base/parameters.yml").read_text())["schema"]


@pytest.fixture
def make_records(schema: dict[str, Any]) -> Callable[..., pd.DataFrame]:
    """``make_records(n, seed=0)``: n valid records (int64) with unique keys, random values."""

    def make(n: int, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        data: dict[str, Any] = {
            record_key_column(schema): [f"key-{seed}-{i:06d}" for i in range(n)]
        }
        for name, values in allowed_values(schema).items():
            data[name] = rng.choice(values, size=n).astype("int64")
        data[target_column(schema)] = rng.choice(target_values(schema), size=n).astype("int64")
        return pd.DataFrame(data)

    return make


@pytest.fixture(scope="session")
def sample_data_path() -> Path:
    """The committed synthetic sample (3,000 labelled records drawn from the data set's profile)."""
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    """The real UCI data set beside the checkout (never copied into the repository); the tests
    that use it are marked ``realdata`` and skip when it is absent."""
    if not REAL_DATA.exists():
        pytest.skip(f"realdata: the real data set is not at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a real server over TCP: ``MONGODB_URI`` if set, else a SecantusDB started here."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"]
        return
    server = EmbeddedMongo(tmp_path_factory.mktemp("mongo") / "data").start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One temporary MLflow store for the session (creating a sqlite store costs ~10 s).

    The experiment ``network_security`` is created up front with its artifacts in a temporary
    folder; otherwise a sqlite store puts them in ./mlruns of the working directory.
    """
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.MlflowClient(uri).create_experiment(
        "network_security", artifact_location=(folder / "artifacts").as_uri()
    )
    return uri


@pytest.fixture
def mlflow_store(mlflow_tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session's temporary MLflow store (see tests/conftest.py), active for this test."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    return mlflow_tracking_uri


@pytest.fixture
def mongo_database() -> str:
    """A database name of its own for each test."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mongo_client(mongo_uri: str, mongo_database: str) -> Iterator[MongoClient]:
    """A client on the test server; drops the test's database afterwards."""
    client = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        yield client
    finally:
        client.drop_database(mongo_database)
        client.close()


@pytest.fixture
def kedro_project(tmp_path: Path) -> Path:
    """A temporary copy of the project (pyproject, conf/base, committed raw data) to run in."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copy(PROJECT_ROOT / ".telemetry", project / ".telemetry")
    shutil.copytree(PROJECT_ROOT / "conf" / "base", project / "conf" / "base")
    (project / "conf" / "local").mkdir()
    template = PROJECT_ROOT / "conf" / "local" / "credentials.yml.example"
    shutil.copy(template, project / "conf" / "local" / template.name)
    (project / "src").mkdir()  # the package itself is installed (pip install -e .)
    for layer in (
        "01_raw", "02_intermediate", "05_model_input", "06_models",
        "07_model_output", "08_reporting",
    ):  # fmt: skip
        (project / "data" / layer).mkdir(parents=True)
    for raw in (PROJECT_ROOT / "data" / "01_raw").glob("*.csv"):
        shutil.copy(raw, project / "data" / "01_raw" / raw.name)
    return project


@pytest.fixture
def run_kedro(
    mongo_uri: str,
    mongo_client: MongoClient,
    mongo_database: str,
    mlflow_tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., dict[str, Any]]:
    """Run a pipeline of a temporary project through a KedroSession against the test server.

    Usage: ``run_kedro(kedro_project, "ingestion", {"raw_data_path": "..."})``. The run uses the
    test's own database (runtime parameter ``mongo_database``) and the session's MLflow store.
    """
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)

    def run(project: Path, pipeline: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        bootstrap_project(project)
        runtime_params = {"mongo_database": mongo_database, **(params or {})}
        try:
            with KedroSession.create(project_path=project, runtime_params=runtime_params) as s:
                return s.run(pipeline_name=pipeline)
        finally:
            # kedro-mlflow 2.0.3 leaves its (finished) run on mlflow's active-run stack of this
            # process; the next session would log into it. `kedro run` is one process per run.
            while mlflow.active_run():
                mlflow.end_run()

    return run
