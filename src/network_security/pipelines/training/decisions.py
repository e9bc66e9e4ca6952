"""Decisions within an error budget: the two operating points on P(phishing) that turn a
probability into ``allow`` / ``review`` / ``block``.

node    choose_operating_points (after select_best_candidate and choose_threshold)

The points are chosen on the selected configuration's grouped out-of-fold probabilities (the
ones model selection computes anyway), with class-conditional split conformal's finite-sample
correction, so that on new sites at most ``training.decisions.max_missed_phishing`` of the
phishing ones get ``allow`` and at most ``max_false_block`` of the legitimate ones get
``block``; the others get ``review``.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from network_security.pipelines.training.evaluation import labels_of
from network_security.pipelines.training.params import TrainingParams
from network_security.schema import Schema, target_column

logger = logging.getLogger(__name__)


def conformal_rank(alpha: float, n: int) -> int:
    """``floor(alpha * (n + 1))``, computed on the decimal value of ``alpha`` as an exact
    fraction, so float error (0.29 * 100 = 28.999...) cannot shift the rank."""
    return math.floor(Fraction(str(alpha)) * (n + 1))


def order_statistic(values: np.ndarray, rank: int) -> float:
    """The ``rank``-th smallest of ``values`` (1-based), by ``np.quantile(..., "inverted_cdf")``.

    The quantile is asked at ``(rank - 0.5) / n`` rather than ``rank / n``: inverted_cdf
    returns the same order statistic for any level in ((rank - 1) / n, rank / n], and ``rank /
    n`` in floats lands one order statistic too high for about a third of (n, rank) pairs.
    """
    return float(np.quantile(values, (rank - 0.5) / len(values), method="inverted_cdf"))


def allow_bound(phishing_probability: np.ndarray, alpha: float) -> float:
    """``allow iff P < allow_below``, at most a share ``alpha`` of new phishing sites allowed.

    With p the out-of-fold P(phishing) of the n phishing rows and k = floor(alpha (n + 1)):
    ``allow_below = sort(p)[k - 1]`` (the k-th smallest), or -inf when k = 0 (too few rows for
    the budget: allow never fires). Strict ``<``: copies of a vector share one probability.
    """
    k = conformal_rank(alpha, len(phishing_probability))
    return order_statistic(phishing_probability, k) if k >= 1 else -math.inf


def block_bound(legitimate_probability: np.ndarray, alpha: float) -> float:
    """``block iff P > block_above``, at most a share ``alpha`` of new legitimate sites blocked.

    With q the out-of-fold P(phishing) of the m legitimate rows and j = floor(alpha (m + 1)):
    ``block_above = sort(q)[m - j]`` (the j-th largest), or +inf when j = 0 (block never fires).
    Strict ``>``: the ties sit on the threshold and are reviewed.
    """
    m = len(legitimate_probability)
    j = conformal_rank(alpha, m)
    return order_statistic(legitimate_probability, m - j + 1) if j >= 1 else math.inf


def expected_rates(
    probability: np.ndarray, is_phishing: np.ndarray, allow_below: float, block_above: float
) -> dict[str, float]:
    """The shares of the rows ``probability`` would give each outcome: phishing rows allowed,
    legitimate rows blocked, and all rows reviewed."""
    allowed, blocked = probability < allow_below, probability > block_above
    return {
        "expected_missed_phishing": float(allowed[is_phishing].mean()),
        "expected_false_block": float(blocked[~is_phishing].mean()),
        "expected_review_share": float((~allowed & ~blocked).mean()),
    }


def choose_operating_points(
    oof_probabilities: pd.DataFrame,
    model_input_train: pd.DataFrame,
    best_candidate: dict[str, Any],
    threshold_choice: dict[str, Any],
    schema: Schema,
    training: TrainingParams,
) -> dict[str, Any]:
    """Node: the allow and block points of the selected configuration (see ``allow_bound`` and
    ``block_bound``), on every row of the training split (each row is a site).

    The points keep the prediction consistent: ``allow_below`` is at most the model's
    threshold and ``block_above`` at least it, so an allowed site is predicted legitimate and a
    blocked one phishing (this only makes allow and block rarer). When the points would cross
    (tiny or degenerate data) both sit at the threshold, with a warning. Infinite points (the
    outcome never fires) are stored as 0 and 1, their equivalent on probabilities in [0, 1].

    Returns:
        ``allow_below``, ``block_above``, the budgets and the expected rates on these rows
        (``expected_missed_phishing``, ``expected_false_block``, ``expected_review_share``).
    """
    budget = training.decisions
    phishing, _ = labels_of(schema)
    probability = oof_probabilities[best_candidate["config_id"]].to_numpy(dtype=np.float64)
    is_phishing = model_input_train[target_column(schema)].to_numpy() == phishing
    threshold = float(threshold_choice["threshold"])
    allow_below = allow_bound(probability[is_phishing], budget.max_missed_phishing)
    block_above = block_bound(probability[~is_phishing], budget.max_false_block)
    if allow_below >= block_above:
        logger.warning(
            "The allow point (%.4f) is not below the block point (%.4f) on %d rows (classes "
            "that do not overlap, or too few rows): both set to the model's threshold %.2f, "
            "so sites below it are allowed and above it blocked, none reviewed.",
            allow_below, block_above, len(probability), threshold,
        )  # fmt: skip
        allow_below = block_above = threshold
    allow_below = max(min(allow_below, threshold), 0.0)
    block_above = min(max(block_above, threshold), 1.0)
    points = {
        "allow_below": allow_below,
        "block_above": block_above,
        "max_missed_phishing": budget.max_missed_phishing,
        "max_false_block": budget.max_false_block,
        **expected_rates(probability, is_phishing, allow_below, block_above),
    }
    logger.info(
        "Operating points: allow if P(phishing) < %.4f, block if > %.4f; out-of-fold missed "
        "phishing %.2f %%, false block %.2f %%, review %.1f %% of %d rows.",
        allow_below, block_above, 100 * points["expected_missed_phishing"],
        100 * points["expected_false_block"], 100 * points["expected_review_share"],
        len(probability),
    )  # fmt: skip
    return points
