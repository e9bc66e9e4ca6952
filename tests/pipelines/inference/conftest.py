"""Fixtures for the inference tests: the real schema and scoring parameters, a small fitted
``PhishingModel`` and batches of new sites written as CSV files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from network_security.champion import write_cache
from network_security.embedded_mongo import free_port
from network_security.model import PhishingModel
from network_security.reasons import with_allowed_values
from network_security.schema import allowed_values, feature_columns, target_column

CONF = Path(__file__).resolve().parents[3] / "conf" / "base"
SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    """The schema from conf/base/parameters.yml (the one the pipelines use)."""
    return yaml.safe_load((CONF / "parameters.yml").read_text())["schema"]


@pytest.fixture
def scoring(schema: dict[str, Any]) -> dict[str, Any]:
    """The ``scoring`` parameters of conf/base/parameters_inference.yml, freshly loaded, with
    the schema's allowed values for the reasons (as the inference node passes them)."""
    params = yaml.safe_load((CONF / "parameters_inference.yml").read_text())["scoring"]
    return with_allowed_values(params, schema)


@pytest.fixture(scope="session")
def records(sample_data_path: Path) -> pd.DataFrame:
    """The committed synthetic sample: labelled records with the real schema."""
    return pd.read_csv(sample_data_path)


@pytest.fixture(scope="session")
def phishing_model(records: pd.DataFrame, schema: dict[str, Any]) -> PhishingModel:
    """A small random forest fitted on the synthetic sample, wrapped as the champion would be."""
    features = feature_columns(schema)
    estimator = Pipeline(
        [("classifier", RandomForestClassifier(n_estimators=25, max_depth=8, random_state=0))]
    ).fit(records[features], records[target_column(schema)])
    return PhishingModel(
        estimator=estimator, feature_columns=features, threshold=0.5, version="test-rf-1"
    )


@pytest.fixture
def new_sites(records: pd.DataFrame, schema: dict[str, Any]) -> Callable[..., pd.DataFrame]:
    """``new_sites(n, seed=0)``: n feature vectors of the synthetic sample without ``Result``,
    with a leading ``url`` column, as a new batch to score would be."""

    def make(n: int, seed: int = 0) -> pd.DataFrame:
        rows = records.sample(n, random_state=seed, replace=n > len(records))
        frame = rows[feature_columns(schema)].reset_index(drop=True)
        urls = [f"https://site-{seed}-{i}.example.org/login?id={i}" for i in range(n)]
        frame.insert(0, "url", urls)
        return frame

    return make


@pytest.fixture
def random_sites(schema: dict[str, Any]) -> Callable[..., pd.DataFrame]:
    """``random_sites(n, seed=0)``: n feature vectors drawn uniformly within the schema domains."""

    def make(n: int, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {name: rng.choice(values, size=n) for name, values in allowed_values(schema).items()}
        )

    return make


@pytest.fixture
def write_champion(phishing_model: PhishingModel) -> Callable[[Path], Path]:
    """``write_champion(project)``: pickle the test model to the project's champion path."""

    def write(project: Path) -> Path:
        path = project / "data" / "06_models" / "champion.pkl"
        write_cache(phishing_model, path)  # signed: only verified caches are loaded
        return path

    return write


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tcp://127.0.0.1:PORT`` of a scheduler with two single-thread workers (processes)."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask-logs")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    common = ["--no-dashboard"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port",
             str(port), *common],
            stdout=subprocess.DEVNULL, stderr=(logs / "scheduler.log").open("w"), env=env,
        )
    ]  # fmt: skip
    try:
        for name in ("w1", "w2"):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                     "--name", name, "--host", "127.0.0.1", "--memory-limit", "2GiB", *common],
                    stdout=subprocess.DEVNULL, stderr=(logs / f"{name}.log").open("w"), env=env,
                )
            )  # fmt: skip
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)
