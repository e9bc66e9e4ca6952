"""The model datasets against a real (temporary, SQLite) MLflow store: the candidate is stamped
with the registry version it is about to get; the champion is read-only (the champion path)."""

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
    ChampionDataset,
    MlflowRegisteredModelDataset,
)
from network_security.model import PhishingModel
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


def test_saving_stamps_the_coming_registry_version_and_the_run(mlflow_store, model, tmp_path):
    name = f"test_registry_{uuid.uuid4().hex[:8]}"
    dataset = MlflowRegisteredModelDataset(str(tmp_path / "candidate.pkl"), name)
    experiment = mlflow.get_experiment_by_name("network_security")
    client = mlflow.MlflowClient()

    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        dataset.save(model)
    stamped = dataset.load()
    assert stamped.version == "1"  # no version of this model yet
    assert stamped.params["mlflow_run_id"] == run.info.run_id
    assert stamped.params["registered_model_name"] == name
    assert model.version == "unversioned"  # the node's object is not mutated

    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=str(tmp_path), run_id=run.info.run_id)
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        dataset.save(model)
    assert dataset.load().version == "3"
    with (tmp_path / "candidate.pkl").open("rb") as handle:  # a plain pickle, as MLflow logs it
        assert pickle.load(handle).version == "3"


def test_saving_without_an_active_run_says_how_to_run(mlflow_store, model, tmp_path):
    dataset = MlflowRegisteredModelDataset(str(tmp_path / "candidate.pkl"), "never_registered")
    assert mlflow.active_run() is None
    with pytest.raises(DatasetError, match="No active MLflow run"):
        dataset.save(model)
    assert not (tmp_path / "candidate.pkl").exists()
    with pytest.raises(DatasetError, match="expects a PhishingModel"):
        dataset.save({"model": model})


def test_without_tracking_the_candidate_is_unregistered_and_promotes_locally(
    mlflow_store, model, tmp_path
):
    candidate = MlflowRegisteredModelDataset(str(tmp_path / "candidate.pkl"), "unused")
    candidate._logging_activated = False  # what kedro-mlflow does when tracking is disabled
    candidate.save(model)
    assert candidate.load().version == "unregistered"

    name = f"test_local_{uuid.uuid4().hex[:8]}"
    champion = ChampionDataset(str(tmp_path / "champion.pkl"), name)
    assert champion.load() is None
    assert not champion.exists()
    kept = champion.commit_promotion(candidate.load(), {"promote": False, "reason": "no"})
    assert kept == "not_promoted" and champion.load() is None
    promoted = champion.commit_promotion(candidate.load(), {"promote": True, "reason": "first"})
    assert promoted == "promoted"
    assert champion.load().version == "unregistered"  # from the cache: no alias in the registry
    with pytest.raises(DatasetError, match="read-only"):
        champion.save(model)
    assert "alias" in champion._describe()
