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
from network_security.model import PhishingModel
from network_security.pipelines.training import evaluation, promotion, selection
from network_security.pipelines.training.evaluation import (
    classification_metrics,
    threshold_objectives,
)
from network_security.pipelines.training.params import TrainingParams
from network_security.pipelines.training.search import (
    CLASSIFIER_STEP,
    build_model_pipeline,
    build_selected_model,
    expand_search_space,
)
from network_security.schema import feature_columns, target_column

HGB = "sklearn.ensemble.HistGradientBoostingClassifier"
COMPILABLE_TREES = (RandomForestClassifier, ExtraTreesClassifier, HistGradientBoostingClassifier)

P = TrainingParams.parse


def middle_value_rule(frame: pd.DataFrame) -> np.ndarray:
    """Phishing exactly when SSLfinal_State is 0 (suspicious): not a threshold on -1 < 0 < 1."""
    return np.where(frame["SSLfinal_State"] == 0, -1, 1)


# ---------------------------------------------------------------- search space


def test_the_search_space_is_sklearns_parameter_grid(fast_params):
    search = {"max_leaf_nodes": [15, 31], "learning_rate": [0.05, 0.1], "l2_regularization": [0]}
    candidates = {
        "boost": {"estimator": HGB, "search": search},
        "plain": {"estimator": "sklearn.ensemble.ExtraTreesClassifier"},
    }
    configurations = expand_search_space(P({**fast_params, "candidates": candidates}).candidates)

    grid = list(ParameterGrid(search))
    assert len(grid) == 4
    assert [c.params for c in configurations] == [*grid, {}]
    assert [c.config_id for c in configurations] == [*(f"boost#{i}" for i in range(4)), "plain#0"]
    assert {c.candidate for c in configurations} == {"boost", "plain"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"estimator": HGB, "search": {"max_leaf_nodes": 31}},
            r"candidates\.boost\.search\.max_leaf_nodes = 31: Input should be a valid list",
        ),
        (
            {"estimator": HGB, "search": {"max_leaf_nodes": []}},
            r"candidates\.boost\.search\.max_leaf_nodes = \[\]: List should have at least 1",
        ),
        (
            {"estimator": HGB, "encoding": "binary"},
            r"training\.candidates\.boost\.encoding = 'binary': Input should be 'ordinal'",
        ),
        (
            {"estimator": HGB, "one_hot": True},
            r"training\.candidates\.boost\.one_hot = True: Extra inputs are not permitted",
        ),
        ({"estimator": "os.system"}, r"training\.candidates\.boost = .*not a scikit-learn class"),
        (
            {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"depth": 3}},
            r"training\.candidates\.boost = .*unknown parameter\(s\) \['depth'\]",
        ),
        (
            {"estimator": HGB, "search": {"leaves": [3]}},
            r"training\.candidates\.boost = .*unknown parameter\(s\) \['leaves'\]",
        ),
        (
            {"estimator": "sklearn.ensemble.RandomForestClassifier", "encoding": "categorical"},
            r"training\.candidates\.boost = .*'categorical' needs an estimator with",
        ),
    ],
)
def test_bad_candidate_specs_name_the_candidate_and_the_fix(fast_params, spec, message):
    fast_params["candidates"] = {"boost": spec}
    with pytest.raises(ValueError, match=message) as refused:
        P(fast_params)
    assert "fix conf/base/parameters_training.yml" in str(refused.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"cv": {"n_splits": 1, "random_state": 0}},
            r"training\.cv\.n_splits = 1: .*greater than or equal to 2",
        ),
        ({"cv": {"n_splits": 5}}, r"training\.cv\.random_state: Field required"),
        ({"selection_metric": "f1"}, r"training\.selection_metric = 'f1': Input should be"),
        ({"preference": ["soft_vot"]}, r"training = .*preference names \['soft_vot'\]"),
        (
            {"ensembles": {"vote": {"members": ["decision_tree"]}}},
            r"training\.ensembles\.vote\.members",
        ),
        (
            {"ensembles": {"vote": {"members": ["decision_tree", "forest"]}}},
            r"ensembles\.vote\.members \['forest'\] are not candidates",
        ),
        (
            {"quality_gate": {"min_speed": 1.0}},
            r"training\.quality_gate\.min_speed\.\[key\] = 'min_speed'",
        ),
        ({"threshold": {"objective": "recall"}}, r"training\.threshold\.objective = 'recall'"),
        ({"baseline": {"source": "somewhere"}}, r"training\.baseline\.cv_accuracy: Field required"),
        (
            {"random_state": "forty-two"},
            r"training\.random_state = 'forty-two': Input should be a valid integer",
        ),
    ],
)
def test_bad_parameters_are_refused_naming_the_key_and_the_value(fast_params, change, message):
    with pytest.raises(ValueError, match=message):
        P({**fast_params, **change})
    del fast_params["promotion"]
    with pytest.raises(ValueError, match=r"training\.promotion: Field required"):
        P(fast_params)


def test_threads_and_processes_give_the_same_search(make_frame, schema, fast_params):
    frame = make_frame(300, middle_value_rule, seed=16, noise=0.05)
    fast_params["candidates"]["forest"] = {
        "estimator": "sklearn.ensemble.ExtraTreesClassifier",
        "params": {"n_estimators": 8},
    }
    runs = {}
    for cv_jobs, tree_jobs, backend in ((1, 1, "threading"), (2, 2, "threading"), (2, 1, "loky")):
        fast_params.update(cv_jobs=cv_jobs, n_jobs=tree_jobs, parallel_backend=backend)
        runs[cv_jobs, tree_jobs, backend] = selection.search_candidates(
            frame, schema, P(fast_params)
        )
    (results, oof), *others = runs.values()
    for other_results, other_oof in others:
        pd.testing.assert_frame_equal(results, other_results)
        pd.testing.assert_frame_equal(oof, other_oof)

    fast_params["parallel_backend"] = "dask"
    with pytest.raises(ValueError, match=r"training\.parallel_backend = 'dask': Input should be"):
        selection.search_candidates(frame, schema, P(fast_params))


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
    configurations = expand_search_space(P(training_params).candidates)
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
    results, oof = selection.search_candidates(frame, schema, P(training_params))
    best = selection.select_best_candidate(results, P(training_params))
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


# ---------------------------------------------------------------- feature importances


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_feature_importances_are_scikit_learns_permutation_importances(
    make_frame, schema, fast_params, n_jobs
):
    frame = make_frame(400, middle_value_rule, seed=14, noise=0.1)
    features, target = feature_columns(schema), target_column(schema)
    spec = {"estimator": HGB, "encoding": "categorical", "params": {"max_iter": 20}}
    model = build_model_pipeline(spec, features, 0).fit(frame[features], frame[target])
    test = make_frame(300, middle_value_rule, seed=15, noise=0.1)
    fast_params.update(n_jobs=n_jobs, random_state=7, feature_importance={"n_repeats": 3})

    importances = evaluation.compute_feature_importances(
        PhishingModel(model, features), test, schema, P(fast_params)
    )
    expected = permutation_importance(
        model, test[features], test[target], scoring="roc_auc", n_repeats=3, random_state=7
    )
    by_feature = importances.set_index("feature")
    np.testing.assert_allclose(
        by_feature.loc[features, "importance_mean"], expected.importances_mean, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        by_feature.loc[features, "importance_std"], expected.importances_std, rtol=0, atol=1e-12
    )
    assert importances["feature"].iloc[0] == "SSLfinal_State"  # largest first


# ---------------------------------------------------------------- report against the baseline


def _selection(make_frame, schema, params: dict[str, Any]):
    frame = make_frame(300, middle_value_rule, seed=13, noise=0.05)
    results, oof = selection.search_candidates(frame, schema, P(params))
    best = selection.select_best_candidate(results, P(params))
    threshold = selection.choose_threshold(oof, frame, best, schema, P(params))
    return results, best, threshold


def test_the_selection_report_gives_the_winner_against_the_baseline(
    make_frame, schema, fast_params, training_params
):
    assert training_params["baseline"]["cv_accuracy"] == 0.9536
    results, best, threshold = _selection(make_frame, schema, fast_params)
    report = json.loads(
        json.dumps(selection.build_model_selection_report(results, best, threshold))
    )

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
    gate = promotion.apply_quality_gate(test_metrics, P(fast_params))
    logged = evaluation.collect_mlflow_metrics(test_metrics, best, threshold, results, gate)
    assert logged["cv_accuracy_baseline"]["value"] == 0.9536
    assert logged["cv_accuracy_vs_baseline"]["value"] == pytest.approx(baseline["difference"])


def test_without_a_baseline_the_report_has_none_and_a_bad_one_is_named(
    make_frame, schema, fast_params
):
    fast_params.pop("baseline", None)
    results, best, threshold = _selection(make_frame, schema, fast_params)
    assert "baseline" not in selection.build_model_selection_report(results, best, threshold)

    fast_params["baseline"] = {"source": "somewhere"}
    with pytest.raises(ValueError, match=r"training\.baseline\.cv_accuracy: Field required"):
        selection.select_best_candidate(results, P(fast_params))


# ---------------------------------------------------------------- ties and preference


def _cv_results(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """CV results of (config_id, candidate, mean ROC-AUC, its fold std) rows."""
    return pd.DataFrame(
        [
            {"config_id": config_id, "candidate": candidate, "params": {},
             "cv_roc_auc": mean, "cv_roc_auc_std": std, "cv_accuracy": 0.9,
             "cv_accuracy_std": 0.01, "oof_accuracy": 0.9, "oof_roc_auc": mean,
             "oof_accuracy_distinct": 0.9, "oof_roc_auc_distinct": mean}
            for config_id, candidate, mean, std in rows
        ]
    )  # fmt: skip


def test_a_tie_goes_to_the_preferred_configuration_and_the_report_says_so(fast_params):
    fast_params["cv"] = {"n_splits": 4, "random_state": 0}  # standard error = std / 2
    fast_params["preference"] = ["decision_tree", "logistic_regression"]
    threshold = {"threshold": 0.5}
    # 0.950 vs 0.946 and 0.945: closer than the standard error 0.006 (0.012 / 2): a tie
    tied = _cv_results(
        [("logistic_regression#0", "logistic_regression", 0.950, 0.002),
         ("decision_tree#0", "decision_tree", 0.946, 0.012),
         ("decision_tree#1", "decision_tree", 0.945, 0.012)]
    )  # fmt: skip
    best = selection.select_best_candidate(tied, P(fast_params))
    assert best["config_id"] == "decision_tree#0"  # preferred, then the better of its two
    report = selection.build_model_selection_report(tied, best, threshold)
    assert report["selection"]["decided_by"] == "preference"
    assert report["selection"]["best_by_score"] == "logistic_regression#0"
    assert report["selection"]["tied_with_best"] == [
        "logistic_regression#0", "decision_tree#0", "decision_tree#1"
    ]  # fmt: skip
    assert (
        "tie: decision_tree#0 was chosen over logistic_regression#0"
        in (report["selection"]["summary"])
    )
    assert "selection" not in report["selected"]

    # 0.950 vs 0.940: apart by more than either standard error (0.001, 0.006): the better wins
    apart = _cv_results(
        [("logistic_regression#0", "logistic_regression", 0.950, 0.002),
         ("decision_tree#0", "decision_tree", 0.940, 0.012)]
    )  # fmt: skip
    best = selection.select_best_candidate(apart, P(fast_params))
    report = selection.build_model_selection_report(apart, best, threshold)
    assert best["config_id"] == "logistic_regression#0"
    assert report["selection"]["decided_by"] == "score" and "summary" not in report["selection"]
    assert report["selection"]["tied_with_best"] == ["logistic_regression#0"]

    # a name the preference does not list comes after the listed ones
    fast_params["preference"] = ["decision_tree"]
    assert selection.select_best_candidate(tied, P(fast_params))["candidate"] == "decision_tree"
    fast_params["preference"] = []
    assert selection.select_best_candidate(tied, P(fast_params))["candidate"] == (
        "logistic_regression"
    )


def test_two_runs_on_the_same_records_select_the_same_configuration(
    make_frame, schema, fast_params
):
    frame = make_frame(300, middle_value_rule, seed=17, copies=2, noise=0.1)
    fast_params["ensembles"] = {"vote": {"members": ["logistic_regression", "decision_tree"]}}
    fast_params["preference"] = ["vote"]
    runs = [selection.search_candidates(frame, schema, P(fast_params)) for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0][0], runs[1][0])
    chosen = [selection.select_best_candidate(results, P(fast_params)) for results, _ in runs]
    assert chosen[0] == chosen[1]
    ranked = runs[0][0].set_index("config_id")["cv_roc_auc"]
    if chosen[0]["selection"]["decided_by"] == "preference":  # the vote, within the noise
        assert chosen[0]["config_id"] == "vote#0" and ranked["vote#0"] < ranked.max()
    else:
        assert ranked[chosen[0]["config_id"]] == ranked.max()
