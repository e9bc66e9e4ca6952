"""Scoring new sites: the input checks and the one scoring function.

The inference pipeline and the HTTP service both call these functions, so a CSV scored with
``kedro run --pipeline inference`` and the same rows posted to the service get the same verdicts.

- ``check_inference_frame`` checks a frame of new sites against the schema (features only; the
  target is not expected) and returns it with the feature columns as int64. Extra columns (a URL,
  an id) are kept untouched. Problems raise ``InputValidationError`` naming the problem, the
  column, the data row and the value, with how many rows are affected.
- ``score_frame`` adds the verdict columns: ``prediction`` (coded like ``Result``), ``label``,
  ``phishing_probability``, ``risk_level``, ``recommended_action`` and ``model_version``.
- ``check_chunks`` and ``score_chunks`` apply the same two functions lazily to a stream of chunks
  (``ChunkStream``), so a large file is scored with bounded memory and gives exactly what the
  whole file scored at once gives.
- Without a DataFrame (the service's JSON records): ``check_feature_matrix`` (an integer
  matrix) and ``check_feature_columns`` (cells of any type per column) run the same check and
  return an int64 matrix; ``score_features`` turns it into ``Verdicts`` (arrays).

The checks are vectorised over whole blocks: integers are compared with the allowed values of
their column at once, text is parsed by Arrow in one cast, and only a block with a bad cell is
looked at cell by cell to name it. A value outside the allowed set is refused whatever its size
or type: an integer beyond int64 (signed or unsigned) is clamped, never wrapped into the domain,
and a boolean is never taken for 0 or 1. The probabilities come from the model's compiled
predictor (``PhishingModel.phishing_probability_of_matrix``, ``network_security.compiled``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from kedro.io import DatasetError

from network_security.model import PhishingModel, flags_phishing
from network_security.schema import Schema, allowed_values, feature_columns

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

MISSING_TEXT = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>"})
"""Cell texts read as a missing value (compared case-insensitively, after stripping)."""

_SHOWN_ROWS = 5
_INT64 = np.iinfo(np.int64)


class InputValidationError(ValueError, DatasetError):
    """New sites that cannot be scored: names the problem, the column, the row and the value.

    It is a ``ValueError``. It is also a Kedro ``DatasetError``, so that when a lazily read chunk
    fails while the predictions are written, Kedro's dataset wrapper passes it on without burying
    the message under a dataset description; the catalog then re-raises it as a ``DatasetError``
    prefixed with the dataset name, with this error as ``__cause__``.

    Attributes:
        column: The offending column, or ``None`` for a file-level problem.
        row: The 1-based data row as in the file (header excluded), or ``None``.
        value: The offending cell text, or ``None``.
        problem: A short code: ``missing_column``, ``no_rows``, ``missing_value``,
            ``not_integer``, ``not_allowed``, ``empty_file``, ``not_text``, ``malformed``,
            ``reserved_column``.
        rows_affected: How many rows of the checked frame have this problem (``None`` if n/a).
        source: The file or request the rows came from.
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        row: int | None = None,
        value: str | None = None,
        problem: str = "invalid",
        rows_affected: int | None = None,
        source: str = "input",
    ) -> None:
        super().__init__(message)
        self.column = column
        self.row = row
        self.value = value
        self.problem = problem
        self.rows_affected = rows_affected
        self.source = source


class ChunkStream:
    """A lazy stream of DataFrame chunks (the rows of one file, in order).

    Iterating yields the chunks. ``source`` names where the rows come from, for error messages.
    A stream built from a re-iterable (such as a file reader) can be iterated again; one built
    from a generator only once. Kedro's ``MemoryDataset`` passes it on without copying.
    """

    def __init__(self, chunks: Iterable[pd.DataFrame], source: str = "input") -> None:
        self._chunks = chunks
        self.source = source

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return iter(self._chunks)

    def __deepcopy__(self, memo: dict[int, Any]) -> ChunkStream:
        return self

    def __copy__(self) -> ChunkStream:
        return self

    def __repr__(self) -> str:
        return f"ChunkStream(source={self.source!r})"


# ------------------------------------------------------------------------------ checks


def _rows_text(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:_SHOWN_ROWS])
    return shown + (", ..." if len(rows) > _SHOWN_ROWS else "")


def _parse_integer_text(text: str) -> int | None:
    """The integer a cell text spells (``"1"``, ``" -1 "``, ``"1.0"``), or ``None``."""
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        number = float(stripped)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _clamp(number: int) -> int:
    """``number`` within int64 (a huge integer stays out of every domain)."""
    return max(min(number, _INT64.max), _INT64.min)


Columnish = pd.Series | np.ndarray | Sequence[Any]
"""One column of cells: a pandas Series of any dtype, a numpy array, or a list of values."""


def _integers_of_floats(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = np.isnan(numbers)
    integral = np.isfinite(numbers) & (np.floor(numbers) == numbers)
    # whole numbers beyond int64 are clamped (never cast with wrap-around): out of every domain
    clamped = np.clip(np.where(integral, numbers, 0.0), -(2.0**62), 2.0**62)
    return clamped.astype(np.int64), missing, ~missing & ~integral


def _integers_of_objects(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Text or mixed Python objects: each distinct value is parsed once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.zeros(len(uniques) + 1, np.int64)  # last slot: the NA sentinel (-1)
    unique_missing = np.zeros(len(uniques) + 1, bool)
    unique_bad = np.zeros(len(uniques) + 1, bool)
    unique_missing[-1] = True
    for i, unique in enumerate(uniques):
        if isinstance(unique, bool | np.bool_):
            unique_bad[i] = True
            continue
        if isinstance(unique, int | np.integer):
            lookup[i] = _clamp(int(unique))
            continue
        if isinstance(unique, float | np.floating):
            if math.isnan(unique):
                unique_missing[i] = True
            elif math.isfinite(unique) and float(unique).is_integer():
                lookup[i] = _clamp(int(unique))
            else:
                unique_bad[i] = True
            continue
        text = str(unique)
        if text.strip().lower() in MISSING_TEXT:
            unique_missing[i] = True
            continue
        parsed = _parse_integer_text(text)
        if parsed is None:
            unique_bad[i] = True
        else:
            lookup[i] = _clamp(parsed)
    integers, missing, bad = lookup[codes], unique_missing[codes], unique_bad[codes]
    if any(isinstance(u, bool | int | float | np.number | np.bool_) for u in uniques):
        # True == 1 and False == 0 to the factorizer: find the booleans cell by cell
        booleans = np.fromiter(
            (isinstance(v, bool | np.bool_) for v in values), dtype=bool, count=len(values)
        )
        bad |= booleans
        missing &= ~booleans
    return integers, missing, bad


def _integers_of(values: Columnish) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Convert one column to int64, whatever its dtype.

    Returns ``(integers, missing, not_integer)``: the converted values (0 where invalid; any
    integer beyond int64, signed or unsigned, clamped to the int64 range, hence outside every
    domain) and the boolean masks of missing cells and of cells that are not integers.
    """
    if not isinstance(values, pd.Series):
        array = np.asarray(values) if isinstance(values, np.ndarray) else None
        if array is not None and array.dtype.kind in "iu" and array.ndim == 1:
            values = pd.Series(array, copy=False)
        else:
            values = pd.Series(np.asarray(values, dtype=object), dtype=object, copy=False)
    n = len(values)
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return np.zeros(n, np.int64), values.isna().to_numpy(), np.ones(n, bool)
    if pd.api.types.is_unsigned_integer_dtype(dtype):
        missing = values.isna().to_numpy()
        unsigned = values.to_numpy(dtype=np.uint64, na_value=0)
        integers = np.minimum(unsigned, np.uint64(_INT64.max)).astype(np.int64)
        return integers, missing, np.zeros(n, bool)
    if pd.api.types.is_integer_dtype(dtype):
        missing = values.isna().to_numpy()
        return values.to_numpy(dtype=np.int64, na_value=0), missing, np.zeros(n, bool)
    if pd.api.types.is_float_dtype(dtype):
        return _integers_of_floats(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow" and not values.hasnans:
        try:  # the common case, every cell a plain integer: parsed by Arrow, vectorised
            parsed = pc.cast(pa.array(values.array), pa.int64())
            return parsed.to_numpy(), np.zeros(n, bool), np.zeros(n, bool)
        except pa.ArrowInvalid:
            pass  # a cell with spaces, a decimal point, text, a huge number: parse each value
    return _integers_of_objects(values.to_numpy(dtype=object))


@dataclass(frozen=True)
class _Domain:
    """The schema's features and their allowed values, for checking whole blocks at once."""

    names: list[str]
    allowed: dict[str, list[int]]
    groups: list[tuple[np.ndarray, np.ndarray]]  # (column positions, their allowed values)

    @classmethod
    def of(cls, schema: Schema) -> _Domain:
        key = tuple((name, tuple(values)) for name, values in schema["features"].items())
        return _domain_of(key, schema)

    @classmethod
    def build(cls, schema: Schema) -> _Domain:
        allowed = allowed_values(schema)
        names = feature_columns(schema)
        by_values: dict[tuple[int, ...], list[int]] = {}
        for j, name in enumerate(names):
            by_values.setdefault(tuple(sorted(set(allowed[name]))), []).append(j)
        groups = [
            (np.asarray(columns, dtype=np.intp), np.asarray(values, dtype=np.int64))
            for values, columns in by_values.items()
        ]
        return cls(names, allowed, groups)

    def not_allowed(self, block: np.ndarray) -> np.ndarray:
        """(rows, features) mask of the int64 cells outside their column's allowed values."""
        bad = np.empty(block.shape, dtype=bool)
        for columns, values in self.groups:
            part = block[:, columns]
            ok = np.zeros(part.shape, dtype=bool)
            if len(values) and values[-1] - values[0] == len(values) - 1:  # a range: -1..1
                ok = (part >= values[0]) & (part <= values[-1])
            else:
                for value in values:
                    ok |= part == value
            bad[:, columns] = ~ok
        return bad


_DOMAINS: dict[tuple[Any, ...], _Domain] = {}


def _domain_of(key: tuple[Any, ...], schema: Schema) -> _Domain:
    """The ``_Domain`` of a schema, built once per distinct feature declaration."""
    domain = _DOMAINS.get(key)
    if domain is None:
        domain = _Domain.build(schema)
        if len(_DOMAINS) < 64:
            _DOMAINS[key] = domain
    return domain


def _cell_text(frame: pd.DataFrame, column: str, position: int) -> str:
    value = frame[column].iloc[position]
    return _value_text(value)


def _value_text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _check_block(
    block: np.ndarray,
    domain: _Domain,
    flagged: list[tuple[str, str, np.ndarray]],
    value_of: Callable[[str, int], str],
    source: str,
    row_offset: int,
    invalid: np.ndarray | None = None,
) -> np.ndarray:
    """Raise for the earliest bad cell of ``block`` (flagged, or outside its domain)."""
    not_allowed = domain.not_allowed(block)
    if invalid is not None:
        not_allowed &= ~invalid
    if flagged or not_allowed.any():
        problems = list(flagged)
        for j in np.flatnonzero(not_allowed.any(axis=0)):
            problems.append((domain.names[j], "not_allowed", not_allowed[:, j]))
        _raise_first_problem(len(block), problems, domain.allowed, value_of, source, row_offset)
    return block


def check_feature_matrix(
    matrix: np.ndarray, schema: Schema, source: str = "input", row_offset: int = 0
) -> np.ndarray:
    """Check an integer matrix of the schema's features (columns in schema order).

    Returns it as int64. Raises ``InputValidationError`` like ``check_inference_frame`` for the
    first value outside its column's allowed values, naming the column, row and value.
    """
    domain = _Domain.of(schema)
    block = np.asarray(matrix)
    if block.ndim != 2 or block.shape[1] != len(domain.names) or block.dtype.kind not in "iu":
        raise ValueError(
            f"Expected an integer matrix of {len(domain.names)} feature columns, got "
            f"{block.dtype} of shape {block.shape}."
        )
    if block.dtype.kind == "u":
        block = np.minimum(block, np.uint64(_INT64.max))
    block = block.astype(np.int64, copy=False)

    def value_of(column: str, position: int) -> str:
        return str(matrix[position, domain.names.index(column)])

    return _check_block(block, domain, [], value_of, source, row_offset)


def check_feature_columns(
    columns: Mapping[str, Columnish],
    schema: Schema,
    source: str = "input",
    row_offset: int = 0,
) -> np.ndarray:
    """Check the cells of each feature column (any types: text, numbers, Python objects) and
    return them as an int64 matrix (rows, features in schema order).

    Raises ``InputValidationError`` for the earliest bad cell (missing, not an integer, or not
    an allowed value), naming the column, row and value, with how many rows are affected.
    """
    domain = _Domain.of(schema)
    n = len(columns[domain.names[0]])
    block = np.empty((n, len(domain.names)), np.int64)
    invalid = np.zeros((n, len(domain.names)), bool)
    flagged: list[tuple[str, str, np.ndarray]] = []
    for j, name in enumerate(domain.names):
        integers, missing, not_integer = _integers_of(columns[name])
        block[:, j] = integers
        for problem, mask in (("missing_value", missing), ("not_integer", not_integer)):
            if mask.any():
                flagged.append((name, problem, mask))
                invalid[:, j] |= mask

    def value_of(column: str, position: int) -> str:
        cells = columns[column]
        if isinstance(cells, pd.Series):
            return _value_text(cells.iloc[position])
        return _value_text(cells[position])

    return _check_block(block, domain, flagged, value_of, source, row_offset, invalid)


def _is_plain_integer(dtype: Any) -> bool:
    return pd.api.types.is_signed_integer_dtype(dtype) and not isinstance(
        dtype, pd.api.extensions.ExtensionDtype
    )


def _columns_of(frame: pd.DataFrame) -> dict[Any, pd.Series]:
    """The frame's columns by name, fetched once (label lookups cost in a wide frame)."""
    return dict(frame.items())


def _arrow_text_block(columns: Mapping[Any, pd.Series], features: list[str]) -> np.ndarray | None:
    """The feature columns of Arrow-backed text (as the CSV readers give them) parsed as int64
    in one Arrow cast, or ``None`` when a column is not such text or a cell is not a plain
    integer (the column-by-column check then says which)."""
    chunks: list[pa.Array] = []
    for name in features:
        dtype = columns[name].dtype
        if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
            return None
        arrow = pa.array(columns[name].array)
        chunks.extend(arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow])
    kinds = {chunk.type for chunk in chunks}
    kind = kinds.pop() if len(kinds) == 1 else pa.large_string()
    chunks = [chunk if chunk.type == kind else chunk.cast(kind) for chunk in chunks]
    try:
        parsed = pc.cast(pa.chunked_array(chunks, kind), pa.int64())
    except pa.ArrowInvalid:
        return None
    if parsed.null_count:
        return None
    return parsed.to_numpy().reshape(len(features), -1).T


def check_inference_frame(
    frame: pd.DataFrame,
    schema: Schema,
    source: str = "input",
    row_offset: int = 0,
) -> pd.DataFrame:
    """Check new sites against the schema's features and return them typed for scoring.

    Args:
        frame: The rows to score, one site per row, with the schema's feature columns (any
            dtype: cells are parsed as integers). Extra columns are kept untouched; a target
            column (``Result``), if present, is kept as an extra column and not checked.
        schema: The ``schema`` parameters (conf/base/parameters.yml).
        source: Where the rows come from (a file path, "request"), for messages.
        row_offset: How many data rows of the same source precede ``frame`` (for chunks), so
            reported rows are the 1-based data rows of the file.

    Returns:
        A new frame with the same columns and index, the feature columns as int64.

    Raises:
        InputValidationError: For the first problem found (missing feature column, no rows,
            missing cell, non-integer cell, value outside the allowed set, whatever its size or
            type), naming the column, row and value and how many rows have the same problem.
    """
    features = feature_columns(schema)
    present = [str(c) for c in frame.columns]

    missing_columns = [name for name in features if name not in present]
    if missing_columns:
        first = missing_columns[0]
        lowered = {column.strip().lower(): column for column in present}
        hints = []
        for name in missing_columns[:_SHOWN_ROWS]:
            close = get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.8)
            if close:
                hints.append(f"{lowered[close[0]]!r} -> {name!r}")
        hint = f" Did you mean to rename {', '.join(hints)}?" if hints else ""
        raise InputValidationError(
            f"{source}: missing column {first!r}: {len(missing_columns)} of the "
            f"{len(features)} feature columns the model needs are absent "
            f"({', '.join(missing_columns[:10])}{', ...' if len(missing_columns) > 10 else ''})."
            f"{hint} The header has {len(present)} column(s): "
            f"{', '.join(present[:10])}{', ...' if len(present) > 10 else ''}. Add the missing "
            "columns (names as in the schema in conf/base/parameters.yml) and run again.",
            column=first,
            problem="missing_column",
            source=source,
        )

    if len(frame) == 0:
        raise InputValidationError(
            f"{source}: no data rows to score (the header has {len(present)} column(s) but no "
            "row follows it). Add one row per site below the header and run again.",
            problem="no_rows",
            rows_affected=0,
            source=source,
        )

    if frame.columns.has_duplicates:  # rare: column by column, through label lookups
        block = check_feature_columns(
            {name: frame[name] for name in features}, schema, source, row_offset
        )
        result = frame.copy(deep=False)
        for j, name in enumerate(features):
            result[name] = pd.Series(block[:, j], index=frame.index, dtype="int64")
        return result

    columns = _columns_of(frame)
    text_block = _arrow_text_block(columns, features)
    if text_block is not None or all(_is_plain_integer(columns[n].dtype) for n in features):
        # one block, no per-column parsing: integers as they are, or text parsed by Arrow
        block = text_block
        if block is None:
            block = np.column_stack([columns[n].to_numpy(dtype=np.int64) for n in features])

        def value_of(column: str, position: int) -> str:
            return _value_text(columns[column].iloc[position])

        _check_block(block, _Domain.of(schema), [], value_of, source, row_offset)
    else:
        block = check_feature_columns(
            {name: columns[name] for name in features}, schema, source, row_offset
        )
    for j, name in enumerate(features):
        columns[name] = pd.Series(block[:, j], index=frame.index, name=name, copy=False)
    return pd.DataFrame(columns, index=frame.index, copy=False)


def _raise_first_problem(
    n_rows: int,
    problems: list[tuple[str, str, np.ndarray]],
    allowed: dict[str, list[int]],
    value_of: Callable[[str, int], str],
    source: str,
    row_offset: int,
) -> None:
    """Raise ``InputValidationError`` for the earliest bad row (ties: schema column order)."""
    order = {name: i for i, name in enumerate(allowed)}
    column, problem, mask = min(
        problems, key=lambda item: (int(np.argmax(item[2])), order.get(item[0], 0))
    )
    positions = np.flatnonzero(mask)
    first = int(positions[0])
    row = row_offset + first + 1
    rows = positions + row_offset + 1
    value = value_of(column, first)
    any_bad = np.zeros(n_rows, bool)
    for _, _, other in problems:
        any_bad |= other
    columns_with_problems = sorted({name for name, _, _ in problems})
    allowed_text = ", ".join(str(v) for v in allowed[column])
    what = {
        "missing_value": "is empty (missing value)",
        "not_integer": f"value {value!r} is not an integer",
        "not_allowed": f"value {value!r} is not an allowed value",
    }[problem]
    scope = f"rows {row_offset + 1}-{row_offset + n_rows}"
    raise InputValidationError(
        f"{source}: column {column!r}, row {row}: {what}; allowed values are {allowed_text}. "
        f"{len(positions)} row(s) of {scope} have this problem in {column!r} "
        f"(rows {_rows_text(rows)}); {int(any_bad.sum())} row(s) of {scope} have at least one "
        f"invalid cell, in {len(columns_with_problems)} column(s) "
        f"({', '.join(columns_with_problems[:10])}"
        f"{', ...' if len(columns_with_problems) > 10 else ''}). "
        "Correct or remove these rows and run again.",
        column=column,
        row=row,
        value=value,
        problem=problem,
        rows_affected=len(positions),
        source=source,
    )


# ------------------------------------------------------------------------------ scoring


def _risk_bands(scoring: Mapping[str, Any]) -> tuple[np.ndarray, list[str], list[str]]:
    """Validate the ``risk_levels`` parameter; return band lower bounds, levels, actions."""
    bands = scoring.get("risk_levels")
    if not bands:
        raise ValueError(
            "Parameter scoring.risk_levels is empty: list the risk bands in "
            "conf/base/parameters_inference.yml (level, min_probability, action)."
        )
    try:
        minimums = [float(b["min_probability"]) for b in bands]
        levels = [str(b["level"]) for b in bands]
        actions = [str(b["action"]) for b in bands]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            "Each entry of scoring.risk_levels in conf/base/parameters_inference.yml needs "
            f"'level', 'min_probability' (a number) and 'action'; got {bands!r}."
        ) from exc
    increasing = all(a < b for a, b in zip(minimums, minimums[1:], strict=False))
    if minimums[0] != 0.0 or not increasing or minimums[-1] > 1.0:
        raise ValueError(
            "scoring.risk_levels in conf/base/parameters_inference.yml: the first band must "
            "start at min_probability 0 and the bounds must increase within [0, 1]; got "
            f"{minimums}."
        )
    if len(set(levels)) != len(levels):
        raise ValueError(f"scoring.risk_levels repeats a level name: {levels}.")
    return np.asarray(minimums), levels, actions


def _level_index(scoring: Mapping[str, Any], key: str, levels: list[str], default: int) -> int:
    name = scoring.get(key)
    if name is None:
        return default
    if name not in levels:
        raise ValueError(
            f"Parameter scoring.{key} is {name!r}, which is not one of the risk levels {levels} "
            "(conf/base/parameters_inference.yml)."
        )
    return levels.index(name)


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
        ValueError: If the ``scoring`` parameters are inconsistent.
    """
    if columns is not None and list(columns) != list(model.feature_columns):
        missing = [name for name in model.feature_columns if name not in columns]
        if missing:
            raise InputValidationError(
                f"The model needs feature column(s) {missing}, absent from the input.",
                column=missing[0],
                problem="missing_column",
            )
        positions = [list(columns).index(name) for name in model.feature_columns]
        features = features[:, positions]
    return verdicts_of(model, model.phishing_probability_of_matrix(features), scoring)


def verdicts_of(model: PhishingModel, probability: np.ndarray, scoring: Mapping) -> Verdicts:
    """Verdicts from the model's P(phishing) per row: the one place probabilities become a
    prediction (the model's threshold), a label, a risk level and an action (the bands).

    Raises:
        ValueError: If the ``scoring`` parameters are inconsistent.
    """
    bounds, levels, actions = _risk_bands(scoring)
    labels = scoring.get("labels", {})
    phishing_word = str(labels.get("phishing", "phishing"))
    legitimate_word = str(labels.get("legitimate", "legitimate"))
    phishing_floor = _level_index(scoring, "phishing_min_level", levels, 0)
    legitimate_ceiling = _level_index(scoring, "legitimate_max_level", levels, len(levels) - 1)

    probability = np.clip(np.asarray(probability, dtype=np.float64), 0, 1)
    is_phishing = flags_phishing(probability, model.threshold)  # the rule of PhishingModel.predict
    prediction = np.where(is_phishing, model.phishing_label, model.legitimate_label)
    band = np.searchsorted(bounds, probability, side="right") - 1
    band = np.where(
        is_phishing, np.maximum(band, phishing_floor), np.minimum(band, legitimate_ceiling)
    )
    return Verdicts(
        prediction=prediction.astype(np.int64),
        is_phishing=is_phishing,
        phishing_probability=probability,
        band=band,
        words=(phishing_word, legitimate_word),
        levels=levels,
        actions=actions,
        model_version=str(model.version),
    )


def refuse_verdict_columns(columns: Iterable[Any]) -> None:
    """Raise ``InputValidationError`` if the input has a column that scoring adds."""
    present = {str(column) for column in columns}
    clashes = [name for name in OUTPUT_COLUMNS if name in present]
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
        scoring: The ``scoring`` parameters: ``labels`` (phishing/legitimate -> words),
            ``risk_levels`` (bands of P(phishing) with a level and an action, ascending by
            ``min_probability``), and optionally ``phishing_min_level`` /
            ``legitimate_max_level``, which keep the risk level consistent with the prediction
            when the model's threshold is not at a band boundary.

    Returns:
        A new frame: the columns of ``frame`` then ``prediction`` (1 legitimate, -1 phishing,
        from the model's threshold), ``label``, ``phishing_probability`` in [0, 1],
        ``risk_level``, ``recommended_action`` and ``model_version``; same index as ``frame``.

    Raises:
        InputValidationError: If ``frame`` already has one of the verdict columns or lacks a
            feature column of the model.
        ValueError: If the ``scoring`` parameters are inconsistent.
    """
    refuse_verdict_columns(frame.columns)
    missing = [name for name in model.feature_columns if name not in frame.columns]
    if missing:
        raise InputValidationError(
            f"The model needs feature column(s) {missing}, absent from the input. Check the "
            "rows with check_inference_frame first.",
            column=missing[0],
            problem="missing_column",
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
        _risk_bands(scoring)
        probability = model.phishing_probability(frame[model.feature_columns])
        verdicts = verdicts_of(model, probability, scoring)
    index = frame.index
    added = {
        "prediction": pd.Series(verdicts.prediction, index=index, copy=False),
        "label": _text_column(verdicts.words, verdicts.label_codes(), index),
        "phishing_probability": pd.Series(verdicts.phishing_probability, index=index, copy=False),
        "risk_level": _text_column(verdicts.levels, verdicts.band, index),
        "recommended_action": _text_column(verdicts.actions, verdicts.band, index),
        "model_version": pd.Series(verdicts.model_version, index=index, dtype=str),
    }
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
