"""Fixtures of the service tests: a champion trained on the committed synthetic sample, a
project copy, the app in-process (TestClient) and a real uvicorn server on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from kedro.config import OmegaConfigLoader
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import network_security
from network_security.champion import write_cache
from network_security.model import PhishingModel
from network_security.schema import feature_columns, target_column
from network_security.service.settings import ServiceSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-test-token-for-the-service"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def schema() -> dict:
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="local"
    )
    return loader["parameters"]["schema"]


@pytest.fixture(scope="session")
def sample_data(sample_data_path: Path) -> pd.DataFrame:
    """The committed synthetic sample: labelled records with the real schema."""
    return pd.read_csv(sample_data_path)


def build_champion(data: pd.DataFrame, schema: dict, version: str, seed: int = 0) -> PhishingModel:
    """A small but real champion: one-hot + logistic regression, classes [-1, 1]."""
    features = feature_columns(schema)
    target = target_column(schema)
    train, test = train_test_split(data, test_size=0.25, random_state=seed, stratify=data[target])
    estimator = make_pipeline(
        OneHotEncoder(handle_unknown="ignore"), LogisticRegression(max_iter=1000, C=1.0)
    )
    estimator.fit(train[features], train[target])
    model = PhishingModel(
        estimator=estimator,
        feature_columns=features,
        threshold=0.5,
        version=version,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    probability = model.phishing_probability(test)
    model.metrics = {
        "accuracy": float(accuracy_score(test[target], model.predict(test))),
        "roc_auc": float(roc_auc_score(test[target] == -1, probability)),
    }
    return model


@pytest.fixture(scope="session")
def champion(sample_data: pd.DataFrame, schema: dict) -> PhishingModel:
    return build_champion(sample_data, schema, version="test-champion-1")


def save_model(model: PhishingModel, path: Path) -> None:
    write_cache(model, path)  # signed: the service loads only verified caches


@pytest.fixture(scope="session")
def service_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's configuration (conf/base, pyproject.toml) in a temp folder."""
    root = tmp_path_factory.mktemp("service_project")
    shutil.copytree(PROJECT_ROOT / "conf" / "base", root / "conf" / "base")
    (root / "conf" / "local").mkdir()  # credentials.yml is made from its template on start
    shutil.copy(PROJECT_ROOT / "conf/local/credentials.yml.example", root / "conf/local")
    (root / "src").mkdir()  # kedro wants the source folder; the package itself is installed
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(PROJECT_ROOT / ".telemetry", root / ".telemetry")  # as in the project
    return root


@pytest.fixture(scope="session")
def champion_path(service_project: Path, champion: PhishingModel) -> Path:
    path = service_project / "data" / "06_models" / "champion.pkl"
    save_model(champion, path)
    return path


@pytest.fixture
def make_settings(service_project: Path, champion_path: Path):
    """ServiceSettings for the project copy, with small limits unless overridden."""

    def make(**overrides) -> ServiceSettings:
        values = {
            "project_path": service_project,
            "model_path": champion_path,
            "max_upload_bytes": 400_000,
            "max_rows": 2_000,
            "max_columns": 60,
            "allowed_hosts": ["testserver"],  # the host name of Starlette's TestClient
        }
        values.update(overrides)
        return ServiceSettings(**values)

    return make


@pytest.fixture
def make_client(make_settings):
    """TestClient factory: the app in-process with its lifespan run; 500s come back as 500s."""
    from network_security.service.app import create_app

    clients: list[TestClient] = []

    def make(**overrides) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture(scope="session")
def api_token() -> str:
    return TOKEN


@pytest.fixture(scope="session")
def make_champion(sample_data: pd.DataFrame, schema: dict):
    """``make_champion(version, seed)``: another champion trained on the synthetic sample."""
    return lambda version, seed=0: build_champion(sample_data, schema, version=version, seed=seed)


@pytest.fixture(scope="session")
def write_champion():
    """``write_champion(model, path)``: pickle a model the way the training pipeline does."""
    return save_model


@pytest.fixture(scope="session")
def batch(sample_data: pd.DataFrame, schema: dict) -> pd.DataFrame:
    """25 rows of the synthetic sample, features only, with an extra ``url`` column."""
    rows = sample_data.sample(25, random_state=7)[feature_columns(schema)].reset_index(drop=True)
    rows.insert(0, "url", [f"https://site-{i}.example/login" for i in range(len(rows))])
    return rows


def service_environment(**settings: str) -> dict[str, str]:
    """The environment of a service process: NETWORK_SECURITY_* settings, importable package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETWORK_SECURITY_")}
    package_root = str(Path(network_security.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update({f"NETWORK_SECURITY_{key.upper()}": value for key, value in settings.items()})
    return env


class LiveServer:
    """``network-security serve`` in a child process on a free loopback port."""

    def __init__(self, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - fixed command
            [sys.executable, "-m", "network_security", "serve",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60.0) -> LiveServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited on start:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the service did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_service(tmp_path: Path):
    """``start_service(cwd, **settings)``: a real server with these NETWORK_SECURITY_* settings
    (it inherits the rest of the environment as it is when called); stopped after the test."""
    servers: list[LiveServer] = []

    def start(cwd: Path, **settings: str) -> LiveServer:
        log = tmp_path / f"service-{len(servers)}.log"
        server = LiveServer(service_environment(**settings), cwd=cwd, log_path=log)
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def live_server(
    service_project: Path, champion_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The service over real HTTP, with the test champion and a training token set."""
    env = service_environment(
        project_path=str(service_project),
        model_path=str(champion_path),
        max_upload_bytes="400000",
        max_rows="2000",
        api_token=TOKEN,
        training_pipeline="no_such_pipeline",
    )
    # the (failing) training runs of these tests need no database: keep the embedded one off
    env.setdefault("MONGODB_URI", "mongodb://127.0.0.1:9/")
    log = tmp_path_factory.mktemp("live") / "service.log"
    server = LiveServer(env, cwd=service_project, log_path=log).wait_ready()
    yield server
    server.stop()
