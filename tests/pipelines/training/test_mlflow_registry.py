"""The MLflow registry datasets against a real (temporary, SQLite) MLflow store."""

from __future__ import annotations

import pickle
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from sklearn.linear_model import LogisticRegression

from network_security.datasets.mlflow_registry import (
    MlflowChampionDataset,
    MlflowRegisteredModelDataset,
)
from network_security.model import PhishingModel
from network_security.pipelines.training.nodes import build_input_example
from network_security.schema import feature_columns


@pytest.fixture
def model(schema) -> PhishingModel:
    """A small fitted PhishingModel over the schema's features."""
    columns = feature_columns(schema)
    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.choice([-1, 1], size=(200, len(columns))), columns=columns)
    labels = np.where(features["SSLfinal_State"] > 0, 1, -1)
    estimator = LogisticRegression().fit(features, labels)
    return PhishingModel(
        estimator=estimator,
        feature_columns=columns,
        threshold=0.4,
        trained_at="2026-01-01T00:00:00+00:00",
        metrics={"test_accuracy": 0.97},
        params={"candidate": "logistic_regression"},
    )


def test_saving_registers_a_new_version_and_loading_returns_the_versioned_model(
    mlflow_store, model, schema, tmp_path
):
    name = f"test_registry_{uuid.uuid4().hex[:8]}"
    dataset = MlflowRegisteredModelDataset(str(tmp_path / "candidate.pkl"), name)
    example = build_input_example(schema)
    experiment = mlflow.get_experiment_by_name("network_security")

    versions = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
            dataset.save({"model": model, "input_example": example, "tags": {"candidate": "lr"}})
        loaded = dataset.load()
        versions.append(loaded.version)
        assert loaded.params["mlflow_run_id"] == run.info.run_id

    assert versions == ["1", "2"]  # one new version per save
    client = mlflow.MlflowClient()
    version = client.get_model_version(name, "2")
    assert version.run_id == run.info.run_id
    assert version.tags["candidate"] == "lr"
    assert model.version == "unversioned"  # the node's object is not mutated

    registered = mlflow.pyfunc.load_model(f"models:/{name}/2")
    inputs = registered.metadata.get_input_schema().input_names()
    assert inputs == feature_columns(schema)
    predictions = registered.predict(example)
    assert list(predictions.columns) == ["prediction", "phishing_probability"]
    np.testing.assert_array_equal(predictions["prediction"], model.predict(example))
    np.testing.assert_allclose(
        predictions["phishing_probability"], model.phishing_probability(example)
    )


def test_saving_without_an_active_run_says_how_to_run(mlflow_store, model, schema, tmp_path):
    dataset = MlflowRegisteredModelDataset(str(tmp_path / "candidate.pkl"), "never_registered")
    assert mlflow.active_run() is None
    with pytest.raises(DatasetError, match="No active MLflow run"):
        dataset.save({"model": model, "input_example": build_input_example(schema)})
    assert not (tmp_path / "candidate.pkl").exists()


def test_the_champion_dataset_promotes_with_the_alias_and_otherwise_keeps_the_file(
    mlflow_store, model, schema, tmp_path
):
    name = f"test_champion_{uuid.uuid4().hex[:8]}"
    registry = MlflowRegisteredModelDataset(str(tmp_path / "candidate.pkl"), name)
    experiment = mlflow.get_experiment_by_name("network_security")
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        registry.save({"model": model, "input_example": build_input_example(schema)})
    registered = registry.load()
    champion_file = tmp_path / "champion.pkl"
    champion = MlflowChampionDataset(str(champion_file), name)

    assert champion.load() is None  # nothing promoted yet
    champion.save({"promote": True, "model": registered, "reason": "no champion yet"})
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(name, "champion").version) == registered.version
    with champion_file.open("rb") as handle:  # a plain pickle, as the service reads it
        assert pickle.load(handle).version == registered.version

    before = champion_file.read_bytes()
    other = PhishingModel(estimator=model.estimator, feature_columns=model.feature_columns)
    champion.save({"promote": False, "model": other, "reason": "does not beat the champion"})
    assert champion_file.read_bytes() == before
    assert champion.load().version == registered.version
    assert str(client.get_model_version_by_alias(name, "champion").version) == registered.version
