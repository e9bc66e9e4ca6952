"""The compiled predictor (``network_security.tree_predictor``) against scikit-learn, on the
committed synthetic sample and on the real data set (``realdata``): the same probabilities
within 1e-9 for every model shape training builds, for one row, a few rows, a request-sized
batch (a vote's members in parallel threads) and a large one (parallel row blocks); and the
check that decides, when a model is first scored, whether the compiled path or
``predict_proba`` serves it."""

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
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import network_security.tree_predictor as tree_predictor_module
from network_security import tree_kernels
from network_security.drift import build_drift_reference
from network_security.model import PhishingModel
from network_security.pipelines.training.search import build_ensemble, build_model_pipeline
from network_security.schema import feature_columns, target_column
from network_security.tree_predictor import (
    AGREEMENT_TOLERANCE,
    REFERENCE_ROWS,
    CompiledPredictor,
    UnsupportedModel,
    compile_estimator,
    largest_difference,
    reference_rows,
)

CONF = Path(__file__).resolve().parents[1] / "conf" / "base"
TOLERANCE = AGREEMENT_TOLERANCE
PREDICTOR_LOG = "network_security.tree_predictor"

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


@pytest.fixture(scope="module", params=["sample", pytest.param("real", marks=pytest.mark.realdata)])
def records(request: pytest.FixtureRequest) -> pd.DataFrame:
    """The committed synthetic sample, then the real data set (skips when it is absent)."""
    path = request.getfixturevalue(f"{request.param}_data_path")
    return pd.read_csv(path)


@pytest.fixture(scope="module")
def models(records: pd.DataFrame, schema: dict[str, Any]) -> dict[str, Any]:
    """Small fitted models of every shape training builds, on ``records``."""
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
    monkeypatch.setattr(tree_predictor_module, "PARALLEL_MIN_ROWS", 1000)  # exercise the row blocks
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    everything = records[features]
    batches = (everything.head(1), everything.sample(9, random_state=1), everything.head(300))
    for rows in (*batches, everything):
        expected = sklearn_probability(estimator, rows)
        got = predictor.phishing_probability(rows.to_numpy())
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    # every path was taken: members one after the other, in parallel, and row blocks
    assert len(batches[1]) < tree_predictor_module.MEMBERS_PARALLEL_MIN_ROWS <= len(batches[2])
    assert len(everything) >= 2 * tree_predictor_module.PARALLEL_MIN_ROWS
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


def _variants(rows: np.ndarray) -> np.ndarray:
    """Variants of each row as reasons make them (each indicator set to each other value of
    -1/0/1), plus one with an unseen category and a missing value, and three cells that take
    four different values among a row's variants (more than a group holds)."""
    n, columns = rows.shape
    variants = [
        np.where(np.arange(columns) == j, value, rows)
        for j in range(columns)
        for value in (-1, 0, 1)
    ]
    unusual = rows.copy()
    unusual[:, 0], unusual[:, 3] = 5, np.nan
    spread = [rows.copy() for _ in range(4)]
    for k, variant in enumerate(spread):
        variant[:, [1, 2, 4]] = [-1, 0, 1, 7][k]
    stacked = np.stack([unusual, *spread, *variants], axis=1)  # (rows, variants, columns)
    return stacked[:, : tree_predictor_module.MAX_VARIANTS]


@pytest.mark.parametrize(
    "name", ["production_vote", "soft_vote", "one_hot_forest", "bare_boosting"]
)
def test_variant_probabilities_equal_scoring_each_variant(
    models, records, schema, name, monkeypatch
):
    """The shared walks of a row's variants give exactly the numbers of scoring them one by one,
    for one row and over parallel row blocks."""
    features = feature_columns(schema)
    predictor = compile_estimator(models[name], features, phishing_label=-1)
    monkeypatch.setattr(tree_predictor_module, "PARALLEL_MIN_ROWS", 256)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    for rows in (records[features].head(1), records[features].sample(200, random_state=3)):
        matrix = rows.to_numpy(dtype=np.float64)
        variants = _variants(matrix)
        got = predictor.phishing_probability_of_variants(matrix, variants)
        expected = predictor.phishing_probability(variants.reshape(-1, len(features)))
        np.testing.assert_array_equal(got, expected.reshape(variants.shape[:2]))
    with pytest.raises(ValueError, match="At most 63 variants"):
        predictor.phishing_probability_of_variants(matrix, np.repeat(variants, 2, axis=1))


def test_the_model_scores_through_its_compiled_predictor(models, records, schema, caplog):
    features = feature_columns(schema)
    model = PhishingModel(models["soft_vote"], features, version="v-compiled")
    with caplog.at_level(logging.INFO, logger=PREDICTOR_LOG):
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
    with caplog.at_level(logging.INFO, logger=PREDICTOR_LOG):
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


class SharperExtraTrees(ExtraTreesClassifier):
    """Extra trees whose probabilities are squared and renormalised: its trees alone do not
    give its ``predict_proba``, so the compiled path reads a different model."""

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = super().predict_proba(X) ** 2
        return proba / proba.sum(axis=1, keepdims=True)


def scored_with_one_warning(model: PhishingModel, records: pd.DataFrame, caplog) -> list[str]:
    """Scores ``model`` three times (frame and matrix); returns its warnings, checking that
    the probabilities are the estimator's own ``predict_proba``."""
    features = model.feature_columns
    rows = records.head(300)
    with caplog.at_level(logging.INFO, logger=PREDICTOR_LOG):
        by_frame = [model.phishing_probability(rows) for _ in range(2)]
        by_matrix = model.phishing_probability_of_matrix(rows[features].to_numpy(np.int64))
    assert model.compiled is None
    expected = sklearn_probability(model.estimator, rows[features])
    for probability in (*by_frame, by_matrix):
        np.testing.assert_array_equal(probability, expected)
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_reference_rows_hold_every_indicator_value_and_the_training_frequencies(records, schema):
    features = feature_columns(schema)
    training = build_drift_reference(records, schema)
    rows = reference_rows(features, training)
    assert rows.shape == (3 + 2 * REFERENCE_ROWS, len(features))
    for j in range(len(features)):
        assert set(np.unique(rows[:3, j])) == {-1.0, 0.0, 1.0}  # every value, in three rows
    np.testing.assert_array_equal(rows, reference_rows(features, training))  # seeded
    # the last rows follow the training frequencies: a value training never saw is not drawn
    drawn = rows[3 + REFERENCE_ROWS :]
    for j, name in enumerate(features):
        unseen = [int(v) for v, n in training["features"][name]["counts"].items() if n == 0]
        assert not np.isin(drawn[:, j], unseen).any()
    assert reference_rows(features).shape == (3 + REFERENCE_ROWS, len(features))


def test_a_compiled_path_that_agrees_with_predict_proba_is_used(models, records, schema, caplog):
    features = feature_columns(schema)
    estimator = models["production_vote"]
    training = build_drift_reference(records, schema)
    model = PhishingModel(estimator, features, version="v-checked", drift_reference=training)
    with caplog.at_level(logging.INFO, logger=PREDICTOR_LOG):
        predictor = model.compiled
    assert predictor is not None
    rows = reference_rows(features, training)
    assert largest_difference(predictor, estimator, rows, -1) <= AGREEMENT_TOLERANCE
    assert f"within 1e-09 on {len(rows)} reference rows" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_perturbed_compiled_path_falls_back_to_predict_proba_with_one_warning(
    models, records, schema, caplog, monkeypatch
):
    exact = CompiledPredictor.phishing_probability
    monkeypatch.setattr(
        CompiledPredictor, "phishing_probability", lambda self, X: exact(self, X) + 1e-7
    )
    model = PhishingModel(models["production_vote"], feature_columns(schema), version="v-off")
    (warning,) = scored_with_one_warning(model, records, caplog)
    assert "Model v-off" in warning and "VotingClassifier.predict_proba by up to 1e-07" in warning


def test_a_model_its_trees_do_not_describe_falls_back_to_predict_proba(records, schema, caplog):
    features = feature_columns(schema)
    estimator = SharperExtraTrees(n_estimators=10, random_state=0)
    estimator.fit(records[features], records[target_column(schema)])
    model = PhishingModel(estimator, features, version="v-sharper")
    (warning,) = scored_with_one_warning(model, records, caplog)
    assert "SharperExtraTrees.predict_proba by up to" in warning


def test_an_error_while_compiling_falls_back_to_predict_proba_with_one_warning(
    models, records, schema, caplog, monkeypatch
):
    def moved(classifier: Any) -> None:  # what a release that moved a private attribute raises
        raise AttributeError(f"{type(classifier).__name__!r} object has no attribute '_predictors'")

    monkeypatch.setattr(tree_kernels, "boosting_tables", moved)
    model = PhishingModel(models["production_vote"], feature_columns(schema), version="v-moved")
    (warning,) = scored_with_one_warning(model, records, caplog)
    assert "Model v-moved: no compiled predictor for its VotingClassifier" in warning
    assert "AttributeError" in warning and "'_predictors'" in warning
