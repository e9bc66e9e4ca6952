"""Fixtures for the training tests: the training parameters, crafted data sets, an MLflow store.

``schema`` comes from the top-level conftest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from network_security.schema import allowed_values, feature_columns, target_column

CONF = Path(__file__).resolve().parents[3] / "conf" / "base"


@pytest.fixture
def training_params() -> dict[str, Any]:
    """conf/base/parameters_training.yml, freshly loaded so tests may edit it."""
    return yaml.safe_load((CONF / "parameters_training.yml").read_text())["training"]


@pytest.fixture
def fast_params(training_params: dict[str, Any]) -> dict[str, Any]:
    """The project's parameters with small, quick candidates for unit tests."""
    params = dict(training_params)
    params["n_jobs"] = 1
    params["cv"] = {"n_splits": 3, "random_state": 0}
    params["candidates"] = {
        "logistic_regression": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "encoding": "one_hot",
            "params": {"max_iter": 500},
            "search": {"C": [1.0]},
        },
        "decision_tree": {
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "search": {"max_depth": [4, 8]},
        },
    }
    params["ensembles"] = {}
    params["preference"] = []
    params["feature_importance"] = {"n_repeats": 1}
    return params


@pytest.fixture
def make_frame(schema: dict[str, Any]) -> Callable[..., pd.DataFrame]:
    """``make_frame(n, rule, seed=0, copies=1, noise=0.0)``: a model-input frame.

    ``n`` random distinct-ish feature vectors (allowed values of the schema), each repeated
    ``copies`` times; ``Result`` = ``rule(features)`` (phishing -1 / legitimate 1), with a
    fraction ``noise`` of the vectors' labels flipped.
    """

    def make(
        n: int,
        rule: Callable[[pd.DataFrame], np.ndarray],
        seed: int = 0,
        copies: int = 1,
        noise: float = 0.0,
    ) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        data = {
            name: rng.choice(values, size=n).astype("int64")
            for name, values in allowed_values(schema).items()
        }
        frame = pd.DataFrame(data, columns=feature_columns(schema))
        labels = np.asarray(rule(frame), dtype="int64")
        flip = rng.random(n) < noise
        labels[flip] = -labels[flip]
        frame[target_column(schema)] = labels
        return frame.loc[frame.index.repeat(copies)].reset_index(drop=True)

    return make
