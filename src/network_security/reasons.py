"""Reasons for a verdict: the few indicators that pushed a site most toward its verdict.

Computed by the served predictor itself (``PhishingModel.phishing_probability_of_matrix``, which
includes the engineered count features), so a reason is faithful by construction. For a row x
and an indicator j with allowed values V_j (the schema's):

- toward phishing: ``P(x) - min_{v in V_j, v != x_j} P(x with x_j := v)``, how much P(phishing)
  drops at the best other value of j;
- toward legitimate: ``max_{v in V_j, v != x_j} P(x with x_j := v) - P(x)``, how much it rises.

Rows whose recommended action is ``allow`` (``scoring.reasons.legitimate_actions``) get the
``top_k`` indicators toward legitimate, with a minus sign; the others (``review``, ``block``) the
``top_k`` toward phishing; only contributions above 0, strongest first.

Why hand-written: scikit-learn, shap and the tree libraries offer no "best single-indicator
change" over a categorical domain that goes through the whole served predictor (shap's
TreeExplainer misreads scikit-learn's categorical splits and does not see the count features
as functions of the indicators). All perturbed rows of a block are one stacked matrix scored in
one call (``BLOCK_ROWS`` distinct input rows at a time, so memory stays bounded); the predictor
splits large matrices over threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from network_security.model import PhishingModel
from network_security.schema import Schema, allowed_values

REASONS_COLUMN = "reasons"
"""The column (and JSON field) the reasons are written to."""
BLOCK_ROWS = 4096
"""Input rows per stacked matrix: 4,096 rows x 38 perturbations x 30 float64 cells = 37 MB."""
LEGITIMATE_ACTIONS = ("allow",)
"""Default actions whose reasons point toward legitimate."""
MAX_TOP_K = 30


@dataclass(frozen=True)
class ReasonSettings:
    """``scoring.reasons``: how many reasons, over which values, for which actions."""

    top_k: int
    allowed: Mapping[str, Sequence[int]]
    legitimate_actions: tuple[str, ...] = LEGITIMATE_ACTIONS


def with_allowed_values(scoring: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """``scoring`` with the schema's allowed values under ``reasons`` (the values the reasons
    try), when reasons are enabled; callers that hold the schema pass this to scoring."""
    block = scoring.get("reasons") or {}
    if not isinstance(block, Mapping) or not block.get("enabled"):
        return dict(scoring)
    return {**scoring, "reasons": {**block, "allowed_values": allowed_values(schema)}}


def reason_settings(scoring: Mapping[str, Any]) -> ReasonSettings | None:
    """The reasons settings of the ``scoring`` parameters, or ``None`` when disabled.

    Raises:
        ValueError: If ``scoring.reasons`` is malformed or lacks the allowed values.
    """
    block = scoring.get("reasons")
    if block is None or (isinstance(block, Mapping) and not block.get("enabled", False)):
        return None
    where = "scoring.reasons in conf/base/parameters_inference.yml"
    if not isinstance(block, Mapping):
        raise ValueError(
            f"{where} must be a mapping like {{enabled: true, top_k: 3}}; got {block!r}."
        )
    top_k = block.get("top_k", 3)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(
            f"{where}: top_k must be a whole number from 1 to {MAX_TOP_K}; got {top_k!r}."
        )
    allowed = block.get("allowed_values")
    if not allowed:
        raise ValueError(
            f"{where} is enabled but the schema's allowed values were not passed: score with "
            "reasons.with_allowed_values(scoring, schema), or set reasons.enabled to false."
        )
    actions = tuple(str(a) for a in block.get("legitimate_actions", LEGITIMATE_ACTIONS))
    return ReasonSettings(top_k, allowed, actions)


@dataclass(frozen=True)
class _Plan:
    """The perturbations of one column order: slot i sets column ``column[i]`` to the
    ``rank[i]``-th other allowed value of the row's own value."""

    values: list[np.ndarray]  # sorted allowed values per column
    others: list[np.ndarray]  # per column: (|V|, |V|-1), the other values of each value
    column: np.ndarray  # per slot
    rank: np.ndarray  # per slot
    explained: np.ndarray  # the columns with at least one other value
    starts: np.ndarray  # the first slot of each explained column


def _plan(columns: Sequence[str], allowed: Mapping[str, Sequence[int]]) -> _Plan:
    missing = [name for name in columns if name not in allowed]
    if missing:
        raise ValueError(f"scoring.reasons: no allowed values for the model's columns {missing}.")
    return _cached_plan(tuple((name, tuple(allowed[name])) for name in columns))


@lru_cache(maxsize=8)
def _cached_plan(domain: tuple[tuple[str, tuple[int, ...]], ...]) -> _Plan:
    """The plan of a column order and its allowed values (built once: ~1 ms a request)."""
    values = [np.unique(np.asarray(allowed, dtype=np.int64)) for _, allowed in domain]
    others = [
        np.array([np.delete(v, p) for p in range(len(v))]).reshape(len(v), -1) for v in values
    ]
    slots = [(j, s) for j, v in enumerate(values) for s in range(len(v) - 1)]
    column = np.asarray([j for j, _ in slots], dtype=np.intp)
    explained = np.unique(column)
    starts = np.searchsorted(column, explained)
    return _Plan(
        values, others, column, np.asarray([s for _, s in slots], dtype=np.intp), explained, starts
    )


def _extremes(model: PhishingModel, X: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest P(phishing) over each explained column's other values: two arrays of
    shape (explained columns, rows); NaN where the row's value is not an allowed one."""
    positions, valid = [], []
    for j, values in enumerate(plan.values):
        at = np.minimum(np.searchsorted(values, X[:, j]), len(values) - 1)
        positions.append(at)
        valid.append(values[at] == X[:, j])
    stacked = np.empty((len(plan.column), len(X), X.shape[1]), dtype=np.float64)
    stacked[:] = X  # one copy of the block per perturbation: a loop over slots, not rows
    for slot, (j, s) in enumerate(zip(plan.column, plan.rank, strict=True)):
        stacked[slot, :, j] = plan.others[j][positions[j], s]
    flat = stacked.reshape(-1, X.shape[1])
    probability = model.phishing_probability_of_matrix(flat).reshape(len(plan.column), len(X))
    invalid = ~np.asarray(valid)[plan.column]
    probability[invalid] = np.nan
    lowest = np.fmin.reduceat(probability, plan.starts, axis=0)
    highest = np.fmax.reduceat(probability, plan.starts, axis=0)
    return lowest, highest


@dataclass(frozen=True)
class Reasons:
    """The reasons of scored rows, strongest first: ``indicator`` (column index, -1 for none),
    ``value`` (the row's value), ``contribution`` (+ toward phishing, - toward legitimate)."""

    columns: list[str]
    allowed: list[np.ndarray]
    indicator: np.ndarray  # (rows, top_k)
    value: np.ndarray
    contribution: np.ndarray

    def texts(self) -> pa.Array:
        """``SSLfinal_State=-1 (+0.31); URL_of_Anchor=-1 (+0.22)`` per row ('' when none): two
        decimals (the contribution rounded half to even in hundredths), the sign always shown.
        Built from a table of every possible piece with Arrow (no Python string per cell)."""
        table, lookup, lowest = _pieces(
            tuple(self.columns), tuple(tuple(int(x) for x in v) for v in self.allowed)
        )
        shown = self.indicator >= 0
        cents = np.rint(np.abs(np.where(shown, self.contribution, 0)) * 100).astype(np.intp)
        negative = (self.contribution < 0).astype(np.intp)
        pair = lookup[np.maximum(self.indicator, 0), np.where(shown, self.value, lowest) - lowest]
        index = (((pair * 2 + negative) * 101 + np.minimum(cents, 100)) * 2).astype(np.intp)
        index[:, 1:] += 1  # the pieces after the first start with "; "
        index[~shown] = len(table) - 1  # the empty piece
        parts = [pc.take(table, pa.array(index[:, slot])) for slot in range(index.shape[1])]
        if not parts:  # no indicator has another allowed value
            return pa.array([""] * len(index), pa.large_string())
        return pc.binary_join_element_wise(*parts, pa.scalar("", pa.large_string()))

    def text_column(self, index: pd.Index) -> pd.Series:
        """``texts`` as a pandas string column on ``index``."""
        return pd.Series(pd.array(self.texts(), dtype="str"), index=index, copy=False)

    def records(self) -> list[list[dict[str, Any]]]:
        """Per row: ``[{"indicator", "value", "contribution"}, ...]``, strongest first."""
        names = self.columns
        return [
            [
                {"indicator": names[j], "value": v, "contribution": c}
                for j, v, c in zip(js, vs, cs, strict=True)
                if j >= 0
            ]
            for js, vs, cs in zip(
                self.indicator.tolist(),
                self.value.tolist(),
                self.contribution.tolist(),
                strict=True,
            )
        ]


@lru_cache(maxsize=8)
def _pieces(
    columns: tuple[str, ...], allowed: tuple[tuple[int, ...], ...]
) -> tuple[pa.Array, np.ndarray, int]:
    """Every text piece ``[; ]name=value (+0.31)``, indexed by (column/value pair, sign, cents,
    first or not); the lookup of a pair by (column, value - lowest); the lowest value."""
    lowest = min(min(v) for v in allowed)
    lookup = np.full((len(columns), max(max(v) for v in allowed) - lowest + 1), 0, np.intp)
    pieces = []
    for j, (name, values) in enumerate(zip(columns, allowed, strict=True)):
        for value in values:
            lookup[j, value - lowest] = len(pieces) // (2 * 101 * 2)
            for sign in "+-":
                for cents in range(101):
                    piece = f"{name}={value} ({sign}{cents // 100}.{cents % 100:02d})"
                    pieces += [piece, "; " + piece]
    return pa.array([*pieces, ""], pa.large_string()), lookup, lowest


def explain(
    model: PhishingModel,
    features: np.ndarray,
    probability: np.ndarray,
    toward_phishing: np.ndarray,
    settings: ReasonSettings,
) -> Reasons:
    """The reasons of each row of a checked feature matrix (columns: the model's
    ``feature_columns``), given its P(phishing) and whether its reasons point toward phishing.
    """
    columns = list(model.feature_columns)
    plan = _plan(columns, settings.allowed)
    k = min(settings.top_k, len(plan.explained))
    X = np.asarray(features)
    shape = (len(X), k)
    indicator = np.full(shape, -1, dtype=np.intp)
    value = np.zeros(shape, dtype=np.int64)
    contribution = np.full(shape, np.nan)
    if not len(X):
        return Reasons(columns, plan.values, indicator, value, contribution)
    # equal rows have equal reasons: each distinct row is perturbed once (exact; real batches
    # repeat feature vectors often: about half the rows of the data set are duplicates)
    distinct, inverse = np.unique(X, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    parts = [
        _extremes(model, distinct[start : start + BLOCK_ROWS], plan)
        for start in range(0, len(distinct), BLOCK_ROWS)
    ]
    lowest = np.concatenate([low for low, _ in parts], axis=1)
    highest = np.concatenate([high for _, high in parts], axis=1)
    for start in range(0, len(X), BLOCK_ROWS):
        rows = slice(start, start + BLOCK_ROWS)
        block, at = X[rows], inverse[rows]
        p, phishing = np.asarray(probability[rows], np.float64), toward_phishing[rows]
        strength = np.where(phishing, p - lowest[:, at], highest[:, at] - p).T
        strength = np.nan_to_num(strength, nan=-np.inf)  # (rows, explained columns)
        order = np.argsort(-strength, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(strength, order, axis=1)
        kept = top > 0
        chosen = plan.explained[order]
        indicator[rows] = np.where(kept, chosen, -1)
        value[rows] = np.where(kept, np.take_along_axis(block, chosen, axis=1), 0)
        contribution[rows] = np.where(kept, np.where(phishing[:, None], top, -top), np.nan)
    return Reasons(columns, plan.values, indicator, value, contribution)


def reasons_for(
    model: PhishingModel,
    features: np.ndarray,
    probability: np.ndarray,
    actions: np.ndarray,
    scoring: Mapping[str, Any],
) -> Reasons | None:
    """``explain`` per the ``scoring`` parameters (``None`` when reasons are disabled): rows
    whose action is one of ``legitimate_actions`` get reasons toward legitimate."""
    settings = reason_settings(scoring)
    if settings is None:
        return None
    toward_phishing = ~np.isin(np.asarray(actions, dtype=object), settings.legitimate_actions)
    return explain(model, features, probability, toward_phishing, settings)
