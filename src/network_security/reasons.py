"""Reasons for a verdict: the few indicators that pushed a site most toward its verdict.

Computed by the served predictor itself, engineered count features included, so a reason is
faithful by construction. The indicators' values run from phishing-like to legitimate (the
schema's lowest allowed value to its highest: -1, 0, 1). For a row x and an indicator j:

- toward phishing: ``P(x) - P(x with x_j := its legitimate value)``, how much P(phishing) drops
  when j alone looks legitimate;
- toward legitimate: ``P(x with x_j := its phishing value) - P(x)``, how much it rises when j
  alone looks like phishing.

Rows whose recommended action is ``allow`` (``scoring.reasons.legitimate_actions``) get the
``top_k`` indicators toward legitimate, with a minus sign; the others (``review``, ``block``) the
``top_k`` toward phishing; strongest first, and only those shown as at least 0.01 (an indicator
already at that value has none).

Why hand-written: scikit-learn, shap and the tree libraries offer no single-indicator change
that goes through the whole served predictor (shap's TreeExplainer misreads scikit-learn's
categorical splits and does not see the count features as functions of the indicators). The
changed rows of a block (``BLOCK_ROWS`` distinct rows, so memory stays bounded) go to the
predictor in one call (``PhishingModel.phishing_probability_of_variants``): the compiled
predictor walks each tree once per row and once more per group of changed rows that leaves the
row's path, and gives the same numbers as scoring every changed row, several times faster.
"""

from __future__ import annotations

import math
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
"""Input rows per call: 4,096 rows x 30 changed rows x 30 float64 cells = 29 MB."""
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
    """The changes of one column order: each explained column (two or more allowed values) set
    to its legitimate (highest) or phishing (lowest) value."""

    values: list[np.ndarray]  # sorted allowed values per column
    table: np.ndarray  # (columns, most values): the same, NaN-padded
    explained: np.ndarray  # the columns with at least two allowed values
    legitimate: np.ndarray  # per explained column
    phishing: np.ndarray  # per explained column


def _plan(columns: Sequence[str], allowed: Mapping[str, Sequence[int]]) -> _Plan:
    missing = [name for name in columns if name not in allowed]
    if missing:
        raise ValueError(f"scoring.reasons: no allowed values for the model's columns {missing}.")
    return _cached_plan(tuple((name, tuple(allowed[name])) for name in columns))


@lru_cache(maxsize=8)
def _cached_plan(domain: tuple[tuple[str, tuple[int, ...]], ...]) -> _Plan:
    """The plan of a column order and its allowed values (built once: ~1 ms a request)."""
    values = [np.unique(np.asarray(allowed, dtype=np.float64)) for _, allowed in domain]
    table = np.full((len(values), max(map(len, values))), np.nan)
    for j, v in enumerate(values):
        table[j, : len(v)] = v
    explained = np.asarray([j for j, v in enumerate(values) if len(v) > 1], dtype=np.intp)
    highest, lowest = (np.asarray([values[j][end] for j in explained]) for end in (-1, 0))
    return _Plan(values, table, explained, legitimate=highest, phishing=lowest)


def _distinct_rows(X: np.ndarray, toward_phishing: np.ndarray, plan: _Plan) -> tuple:
    """The first row of each distinct (feature vector, direction) and, per row, which one it is:
    equal rows have equal reasons, so each is explained once (real batches repeat vectors
    often: about half the rows of the data set are duplicates). Rows of allowed values are
    numbered by their values' positions (one integer each, sorted far faster than rows: 100,000
    rows 0.7 s -> under 0.1 s); a row with another value is one of its own."""
    widths = [len(v) for v in plan.values]
    if math.prod(widths) >= 2**61:  # too many combinations for one integer
        keyed = np.column_stack([X, toward_phishing])
        _, index, inverse = np.unique(keyed, axis=0, return_index=True, return_inverse=True)
        return index, inverse.reshape(-1)
    hits = X[:, :, None] == plan.table[None]  # (rows, columns, values)
    codes = hits.argmax(axis=2) @ np.cumprod([1, *widths[:-1]], dtype=np.int64)
    codes = codes * 2 + toward_phishing
    unusual = np.flatnonzero(~hits.any(axis=2).all(axis=1))
    codes[unusual] = -1 - unusual
    _, index, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return index, inverse.reshape(-1)


def _strengths(
    model: PhishingModel, X: np.ndarray, p: np.ndarray, phishing: np.ndarray, plan: _Plan
) -> np.ndarray:
    """How far each explained column pushes each row toward its direction (``phishing``: toward
    phishing): shape (rows, explained columns); -inf where the column is at the changed value."""
    target = np.where(phishing[:, None], plan.legitimate, plan.phishing)  # (rows, explained)
    changes = np.repeat(X[:, None, :], len(plan.explained), axis=1)  # (rows, explained, columns)
    changes[:, np.arange(len(plan.explained)), plan.explained] = target
    changed = model.phishing_probability_of_variants(X, changes)
    strength = np.where(phishing[:, None], p[:, None] - changed, changed - p[:, None])
    return np.where(X[:, plan.explained] == target, -np.inf, strength)


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
    X, toward_phishing = np.asarray(features), np.asarray(toward_phishing, dtype=bool)
    if not len(X):
        empty = np.zeros((0, k))
        return Reasons(columns, plan.values, empty.astype(np.intp), empty.astype(np.int64), empty)
    index, inverse = _distinct_rows(X, toward_phishing, plan)
    distinct = X[index].astype(np.float64)  # the predictor's dtype: its variants need no copy
    p = np.asarray(probability, np.float64)[index]
    phishing = toward_phishing[index]
    strength = np.concatenate(
        [
            _strengths(model, distinct[at], p[at], phishing[at], plan)
            for at in (slice(s, s + BLOCK_ROWS) for s in range(0, len(distinct), BLOCK_ROWS))
        ]
    )
    order = np.argsort(-strength, axis=1, kind="stable")[:, :k]  # ties: the schema's order
    top = np.take_along_axis(strength, order, axis=1)
    kept = np.rint(top * 100) >= 1  # shown as 0.01 or more: a smaller change is no reason
    chosen = plan.explained[order]
    indicator = np.where(kept, chosen, -1)
    value = np.where(kept, np.take_along_axis(distinct, chosen, axis=1), 0).astype(np.int64)
    contribution = np.where(kept, np.where(phishing[:, None], top, -top), np.nan)
    return Reasons(columns, plan.values, indicator[inverse], value[inverse], contribution[inverse])


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
