"""Model selection: the search space, the encodings, the selected model, the threshold grid and
the selection report against the baseline."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.inspection import permutation_importance
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline

from network_security.features import CategoryCodes, IndicatorCountFeatures
from network_security.pipelines.training import nodes
from network_security.pipelines.training.evaluation import (
    classification_metrics,
    permutation_importances,
    threshold_objectives,
)
from network_security.pipelines.training.search import (
    CLASSIFIER_STEP,
    build_model_pipeline,
    build_selected_model,
    expand_search_space,
)
from network_security.schema import feature_columns, target_column

HGB = "sklearn.ensemble.HistGradientBoostingClassifier"
COMPILABLE_TREES = (RandomForestClassifier, ExtraTreesClassifier, HistGradientBoostingClassifier)


def middle_value_rule(frame: pd.DataFrame) -> np.ndarray:
    """Phishing exactly when SSLfinal_State is 0 (suspicious): not a threshold on -1 < 0 < 1."""
    return np.where(frame["SSLfinal_State"] == 0, -1, 1)


# ---------------------------------------------------------------- search space


def test_the_search_space_is_sklearns_parameter_grid():
    search = {"max_leaf_nodes": [15, 31], "learning_rate": [0.05, 0.1], "l2_regularization": [0]}
    candidates = {
        "boost": {"estimator": HGB, "search": search},
        "plain": {"estimator": "sklearn.ensemble.ExtraTreesClassifier"},
    }
    configurations = expand_search_space(candidates)

    grid = list(ParameterGrid(search))
    assert len(grid) == 4
    assert [c.params for c in configurations] == [*grid, {}]
    assert [c.config_id for c in configurations] == [*(f"boost#{i}" for i in range(4)), "plain#0"]
    assert {c.candidate for c in configurations} == {"boost", "plain"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"estimator": HGB, "search": {"max_leaf_nodes": 31}}, r"boost\.search.*max_leaf_nodes"),
        ({"estimator": HGB, "search": {"max_leaf_nodes": []}}, r"boost\.search.*non-empty"),
        ({"estimator": HGB, "encoding": "binary"}, r"boost\.encoding is 'binary'"),
        ({"estimator": HGB, "one_hot": True}, r"unknown key\(s\) \['one_hot'\]"),
    ],
)
def test_bad_candidate_specs_name_the_candidate_and_the_fix(spec, message):
    with pytest.raises(ValueError, match=message):
        expand_search_space({"boost": spec})


def test_threads_and_processes_give_the_same_search(make_frame, schema, fast_params):
    frame = make_frame(300, middle_value_rule, seed=16, noise=0.05)
    fast_params["candidates"]["forest"] = {
        "estimator": "sklearn.ensemble.ExtraTreesClassifier",
        "params": {"n_estimators": 8},
    }
    runs = {}
    for cv_jobs, tree_jobs, backend in ((1, 1, "threading"), (2, 2, "threading"), (2, 1, "loky")):
        fast_params.update(cv_jobs=cv_jobs, n_jobs=tree_jobs, parallel_backend=backend)
        runs[cv_jobs, tree_jobs, backend] = nodes.search_candidates(frame, schema, fast_params)
    (results, oof), *others = runs.values()
    for other_results, other_oof in others:
        pd.testing.assert_frame_equal(results, other_results)
        pd.testing.assert_frame_equal(oof, other_oof)

    fast_params["parallel_backend"] = "dask"
    with pytest.raises(ValueError, match="parallel_backend must be one of"):
        nodes.search_candidates(frame, schema, fast_params)


# ---------------------------------------------------------------- encodings


def test_categorical_encoding_codes_the_indicators_and_marks_them_categorical(schema):
    features = feature_columns(schema)
    spec = {"estimator": HGB, "encoding": "categorical", "params": {"max_iter": 5}}
    model = build_model_pipeline(spec, features, random_state=0, name="boost")

    assert [name for name, _ in model.steps] == ["features", "encode", CLASSIFIER_STEP]
    assert isinstance(model.named_steps["features"], IndicatorCountFeatures)
    assert isinstance(model.named_steps["encode"], CategoryCodes)
    assert model.named_steps[CLASSIFIER_STEP].categorical_features == features

    with pytest.raises(ValueError, match="'categorical' needs an estimator with"):
        build_model_pipeline(
            {"estimator": "sklearn.ensemble.RandomForestClassifier", "encoding": "categorical"},
            features,
            0,
            name="forest",
        )


def test_categorical_encoding_isolates_a_middle_value_in_one_split(make_frame, schema):
    # One tree with one split: on the ordinal codes it can only cut -1 | 0 < 1 or -1 < 0 | 1,
    # so it cannot single out "suspicious"; on categories it can.
    frame = make_frame(600, middle_value_rule, seed=11)
    features, target = feature_columns(schema), target_column(schema)
    stump = {"max_iter": 1, "max_leaf_nodes": 2, "learning_rate": 1.0}
    scores = {}
    for encoding in ("ordinal", "categorical"):
        spec = {"estimator": HGB, "encoding": encoding, "params": stump}
        model = build_model_pipeline(spec, features, 0, engineered_features=False, name=encoding)
        model.fit(frame[features], frame[target])
        probability = model.predict_proba(frame[features])[:, 0]
        scores[encoding] = classification_metrics(frame[target], probability, 0.5, -1)["roc_auc"]

    assert scores["categorical"] == pytest.approx(1.0)
    assert scores["ordinal"] < 0.9


# ---------------------------------------------------------------- the selected model


def test_the_selected_model_is_the_winners_configuration(schema, fast_params):
    features = feature_columns(schema)
    best = {"candidate": "decision_tree", "params": {"max_depth": 4}}
    model = build_selected_model(best, fast_params, features)
    assert isinstance(model, Pipeline)
    assert model.named_steps[CLASSIFIER_STEP].max_depth == 4

    # a forest builds its trees on training.n_jobs threads
    fast_params["candidates"]["forest"] = {"estimator": "sklearn.ensemble.RandomForestClassifier"}
    fast_params["n_jobs"] = 3
    forest = build_selected_model({"candidate": "forest", "params": {}}, fast_params, features)
    assert forest.named_steps[CLASSIFIER_STEP].n_jobs == 3

    fast_params["ensembles"] = {"vote": {"members": ["logistic_regression", "decision_tree"]}}
    members = {"logistic_regression": {"C": 1.0}, "decision_tree": {"max_depth": 8}}
    vote = build_selected_model({"candidate": "vote", "params": members}, fast_params, features)
    assert isinstance(vote, VotingClassifier)
    assert vote.voting == "soft" and vote.n_jobs is None
    assert [name for name, _ in vote.estimators] == list(members)
    assert vote.estimators[1][1].named_steps[CLASSIFIER_STEP].max_depth == 8


def test_every_production_candidate_is_made_of_compilable_scikit_learn_trees(
    schema, training_params
):
    # The champion's trees are compiled (treelite): every candidate must be a random forest,
    # extra trees or gradient boosting after the feature and encoding steps known here.
    features = feature_columns(schema)
    configurations = expand_search_space(training_params["candidates"])
    assert len(configurations) <= 4  # every run cross-validates all of them: keep it small
    for configuration in configurations:
        model = build_selected_model(
            {"candidate": configuration.candidate, "params": configuration.params},
            training_params,
            features,
        )
        assert isinstance(model.named_steps[CLASSIFIER_STEP], COMPILABLE_TREES)
        for name, step in model.steps[:-1]:
            assert isinstance(step, IndicatorCountFeatures | CategoryCodes), name
    for name, ensemble in training_params["ensembles"].items():
        assert set(ensemble["members"]) <= set(training_params["candidates"]), name


@pytest.mark.slow
def test_production_candidates_train_and_vote_on_a_small_data_set(
    make_frame, schema, training_params
):
    from network_security.pipelines.training.search import build_ensemble

    frame = make_frame(300, middle_value_rule, seed=12, copies=2, noise=0.05)
    training_params["cv"] = {"n_splits": 3, "random_state": 0}
    training_params["n_jobs"] = 1
    results, oof = nodes.search_candidates(frame, schema, training_params)
    best = nodes.select_best_candidate(results, training_params)
    assert set(results["candidate"]) == {
        *training_params["candidates"],
        *training_params["ensembles"],
    }
    assert best["cv_roc_auc"] > 0.9

    features = feature_columns(schema)
    labels = frame[target_column(schema)].to_numpy()
    (name, spec), *_ = training_params["ensembles"].items()
    row = results.set_index("candidate").loc[name]
    members = {m: results.set_index("config_id").loc[f"{m}#0", "params"] for m in spec["members"]}
    vote = build_ensemble(members, training_params["candidates"], features, 42).fit(
        frame[features], labels
    )
    separate = [
        clone(estimator).fit(frame[features], labels).predict_proba(frame[features])[:, 0]
        for _, estimator in vote.estimators
    ]
    np.testing.assert_allclose(
        vote.predict_proba(frame[features])[:, 0], np.mean(separate, axis=0), atol=1e-12
    )
    assert row["params"] == members


# ---------------------------------------------------------------- threshold grid


def test_threshold_objectives_equal_the_metrics_at_every_threshold():
    rng = np.random.default_rng(3)
    labels = rng.choice([-1, 1], size=400)
    probability = np.round(rng.random(400), 2)  # ties on the grid points
    grid = np.round(np.arange(0.0, 1.0001, 0.05), 6)
    for objective in ("accuracy", "f1"):
        expected = [classification_metrics(labels, probability, t, -1)[objective] for t in grid]
        np.testing.assert_allclose(
            threshold_objectives(labels, probability, grid, -1, objective), expected, atol=1e-12
        )
    with pytest.raises(ValueError, match="objective must be"):
        threshold_objectives(labels, probability, grid, -1, "recall")


# ---------------------------------------------------------------- feature importances


@pytest.mark.parametrize("workers", [1, 2])
def test_batched_permutation_importances_equal_scikit_learns(make_frame, schema, workers):
    frame = make_frame(400, middle_value_rule, seed=14, noise=0.1)
    features, target = feature_columns(schema), target_column(schema)
    spec = {"estimator": HGB, "encoding": "categorical", "params": {"max_iter": 20}}
    model = build_model_pipeline(spec, features, 0).fit(frame[features], frame[target])
    test = make_frame(300, middle_value_rule, seed=15, noise=0.1)
    labels = test[target].to_numpy()

    expected = permutation_importance(
        model, test[features], labels, scoring="roc_auc", n_repeats=3, random_state=7
    ).importances
    batched = permutation_importances(model, test[features], labels, 3, 7, workers=workers)

    np.testing.assert_allclose(batched, expected, rtol=0, atol=1e-12)
    assert batched.shape == (len(features), 3)
    assert features[int(np.argmax(batched.mean(axis=1)))] == "SSLfinal_State"


# ---------------------------------------------------------------- report against the baseline


def _selection(make_frame, schema, params: dict[str, Any]):
    frame = make_frame(300, middle_value_rule, seed=13, noise=0.05)
    results, oof = nodes.search_candidates(frame, schema, params)
    best = nodes.select_best_candidate(results, params)
    threshold = nodes.choose_threshold(oof, frame, best, schema, params)
    return results, best, threshold


def test_the_selection_report_gives_the_winner_against_the_baseline(
    make_frame, schema, fast_params, training_params
):
    assert training_params["baseline"]["cv_accuracy"] == 0.9536  # the figure before issue 9
    results, best, threshold = _selection(make_frame, schema, fast_params)
    report = json.loads(json.dumps(nodes.build_model_selection_report(results, best, threshold)))

    baseline = report["baseline"]
    assert baseline["cv_accuracy"] == 0.9536
    assert "grouped-CV accuracy" in baseline["source"]
    assert baseline["winner"] == best["config_id"]
    assert baseline["winner_cv_accuracy"] == pytest.approx(best["cv_accuracy"])
    assert baseline["difference"] == pytest.approx(best["cv_accuracy"] - 0.9536)
    assert "baseline" not in report["selected"]
    assert [row["config_id"] for row in report["configurations"]] == list(
        results.sort_values("cv_roc_auc", ascending=False)["config_id"]
    )

    test_metrics = {"accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": 0.75, "roc_auc": 0.9}
    gate = nodes.apply_quality_gate(test_metrics, fast_params)
    logged = nodes.collect_mlflow_metrics(test_metrics, best, threshold, results, gate)
    assert logged["cv_accuracy_baseline"]["value"] == 0.9536
    assert logged["cv_accuracy_vs_baseline"]["value"] == pytest.approx(baseline["difference"])


def test_without_a_baseline_the_report_has_none_and_a_bad_one_is_named(
    make_frame, schema, fast_params
):
    fast_params.pop("baseline", None)
    results, best, threshold = _selection(make_frame, schema, fast_params)
    assert "baseline" not in nodes.build_model_selection_report(results, best, threshold)

    fast_params["baseline"] = {"source": "somewhere"}
    with pytest.raises(ValueError, match="training.baseline must have a numeric 'cv_accuracy'"):
        nodes.select_best_candidate(results, fast_params)
