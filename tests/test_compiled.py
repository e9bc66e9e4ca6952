"""The compiled predictor (``network_security.compiled``) against scikit-learn, on the real data
set: the same probabilities within 1e-6 for every model shape training builds, for one row, a few
rows, a request-sized batch (a vote's members in parallel threads) and a large one (parallel
row blocks)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import network_security.compiled as compiled_module
from network_security.compiled import UnsupportedModel, compile_estimator
from network_security.model import PhishingModel
from network_security.pipelines.training.search import build_ensemble, build_model_pipeline
from network_security.schema import feature_columns, target_column

CONF = Path(__file__).resolve().parents[1] / "conf" / "base"
TOLERANCE = 1e-6

CANDIDATES: dict[str, dict[str, Any]] = {
    "random_forest": {
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 25, "max_features": 0.3},
    },
    "extra_trees": {
        "estimator": "sklearn.ensemble.ExtraTreesClassifier",
        "params": {"n_estimators": 25},
    },
    "hist_gradient_boosting": {
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 60, "max_leaf_nodes": 15, "early_stopping": False},
    },
    "categorical_boosting": {  # the production shape: CategoryCodes, then categorical splits
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "encoding": "categorical",
        "params": {"max_iter": 60, "max_leaf_nodes": 15, "early_stopping": False},
    },
    "one_hot_forest": {
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 15},
        "encoding": "one_hot",
    },
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return yaml.safe_load((CONF / "parameters.yml").read_text())["schema"]


@pytest.fixture(scope="module")
def records(real_data_path: Path) -> pd.DataFrame:
    return pd.read_csv(real_data_path)


@pytest.fixture(scope="module")
def models(records: pd.DataFrame, schema: dict[str, Any]) -> dict[str, Any]:
    """Small fitted models of every shape training builds, on the real data set."""
    features = feature_columns(schema)
    fitted = {
        name: build_model_pipeline(spec, features, random_state=0)
        for name, spec in CANDIDATES.items()
    }
    fitted["soft_vote"] = build_ensemble(
        {"hist_gradient_boosting": {}, "random_forest": {}}, CANDIDATES, features, 0
    )
    fitted["weighted_vote"] = build_ensemble(
        {"extra_trees": {}, "hist_gradient_boosting": {}}, CANDIDATES, features, 0
    ).set_params(weights=[1.0, 3.0])
    fitted["production_vote"] = build_ensemble(
        {"categorical_boosting": {}, "extra_trees": {}}, CANDIDATES, features, 0
    )
    fitted["bare_forest"] = RandomForestClassifier(n_estimators=10, random_state=0)
    fitted["bare_boosting"] = HistGradientBoostingClassifier(
        max_iter=30, categorical_features=list(range(0, len(features), 2)), random_state=0
    )
    for model in fitted.values():
        model.fit(records[features], records[target_column(schema)])
    return fitted


def sklearn_probability(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    return estimator.predict_proba(frame)[:, list(estimator.classes_).index(-1)]


@pytest.mark.parametrize(
    "name",
    [*CANDIDATES, "soft_vote", "weighted_vote", "production_vote", "bare_forest", "bare_boosting"],
)
def test_compiled_probabilities_equal_scikit_learns(models, records, schema, name, monkeypatch):
    estimator = models[name]
    features = feature_columns(schema)
    predictor = compile_estimator(estimator, features, phishing_label=-1)
    monkeypatch.setattr(compiled_module, "PARALLEL_MIN_ROWS", 1000)  # exercise the row blocks
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    everything = records[features]
    batches = (everything.head(1), everything.sample(9, random_state=1), everything.head(300))
    for rows in (*batches, everything):
        expected = sklearn_probability(estimator, rows)
        got = predictor.phishing_probability(rows.to_numpy())
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    # every path was taken: members one after the other, in parallel, and row blocks
    assert len(batches[1]) < compiled_module.MEMBERS_PARALLEL_MIN_ROWS <= len(batches[2])
    assert len(everything) >= 2 * compiled_module.PARALLEL_MIN_ROWS
    # values the model never saw (a category unknown to the boosting's encoder: its missing
    # branch) are evaluated as scikit-learn does too
    unseen = everything.head(300).copy()
    unseen.iloc[::3, [0, 7]] = 5
    np.testing.assert_allclose(
        predictor.phishing_probability(unseen.to_numpy()),
        sklearn_probability(estimator, unseen),
        rtol=0,
        atol=TOLERANCE,
    )


def test_the_model_scores_through_its_compiled_predictor(models, records, schema, caplog):
    features = feature_columns(schema)
    model = PhishingModel(models["soft_vote"], features, version="v-compiled")
    with caplog.at_level(logging.INFO, logger="network_security.model"):
        # a model scored once (training's evaluation) can skip the compiler: the same numbers
        once = model.phishing_probability(records, compiled=False)
        assert "compiled predictor" not in caplog.text and "_compiled" not in model.__dict__
        probability = model.phishing_probability(records)
    np.testing.assert_array_equal(once, probability)
    assert model.compiled is not None
    assert "compiled predictor of the soft vote" in caplog.text
    expected = sklearn_probability(models["soft_vote"], records[features])
    np.testing.assert_allclose(probability, expected, rtol=0, atol=TOLERANCE)
    matrix = records[features].to_numpy(dtype=np.int64)
    np.testing.assert_allclose(
        model.phishing_probability_of_matrix(matrix), expected, rtol=0, atol=TOLERANCE
    )


def test_the_compiled_form_is_never_pickled_and_old_pickles_load(models, records, schema):
    features = feature_columns(schema)
    model = PhishingModel(models["random_forest"], features, version="v-pickle")
    first = model.phishing_probability(records.head(50))
    assert model.compiled is not None
    restored = pickle.loads(pickle.dumps(model))
    assert "_compiled" not in restored.__dict__
    # a pickle written before the compiled form existed has no such attribute either
    state = dict(model.__getstate__())
    old = PhishingModel.__new__(PhishingModel)
    old.__dict__.update(state)
    for loaded in (restored, old):
        np.testing.assert_array_equal(loaded.phishing_probability(records.head(50)), first)
        assert loaded.compiled is not None


def test_an_unsupported_model_falls_back_to_predict_proba_with_one_log_line(
    records, schema, caplog
):
    features = feature_columns(schema)
    estimator = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression())
    estimator.fit(records[features], records[target_column(schema)])
    with pytest.raises(UnsupportedModel, match="LogisticRegression"):
        compile_estimator(estimator, features, phishing_label=-1)
    model = PhishingModel(estimator, features, version="v-linear")
    with caplog.at_level(logging.INFO, logger="network_security.model"):
        for _ in range(3):
            probability = model.phishing_probability(records.head(20))
    assert model.compiled is None
    assert caplog.text.count("no compiled predictor") == 1
    np.testing.assert_array_equal(
        probability, sklearn_probability(estimator, records.head(20)[features])
    )


@pytest.mark.parametrize("name", ["bare_forest", "bare_boosting"])
def test_missing_values_take_scikit_learns_branches(models, records, schema, name):
    features = feature_columns(schema)
    estimator = models[name]
    predictor = compile_estimator(estimator, features, phishing_label=-1)
    holes = records[features].head(400).astype("float64")
    for column in range(0, len(features), 3):  # a NaN in every third column of some rows
        holes.iloc[column::7, column] = np.nan
    np.testing.assert_allclose(
        predictor.phishing_probability(holes.to_numpy()),
        sklearn_probability(estimator, holes),
        rtol=0,
        atol=TOLERANCE,
    )


def test_hard_voting_and_missing_values_are_left_to_scikit_learn(models, records, schema):
    features = feature_columns(schema)
    hard = VotingClassifier(
        [("forest", RandomForestClassifier(n_estimators=5, random_state=0))], voting="hard"
    ).fit(records[features], records[target_column(schema)])
    with pytest.raises(UnsupportedModel, match="voting='hard'"):
        compile_estimator(hard, features, phishing_label=-1)
    model = PhishingModel(models["bare_forest"], features)
    holes = records.head(5)[features].astype("float64")
    holes.iloc[0, 0] = np.nan  # scikit-learn's own rules for a missing value
    np.testing.assert_array_equal(
        model.phishing_probability(holes), sklearn_probability(models["bare_forest"], holes)
    )
