"""The training nodes on crafted data sets: grouped CV, selection, threshold, gate, promotion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sklearn.metrics import precision_score, recall_score
from sklearn.model_selection import cross_val_predict

from network_security.drift import build_drift_reference
from network_security.features import IndicatorCountFeatures, feature_vector_codes, grouped_folds
from network_security.model import PhishingModel
from network_security.pipelines.training import evaluation, promotion, selection
from network_security.pipelines.training.evaluation import classification_metrics
from network_security.pipelines.training.params import TrainingParams
from network_security.pipelines.training.search import (
    build_ensemble,
    build_estimator,
)
from network_security.schema import allowed_values, feature_columns, target_column

P = TrainingParams.parse


def xor_rule(frame: pd.DataFrame) -> np.ndarray:
    """Phishing exactly when SSLfinal_State and URL_of_Anchor are both, or neither, low."""
    a = frame["SSLfinal_State"] < 0
    b = frame["URL_of_Anchor"] < 0
    return np.where(a == b, -1, 1)


def additive_rule(frame: pd.DataFrame) -> np.ndarray:
    """Phishing when the sum of a few indicators is low (a linear rule)."""
    score = frame[["SSLfinal_State", "URL_of_Anchor", "Prefix_Suffix", "web_traffic"]].sum(axis=1)
    return np.where(score < 0, -1, 1)


def random_rule(frame: pd.DataFrame) -> np.ndarray:
    """Labels with no relation to the features (one coin flip per row of ``frame``)."""
    return np.random.default_rng(7).choice([-1, 1], size=len(frame))


def fit(frame, params, schema, candidate: str | None = None) -> PhishingModel:
    """Run the selection nodes and refit; optionally force ``candidate``."""
    results, oof = selection.search_candidates(frame, schema, P(params))
    if candidate is not None:
        results = results[results["candidate"] == candidate]
    best = selection.select_best_candidate(results, P(params))
    threshold = selection.choose_threshold(oof, frame, best, schema, P(params))
    return selection.fit_phishing_model(frame, best, threshold, schema, P(params))


# ---------------------------------------------------------------- grouped cross-validation


def test_grouped_folds_never_put_a_feature_vector_on_both_sides(make_frame, schema):
    frame = make_frame(300, additive_rule, seed=1, copies=3, noise=0.1)
    labels = frame[target_column(schema)].to_numpy()
    features = feature_columns(schema)
    folds = grouped_folds(frame, labels, features, n_splits=5, random_state=0)

    assert len(folds) == 5
    covered = np.sort(np.concatenate([test for _, test in folds]))
    assert covered.tolist() == list(range(len(frame)))  # every row validated exactly once
    for train_index, test_index in folds:
        train_vectors = set(map(tuple, frame.iloc[train_index][features].to_numpy()))
        test_vectors = set(map(tuple, frame.iloc[test_index][features].to_numpy()))
        assert train_vectors.isdisjoint(test_vectors)
        assert set(labels[test_index]) == {-1, 1}  # stratified: both labels in every fold


def test_search_scores_a_memorizer_at_chance_because_copies_stay_in_one_fold(
    make_frame, schema, fast_params
):
    # Every vector appears 4 times with one random label: a 1-nearest-neighbour model recalls
    # the label of any copy it was trained on. With leaky folds it would score ~1.0.
    frame = make_frame(200, random_rule, seed=2, copies=4)
    fast_params["candidates"] = {
        "memorizer": {
            "estimator": "sklearn.neighbors.KNeighborsClassifier",
            "params": {"n_neighbors": 1},
        }
    }
    results, oof = selection.search_candidates(frame, schema, P(fast_params))

    assert results.loc[0, "cv_accuracy"] < 0.7
    assert oof["memorizer#0"].notna().all()


def test_grouped_folds_refuse_too_few_distinct_vectors(make_frame, schema):
    frame = make_frame(2, additive_rule, seed=3, copies=10)
    with pytest.raises(ValueError, match="distinct feature vectors"):
        grouped_folds(frame, frame[target_column(schema)].to_numpy(), feature_columns(schema), 5, 0)


# ---------------------------------------------------------------- model selection


@pytest.mark.parametrize(
    ("rule", "weak", "strong"),
    [
        (xor_rule, "logistic_regression", "decision_tree"),  # an interaction: trees win
        (additive_rule, "dummy", "logistic_regression"),  # a linear rule: LR beats the prior
    ],
)
def test_selection_picks_the_better_of_two_candidates(
    make_frame, schema, fast_params, rule, weak, strong
):
    frame = make_frame(400, rule, seed=4)
    fast_params["candidates"]["dummy"] = {"estimator": "sklearn.dummy.DummyClassifier"}
    fast_params["candidates"] = {name: fast_params["candidates"][name] for name in (weak, strong)}
    results, _ = selection.search_candidates(frame, schema, P(fast_params))
    best = selection.select_best_candidate(results, P(fast_params))

    scores = results.groupby("candidate")["cv_roc_auc"].max()
    assert best["candidate"] == strong
    assert scores[strong] > scores[weak] + 0.1
    assert best["cv_roc_auc"] == pytest.approx(scores[strong])


def test_ensemble_scores_equal_the_cross_validated_soft_vote(make_frame, schema, fast_params):
    frame = make_frame(300, xor_rule, seed=5, noise=0.1)
    fast_params["ensembles"] = {"vote": {"members": ["logistic_regression", "decision_tree"]}}
    results, oof = selection.search_candidates(frame, schema, P(fast_params))
    row = results.set_index("candidate").loc["vote"]

    features = feature_columns(schema)
    labels = frame[target_column(schema)].to_numpy()
    folds = grouped_folds(frame, labels, features, 3, 0)
    ensemble = build_ensemble(row["params"], fast_params["candidates"], features, 42)
    direct = cross_val_predict(ensemble, frame[features], labels, cv=folds, method="predict_proba")

    np.testing.assert_allclose(oof["vote#0"], direct[:, 0], atol=1e-9)  # column 0 = phishing


def test_candidate_specs_are_checked(fast_params):
    with pytest.raises(ValueError, match="not a scikit-learn class path"):
        build_estimator({"estimator": "os.system"}, 0)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['depth'\]"):
        build_estimator(
            {"estimator": "sklearn.tree.DecisionTreeClassifier", "params": {"depth": 3}}, 0
        )


# ---------------------------------------------------------------- threshold and refit


def test_threshold_moves_only_when_it_serves_the_phishing_class(schema, fast_params):
    labels = np.array([-1] * 50 + [1] * 50)
    train = pd.DataFrame({target_column(schema): labels})
    best = {"config_id": "m#0"}
    # phishing sites get P(phishing) in [0.36, 0.45]: none is caught at 0.5
    shy = np.r_[np.linspace(0.36, 0.45, 50), np.linspace(0.05, 0.25, 50)]
    choice = selection.choose_threshold(
        pd.DataFrame({"m#0": shy}), train, best, schema, P(fast_params)
    )
    assert choice["threshold"] == pytest.approx(0.36)  # the best F1 closest to 0.5
    assert choice["objective_at_threshold"] == pytest.approx(1.0)
    assert choice["objective_at_0.5"] == pytest.approx(0.0)

    confident = np.r_[np.linspace(0.7, 0.95, 50), np.linspace(0.05, 0.3, 50)]
    choice = selection.choose_threshold(
        pd.DataFrame({"m#0": confident}), train, best, schema, P(fast_params)
    )
    assert choice["threshold"] == 0.5  # already perfect at 0.5: no gain, no change


def test_fit_returns_a_phishing_model_with_engineered_features_inside(
    make_frame, schema, fast_params
):
    frame = make_frame(300, xor_rule, seed=6)
    model = fit(frame, fast_params, schema)

    assert isinstance(model, PhishingModel)
    assert model.feature_columns == feature_columns(schema)
    assert sorted(model.estimator.classes_) == [-1, 1]
    assert isinstance(model.estimator.named_steps["features"], IndicatorCountFeatures)
    assert model.params["candidate"] == "decision_tree"
    assert set(model.metrics) == {"cv_accuracy", "cv_roc_auc"}
    assert model.trained_at and model.version == "unversioned"
    shuffled = frame[feature_columns(schema)[::-1]]  # column order does not matter
    assert (model.predict(shuffled) == frame[target_column(schema)]).mean() > 0.95


# ---------------------------------------------------------------- evaluation


def test_metrics_treat_phishing_as_the_positive_class():
    labels = np.array([-1, -1, -1, 1])
    probability = np.array([0.9, 0.8, 0.1, 0.7])  # P(phishing)
    metrics = classification_metrics(labels, probability, 0.5, phishing_label=-1)
    predicted = np.where(probability >= 0.5, -1, 1)

    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["precision"] == pytest.approx(precision_score(labels, predicted, pos_label=-1))
    assert metrics["recall"] == pytest.approx(recall_score(labels, predicted, pos_label=-1))
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["roc_auc"] == pytest.approx(2 / 3)


def test_evaluation_and_charts_on_a_held_out_split(make_frame, schema, fast_params):
    frame = make_frame(400, xor_rule, seed=8, noise=0.05)
    train, test = frame.iloc[:300], frame.iloc[300:].reset_index(drop=True)
    model = fit(train, fast_params, schema)

    metrics = evaluation.evaluate_model(model, test, schema)
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert metrics["accuracy"] > 0.85

    matrix = evaluation.plot_confusion_matrix(model, test, schema)
    assert isinstance(matrix, go.Figure)
    counts = np.asarray(matrix.data[0].z)
    assert counts.sum() == len(test)
    assert np.trace(counts) / len(test) == pytest.approx(metrics["accuracy"])

    roc = evaluation.plot_roc_curve(model, test, schema)
    assert [trace.mode for trace in roc.data] == ["lines", "lines", "markers"]

    importances = evaluation.compute_feature_importances(model, test, schema, P(fast_params))
    assert set(importances["feature"]) == set(feature_columns(schema))
    assert importances.iloc[0]["feature"] in {"SSLfinal_State", "URL_of_Anchor"}
    chart = evaluation.plot_feature_importances(importances)
    assert len(chart.data[0].y) == len(feature_columns(schema))


def test_mlflow_metrics_carry_every_required_name(make_frame, schema, fast_params):
    frame = make_frame(300, additive_rule, seed=9)
    results, oof = selection.search_candidates(frame, schema, P(fast_params))
    best = selection.select_best_candidate(results, P(fast_params))
    threshold = selection.choose_threshold(oof, frame, best, schema, P(fast_params))
    test_metrics = {"accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": 0.75, "roc_auc": 0.95}
    gate = promotion.apply_quality_gate(test_metrics, P(fast_params))
    logged = evaluation.collect_mlflow_metrics(test_metrics, best, threshold, results, gate)

    for word in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert f"test_{word}" in logged
    assert logged["test_f1"] == {"value": 0.75, "step": 0}
    assert "cv_roc_auc.logistic_regression" in logged
    assert logged["quality_gate_passed"]["value"] == 1.0


def test_input_example_is_built_from_the_schema(schema):
    example = promotion.build_input_example(schema)
    assert list(example.columns) == feature_columns(schema)
    assert len(example) == 3
    for name, values in allowed_values(schema).items():
        assert set(example[name]) <= set(values)
        assert example[name].dtype == "int64"


# ---------------------------------------------------------------- gate and promotion


def test_the_quality_gate_blocks_a_weak_model(make_frame, schema, fast_params):
    frame = make_frame(300, xor_rule, seed=10)
    train, test = frame.iloc[:200], frame.iloc[200:].reset_index(drop=True)
    fast_params["candidates"] = {"prior": {"estimator": "sklearn.dummy.DummyClassifier"}}
    weak = fit(train, fast_params, schema)
    metrics = evaluation.evaluate_model(weak, test, schema)

    gate = promotion.apply_quality_gate(metrics, P(fast_params))
    assert gate["passed"] is False
    assert any("test_roc_auc" in failure for failure in gate["failures"])

    decision = promotion.decide_promotion(weak, gate, None, test, schema, P(fast_params))
    assert decision["promote"] is False
    assert decision["reason"].startswith("quality gate failed")
    with pytest.raises(ValueError, match="quality gate failed.*no champion yet"):
        promotion.select_model_in_use(weak, decision, None)  # nothing to score with


def test_the_gate_reads_its_minimums_from_parameters(fast_params):
    good = {"accuracy": 0.97, "precision": 0.9, "recall": 0.9, "f1": 0.9, "roc_auc": 0.99}
    assert promotion.apply_quality_gate(good, P(fast_params))["passed"] is True
    fast_params["quality_gate"] = {"min_accuracy": 0.98}
    assert promotion.apply_quality_gate(good, P(fast_params))["passed"] is False
    fast_params["quality_gate"] = {"min_speed": 1.0}
    with pytest.raises(ValueError, match=r"training\.quality_gate\.min_speed"):
        promotion.apply_quality_gate(good, P(fast_params))


def test_the_production_model_is_fit_on_all_records_and_knows_its_vectors(
    make_frame, schema, fast_params
):
    frame = make_frame(300, xor_rule, seed=12, copies=2)
    train = frame.iloc[:400]
    evaluated = fit(train, fast_params, schema)
    results, _ = selection.search_candidates(train, schema, P(fast_params))
    best = selection.select_best_candidate(results, P(fast_params))
    production = selection.fit_phishing_model(
        frame, best, {"threshold": 0.5, "objective": "f1"}, schema, P(fast_params), "all records"
    )
    assert production.params["fitted_on"] == "all records"
    assert production.params["training_rows"] == 600
    assert (
        production.params["training_vectors"]
        == frame[feature_columns(schema)].drop_duplicates().shape[0]
    )
    assert production.has_seen(feature_vector_codes(frame, feature_columns(schema))).all()
    assert not evaluated.has_seen(
        feature_vector_codes(frame.iloc[400:], feature_columns(schema))
    ).all()

    reference = build_drift_reference(frame, schema)
    packaged = promotion.package_model_for_registry(
        production, evaluated, evaluation.evaluate_model(evaluated, frame.iloc[400:], schema),
        {"passed": True, "failures": []}, reference,
    )  # fmt: skip
    assert packaged.drift_reference is reference and production.drift_reference is None
    assert packaged.estimator is production.estimator
    assert packaged.metrics["test_accuracy"] > 0.5 and packaged.metrics["quality_gate_passed"] == 1
    assert "training split" not in packaged.params["fitted_on"]
    fits = promotion.describe_model_fits(evaluated, production)
    assert fits["production_model"]["rows"] == 600 and fits["evaluation_model"]["rows"] == 400


def _split_by_vector(frame, schema, share=0.3, seed=0):
    """Train/test with no feature vector on both sides (as feature_engineering does)."""
    codes = feature_vector_codes(frame, feature_columns(schema))
    unique = np.unique(codes)
    held = np.random.default_rng(seed).choice(unique, int(len(unique) * share), replace=False)
    test = np.isin(codes, held)
    return frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)


def test_promotion_compares_only_on_vectors_neither_model_was_fit_on(
    make_frame, schema, fast_params
):
    frame = make_frame(600, xor_rule, seed=11, noise=0.05)
    train, test = _split_by_vector(frame, schema)
    fast_params["quality_gate"] = {}  # only the comparison decides here
    fast_params["promotion"] = {"metric": "roc_auc", "min_improvement": 0, "min_evidence_rows": 50}
    gate = {"passed": True, "failures": []}
    strong = fit(train, fast_params, schema, candidate="decision_tree")
    weaker = fit(train, fast_params, schema, candidate="logistic_regression")
    strong.version, weaker.version = "7", "8"

    decision = promotion.decide_promotion(weaker, gate, strong, test, schema, P(fast_params))
    assert decision["promote"] is False
    assert decision["champion_version"] == "7"
    assert decision["evidence_rows"] == len(test)  # the champion never saw the test vectors
    assert decision["champion_value"] > decision["candidate_value"]
    assert "does not beat the champion" in decision["reason"]

    decision = promotion.decide_promotion(strong, gate, weaker, test, schema, P(fast_params))
    assert decision["promote"] is True and decision["reason"].startswith("beats the champion")
    assert promotion.select_model_in_use(strong, decision, weaker) is strong
    same = promotion.decide_promotion(strong, gate, strong, test, schema, P(fast_params))
    assert same["promote"] is False  # a tie does not beat the champion

    # a champion refit on everything has seen the test rows: no honest evidence, it stays
    params = P(fast_params)
    best = selection.select_best_candidate(
        selection.search_candidates(train, schema, params)[0], params
    )
    everything = selection.fit_phishing_model(
        frame, best, {"threshold": 0.5, "objective": "f1"}, schema, params, "everything"
    )
    decision = promotion.decide_promotion(strong, gate, everything, test, schema, P(fast_params))
    assert decision["promote"] is False and decision["evidence_rows"] == 0
    assert decision["reason"].startswith("not enough evidence")
    assert promotion.select_model_in_use(strong, decision, everything) is everything

    # new records the champion has not seen are evidence again, and only those rows count
    newer = make_frame(300, xor_rule, seed=99, noise=0.05)
    mixed = pd.concat([test, newer], ignore_index=True)
    decision = promotion.decide_promotion(strong, gate, everything, mixed, schema, P(fast_params))
    unseen = ~everything.has_seen(feature_vector_codes(mixed, feature_columns(schema)))
    assert decision["evidence_rows"] == int(unseen.sum()) > 0


def test_first_model_that_passes_the_gate_is_promoted(make_frame, schema, fast_params):
    model = fit(make_frame(200, xor_rule, seed=13), fast_params, schema)
    gate = {"passed": True, "failures": []}
    decision = promotion.decide_promotion(model, gate, None, pd.DataFrame(), schema, P(fast_params))
    assert decision == {
        "promote": True,
        "metric": "roc_auc",
        "candidate_value": None,
        "champion_version": None,
        "champion_value": None,
        "evidence_rows": None,
        "quality_gate_passed": True,
        "reason": "no champion yet",
    }
    assert promotion.select_model_in_use(model, decision, None) is model
