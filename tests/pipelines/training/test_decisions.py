"""Decisions within an error budget: the conformal order statistics, the operating-points node,
the budget parameters, and the points a training run puts in the model."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from network_security.pipelines.training import decisions, selection
from network_security.pipelines.training.params import TrainingParams
from network_security.schema import target_column

P = TrainingParams.parse


# ---------------------------------------------------------------- order statistics


@pytest.mark.parametrize(
    ("alpha", "n", "k"),
    [(0.01, 99, 1), (0.01, 98, 0), (0.01, 199, 2), (0.29, 99, 29), (0.07, 99, 7), (0.1, 9, 1)],
)
def test_the_conformal_rank_is_floor_alpha_n_plus_one_without_float_error(alpha, n, k):
    assert decisions.conformal_rank(alpha, n) == k  # 0.29 * 100 = 28.999... in floats


def test_the_allow_point_is_the_kth_smallest_phishing_probability():
    p = np.random.default_rng(0).permutation(np.arange(199) / 1000)
    assert decisions.allow_bound(p, 0.01) == np.sort(p)[1]  # k = floor(0.01 * 200) = 2
    assert decisions.allow_bound(p, 0.29) == np.sort(p)[57]  # k = floor(0.29 * 200) = 58


def test_the_order_statistic_is_exact_for_every_rank():
    """``rank / n`` in floats picks the next order statistic for many (n, rank) pairs."""
    for n in range(1, 400):
        values = np.arange(n, dtype=float)
        for rank in {1, max(1, n // 3), n}:
            assert decisions.order_statistic(values, rank) == rank - 1


def test_the_block_point_is_the_jth_largest_legitimate_probability():
    q = np.random.default_rng(1).permutation(0.5 + np.arange(299) / 1000)
    assert decisions.block_bound(q, 0.01) == np.sort(q)[299 - 3]  # j = floor(0.01 * 300) = 3


def test_points_are_strict_so_ties_on_a_point_are_reviewed():
    p = np.array([0.1, 0.1, 0.1, 0.3, 0.4] * 40)  # n = 200, k = 2: the 2nd smallest is 0.1
    allow_below = decisions.allow_bound(p, 0.01)
    assert allow_below == 0.1
    assert not (p < allow_below).any()  # the tied copies are not allowed
    q = np.array([0.2, 0.6, 0.9, 0.9] * 50)
    block_above = decisions.block_bound(q, 0.01)
    assert block_above == 0.9 and not (q > block_above).any()


def test_too_few_rows_for_the_budget_never_allow_nor_block():
    rows = np.linspace(0, 1, 98)  # floor(0.01 * 99) = 0
    assert decisions.allow_bound(rows, 0.01) == -math.inf
    assert decisions.block_bound(rows, 0.01) == math.inf


def test_the_missed_share_on_new_exchangeable_rows_stays_within_the_budget():
    """Split conformal: P(new phishing row allowed) = k / (n + 1) <= alpha, on average."""
    rng = np.random.default_rng(3)
    missed = [
        (rng.random(2000) < decisions.allow_bound(rng.random(499), 0.01)).mean() for _ in range(300)
    ]
    assert np.mean(missed) == pytest.approx(5 / 500, abs=0.002)  # k = floor(0.01 * 500) = 5


# ---------------------------------------------------------------- the node


def node_inputs(schema, phishing: np.ndarray, legitimate: np.ndarray, threshold: float = 0.5):
    target = target_column(schema)
    frame = pd.DataFrame({target: np.r_[np.full(len(phishing), -1), np.full(len(legitimate), 1)]})
    oof = pd.DataFrame({"best#0": np.r_[phishing, legitimate]})
    return oof, frame, {"config_id": "best#0"}, {"threshold": threshold}


def test_the_node_reports_the_points_and_their_out_of_fold_rates(schema, training_params):
    rng = np.random.default_rng(4)
    phishing, legitimate = rng.beta(8, 2, 999), rng.beta(2, 8, 1999)
    points = decisions.choose_operating_points(
        *node_inputs(schema, phishing, legitimate), schema, P(training_params)
    )
    assert points["allow_below"] == np.sort(phishing)[9]  # k = floor(0.01 * 1000) = 10
    assert points["block_above"] == np.sort(legitimate)[1999 - 20]  # j = 20
    assert points["expected_missed_phishing"] == pytest.approx(9 / 999)
    assert points["expected_false_block"] == pytest.approx(19 / 1999)
    probability = np.r_[phishing, legitimate]
    reviewed = (probability >= points["allow_below"]) & (probability <= points["block_above"])
    assert points["expected_review_share"] == pytest.approx(reviewed.mean())
    assert (points["max_missed_phishing"], points["max_false_block"]) == (0.01, 0.01)


def test_crossing_points_fall_back_to_the_threshold_with_a_warning(schema, training_params, caplog):
    rng = np.random.default_rng(5)
    phishing, legitimate = rng.uniform(0.7, 1, 400), rng.uniform(0, 0.3, 400)  # no overlap
    with caplog.at_level(logging.WARNING):
        points = decisions.choose_operating_points(
            *node_inputs(schema, phishing, legitimate, threshold=0.45), schema, P(training_params)
        )
    assert points["allow_below"] == points["block_above"] == 0.45
    assert "both set to the model's threshold" in caplog.text
    assert points["expected_missed_phishing"] == points["expected_false_block"] == 0.0


def test_points_that_never_fire_are_stored_as_0_and_1(schema, training_params):
    points = decisions.choose_operating_points(
        *node_inputs(schema, np.full(50, 0.9), np.full(60, 0.1)), schema, P(training_params)
    )
    assert (points["allow_below"], points["block_above"]) == (0.0, 1.0)
    assert points["expected_review_share"] == 1.0


@pytest.mark.parametrize("threshold", [0.001, 0.999])
def test_points_never_contradict_the_prediction(schema, training_params, threshold):
    """An allowed site is predicted legitimate, a blocked one phishing: the points are clamped
    to the model's threshold when it is more cautious than the budget."""
    spread = np.linspace(0, 1, 500)
    points = decisions.choose_operating_points(
        *node_inputs(schema, spread, spread.copy(), threshold), schema, P(training_params)
    )
    assert points["allow_below"] <= threshold <= points["block_above"]
    assert threshold in (points["allow_below"], points["block_above"])


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize("value", [0, 0.5, -0.1, 1.2, "one percent"])
def test_a_budget_outside_0_to_0_5_is_refused_naming_the_key(training_params, value):
    training_params["decisions"] = {"max_missed_phishing": 0.01, "max_false_block": value}
    with pytest.raises(ValueError, match=r"training\.decisions\.max_false_block") as caught:
        P(training_params)
    assert "parameters_training.yml" in str(caught.value)


def test_the_budget_is_required(training_params):
    del training_params["decisions"]
    with pytest.raises(ValueError, match=r"training\.decisions"):
        P(training_params)


# ---------------------------------------------------------------- in the model


def train_points(frame, params, schema):
    results, oof = selection.search_candidates(frame, schema, P(params))
    best = selection.select_best_candidate(results, P(params))
    threshold = selection.choose_threshold(oof, frame, best, schema, P(params))
    points = decisions.choose_operating_points(oof, frame, best, threshold, schema, P(params))
    return selection.fit_production_model(frame, best, threshold, schema, P(params), points)


def test_retraining_on_the_same_records_gives_the_same_points(make_frame, fast_params, schema):
    def rule(frame: pd.DataFrame) -> np.ndarray:
        return np.where(frame["SSLfinal_State"] + frame["URL_of_Anchor"] < 0, -1, 1)

    frame = make_frame(600, rule, seed=2, copies=2, noise=0.05)
    first, second = (train_points(frame, fast_params, schema) for _ in range(2))
    assert first.operating_points is not None
    assert first.operating_points == second.operating_points
    assert 0 <= first.operating_points["allow_below"] <= first.threshold
