"""Scoring new sites: the one scoring function, over frames, chunks and matrices.

The inference pipeline and the HTTP service both call these functions, so a CSV scored with
``kedro run --pipeline inference`` and the same rows posted to the service get the same verdicts.

- ``check_inference_frame`` (from ``network_security.validator``, the one validator, re-exported
  here) checks a frame of new sites against the schema (features only; the target is not
  expected) and returns it with the feature columns as int64. Extra columns (a URL, an id) are
  kept untouched. Problems raise ``InputValidationError`` naming the problem, the column, the
  data row and the value, with how many rows are affected.
- ``score_frame`` adds the verdict columns: ``prediction`` (coded like ``Result``), ``label``,
  ``phishing_probability``, ``risk_level``, ``recommended_action`` and ``model_version``, then
  ``reasons`` when ``scoring.reasons`` is enabled (``network_security.reasons``). The action
  follows the operating points chosen in training within an error budget
  (``operating_points_of``): allow / review / block; the risk level refines review by the
  model's threshold (``RISK_LEVELS``).
- ``check_chunks`` and ``score_chunks`` apply the same two functions lazily to a stream of chunks
  (``ChunkStream``, from ``network_security.streams``, re-exported here), so a large file is
  scored with bounded memory and gives exactly what the whole file scored at once gives.
- Without a DataFrame (the service's JSON records): ``check_feature_matrix`` (an integer
  matrix) and ``check_feature_columns`` (cells of any type per column), also from the
  validator, run the same check and return an int64 matrix; ``score_features`` turns it into
  ``Verdicts`` (arrays).

The probabilities come from the model's compiled predictor
(``PhishingModel.phishing_probability_of_matrix``, ``network_security.tree_predictor``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from network_security.model import PhishingModel, flags_phishing
from network_security.reasons import REASONS_COLUMN, Reasons, reasons_for
from network_security.schema import Schema
from network_security.streams import ChunkStream
from network_security.validator import (
    MISSING_TEXT,
    InputValidationError,
    _columns_of,
    _is_plain_integer,
    check_feature_columns,
    check_feature_matrix,
    check_inference_frame,
    require_columns,
)

__all__ = [
    "MISSING_TEXT",
    "ACTIONS",
    "OUTPUT_COLUMNS",
    "RISK_LEVELS",
    "ChunkStream",
    "InputValidationError",
    "Verdicts",
    "check_chunks",
    "check_feature_columns",
    "check_feature_matrix",
    "check_inference_frame",
    "operating_points_of",
    "refuse_verdict_columns",
    "risk_bands",
    "score_chunks",
    "score_features",
    "score_frame",
    "verdict_reasons",
    "verdicts_of",
]

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS: tuple[str, ...] = (
    "prediction",
    "label",
    "phishing_probability",
    "risk_level",
    "recommended_action",
    "model_version",
)
"""The columns ``score_frame`` adds, in order."""


# ------------------------------------------------------------------------------ scoring


RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
"""The risk levels, from the model's operating points and threshold t: ``low`` = allow
(P < allow_below), ``medium`` = review below t, ``high`` = review at or above t, ``critical``
= block (P > block_above)."""
ACTIONS: tuple[str, ...] = ("allow", "review", "review", "block")
"""The recommended action of each risk level."""


def operating_points_of(model: PhishingModel) -> dict[str, Any]:
    """The points the model's decisions change at, as scoring uses them: the model's own
    ``operating_points`` (chosen in training within the error budget), or for a model without
    them (older pickles) both points at its threshold (allow below it, block above it).

    Returns:
        ``allow_below``, ``block_above``, ``source`` (``training`` or ``threshold``) and, when
        trained with a budget, the budget and the expected rates.
    """
    points = model.operating_points
    if not points:
        threshold = float(model.threshold)
        return {"allow_below": threshold, "block_above": threshold, "source": "threshold"}
    return {**points, "source": "training"}


def risk_bands(model: PhishingModel, probability: np.ndarray) -> np.ndarray:
    """The index into ``RISK_LEVELS`` and ``ACTIONS`` of each P(phishing)."""
    points = operating_points_of(model)
    review_band = np.where(flags_phishing(probability, model.threshold), 2, 1)
    return np.select(
        [probability < points["allow_below"], probability > points["block_above"]],
        [0, 3],
        review_band,
    )


@dataclass(frozen=True)
class Verdicts:
    """The verdicts of scored rows, as arrays (``score_frame`` turns them into columns).

    ``band`` indexes ``levels`` and ``actions``; ``is_phishing`` follows the model's threshold.
    """

    prediction: np.ndarray
    is_phishing: np.ndarray
    phishing_probability: np.ndarray
    band: np.ndarray
    words: tuple[str, str]  # (phishing, legitimate)
    levels: list[str]
    actions: list[str]
    model_version: str

    def label_codes(self) -> np.ndarray:
        """0 for the phishing word, 1 for the legitimate one (indexes ``words``)."""
        return (~self.is_phishing).astype(np.intp)


def _text_column(words: Sequence[str], codes: np.ndarray, index: pd.Index) -> pd.Series:
    """A text column of ``words[code]`` per row, built in Arrow (no Python string per cell)."""
    array = pc.take(pa.array(list(words), pa.large_string()), pa.array(codes))
    return pd.Series(pd.array(array, dtype="str"), index=index, copy=False)


def score_features(
    model: PhishingModel,
    features: np.ndarray,
    scoring: Mapping,
    columns: Sequence[str] | None = None,
) -> Verdicts:
    """The verdicts for a checked integer matrix of feature columns, scored by the model's
    compiled predictor.

    Args:
        model: The fitted ``PhishingModel``.
        features: One row per site; its columns are ``columns`` (default: the model's
            ``feature_columns``, in order).
        scoring: The ``scoring`` parameters (see ``score_frame``).
        columns: The names of the matrix's columns, when not the model's own order.

    Raises:
        InputValidationError: If a feature column of the model is not among ``columns``.
    """
    if columns is not None and list(columns) != list(model.feature_columns):
        require_columns(
            columns, list(model.feature_columns), "input", "feature columns the model needs"
        )
        positions = [list(columns).index(name) for name in model.feature_columns]
        features = features[:, positions]
    return verdicts_of(model, model.phishing_probability_of_matrix(features), scoring)


def verdicts_of(model: PhishingModel, probability: np.ndarray, scoring: Mapping) -> Verdicts:
    """Verdicts from the model's P(phishing) per row: the one place probabilities become a
    prediction (the model's threshold), a label, a risk level and an action (the model's
    operating points, ``risk_bands``)."""
    labels = scoring.get("labels", {})
    phishing_word = str(labels.get("phishing", "phishing"))
    legitimate_word = str(labels.get("legitimate", "legitimate"))
    probability = np.clip(np.asarray(probability, dtype=np.float64), 0, 1)
    is_phishing = flags_phishing(probability, model.threshold)  # the rule of PhishingModel.predict
    prediction = np.where(is_phishing, model.phishing_label, model.legitimate_label)
    return Verdicts(
        prediction=prediction.astype(np.int64),
        is_phishing=is_phishing,
        phishing_probability=probability,
        band=risk_bands(model, probability),
        words=(phishing_word, legitimate_word),
        levels=list(RISK_LEVELS),
        actions=list(ACTIONS),
        model_version=str(model.version),
    )


def verdict_reasons(
    model: PhishingModel, features: np.ndarray, verdicts: Verdicts, scoring: Mapping
) -> Reasons | None:
    """The reasons of each verdict (``network_security.reasons``), or ``None`` when
    ``scoring.reasons`` is disabled; ``features`` in the model's column order."""
    actions = np.asarray(verdicts.actions, dtype=object)[verdicts.band]
    return reasons_for(model, features, verdicts.phishing_probability, actions, scoring)


def refuse_verdict_columns(columns: Iterable[Any], names: Sequence[str] = OUTPUT_COLUMNS) -> None:
    """Raise ``InputValidationError`` if the input has a column that scoring adds."""
    present = {str(column) for column in columns}
    clashes = [name for name in names if name in present]
    if clashes:
        raise InputValidationError(
            f"The input already has column(s) {clashes}, which scoring adds (is it a predictions "
            "file?). Remove or rename them and run again.",
            column=clashes[0],
            problem="reserved_column",
        )


def score_frame(model: PhishingModel, frame: pd.DataFrame, scoring: dict) -> pd.DataFrame:
    """Score checked sites: the input columns followed by the verdict columns.

    Args:
        model: The fitted ``PhishingModel`` (the champion).
        frame: Rows checked by ``check_inference_frame`` (feature columns int64, extras kept).
        scoring: The ``scoring`` parameters: ``labels`` (phishing/legitimate -> words).

    Returns:
        A new frame: the columns of ``frame`` then ``prediction`` (1 legitimate, -1 phishing,
        from the model's threshold), ``label``, ``phishing_probability`` in [0, 1],
        ``risk_level`` and ``recommended_action`` (from the model's operating points,
        ``risk_bands``) and ``model_version``; same index as ``frame``.

    Raises:
        InputValidationError: If ``frame`` already has one of the verdict columns or lacks a
            feature column of the model.
    """
    refuse_verdict_columns(frame.columns)
    require_columns(
        frame.columns, list(model.feature_columns), "input", "feature columns the model needs"
    )
    columns = _columns_of(frame) if not frame.columns.has_duplicates else None
    if columns is not None and all(
        _is_plain_integer(columns[name].dtype) for name in model.feature_columns
    ):
        features = np.column_stack(
            [columns[name].to_numpy(dtype=np.int64) for name in model.feature_columns]
        )
        verdicts = score_features(model, features, scoring)
    else:  # not an integer matrix: the model's own handling of the frame
        probability = model.phishing_probability(frame[model.feature_columns])
        verdicts = verdicts_of(model, probability, scoring)
        features = frame[model.feature_columns].to_numpy(dtype=np.float64)
    index = frame.index
    added = {
        "prediction": pd.Series(verdicts.prediction, index=index, copy=False),
        "label": _text_column(verdicts.words, verdicts.label_codes(), index),
        "phishing_probability": pd.Series(verdicts.phishing_probability, index=index, copy=False),
        "risk_level": _text_column(verdicts.levels, verdicts.band, index),
        "recommended_action": _text_column(verdicts.actions, verdicts.band, index),
        "model_version": pd.Series(verdicts.model_version, index=index, dtype=str),
    }
    reasons = verdict_reasons(model, features, verdicts, scoring)
    if reasons is not None:  # scoring.reasons enabled
        refuse_verdict_columns(frame.columns, (REASONS_COLUMN,))
        added[REASONS_COLUMN] = reasons.text_column(index)
    if columns is None:
        return frame.assign(**added)
    return pd.DataFrame({**columns, **added}, index=index, copy=False)


# ------------------------------------------------------------------------------ streams


def check_chunks(chunks: ChunkStream, schema: Schema) -> ChunkStream:
    """Lazily ``check_inference_frame`` each chunk, with the file's row numbers in messages.

    A stream without any data row fails like an empty frame does.
    """

    def checked() -> Iterator[pd.DataFrame]:
        offset = 0
        for chunk in chunks:
            if offset and not len(chunk):
                continue
            yield check_inference_frame(chunk, schema, chunks.source, offset)
            offset += len(chunk)
        if offset == 0:  # no chunk at all: nothing to check the columns of either
            raise InputValidationError(
                f"{chunks.source}: no data rows to score. Add a header line with the feature "
                "columns and one row per site, and run again.",
                problem="no_rows",
                rows_affected=0,
                source=chunks.source,
            )
        logger.info("Checked %d row(s) of %s", offset, chunks.source)

    return ChunkStream(checked(), chunks.source)


def score_chunks(model: PhishingModel, chunks: ChunkStream, scoring: dict) -> ChunkStream:
    """Lazily ``score_frame`` each chunk; logs the verdict counts when the stream ends."""

    def scored() -> Iterator[pd.DataFrame]:
        counts: dict[str, int] = {}
        for chunk in chunks:
            result = score_frame(model, chunk, scoring)
            for level, count in result["risk_level"].value_counts(sort=False).items():
                counts[str(level)] = counts.get(str(level), 0) + int(count)
            yield result
        logger.info(
            "Scored %d row(s) of %s with model %s; risk levels: %s",
            sum(counts.values()),
            chunks.source,
            model.version,
            counts,
        )

    return ChunkStream(scored(), chunks.source)
