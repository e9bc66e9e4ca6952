"""The one validator: every input of the project is checked here, against the one schema.

The schema is declared once (``schema`` in conf/base/parameters.yml, read through
``network_security.schema``); this module turns it into the checks every entry point runs:

- **Headers** (``normalise_header``): the CSV readers of ingestion and inference (pandas and Dask
  engines) and the service's CSV upload all pass the header through it. Column names are
  stripped of surrounding whitespace and of a UTF-8 byte-order mark, then a nameless or repeated
  column is refused naming it. (Strip and accept: ``" SSLfinal_State "`` is ``SSLfinal_State``.)
- **Columns** (``require_columns``): a missing required column is refused naming it, with a hint
  when a present column is a near miss.
- **Cells** (``parse_integer_cells``): one rule for what a cell means, whatever its type. A cell
  is *missing* when it is null or its text is one of ``MISSING_TEXT`` (``""``, ``NA``,
  ``null``, ...; any case, after stripping); it is an *integer* when it is an int, a whole float,
  or text spelling a whole number (``"1"``, ``" -1 "``, ``"1.0"``); anything else (``"abc"``,
  ``"1.5"``, ``True``) is *not an integer*.
- **Allowed values** (``Domain``): each column's allowed values, checked over whole blocks at
  once.

The fast vectorised check of inference and the service (``check_inference_frame``, features
only: the target is not expected; ``check_feature_matrix``, ``check_feature_columns``),
ingestion's typing (``type_cells``: a missing cell lands as missing for validation to
quarantine, a cell that is not an integer stops the run) and the validation pipeline's pandera
schema (``record_schema``: the features and the target, lazily, every failure reported) are
built from these same rules, so the same input gets the same outcome everywhere.

Every problem is an ``InputValidationError`` whose message names the source (file or request),
the row, the column and the value, and says what to do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from kedro.io import DatasetError

from network_security.errors import ExpectedError
from network_security.schema import (
    Schema,
    allowed_values,
    feature_columns,
    record_key_column,
    target_column,
    target_values,
)

if TYPE_CHECKING:  # pandera is imported only when the validation pipeline builds its schema
    import pandera.pandas as pandera

MISSING_TEXT = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>"})
"""Cell texts read as a missing value (compared case-insensitively, after stripping)."""

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A decimal number as a cell may spell it (no ``0x1``, ``1_000``, ``inf``). Each character
has one place in the pattern (the fraction needs its point), so a match never backtracks."""

MAX_NUMBER_CHARACTERS = 32
"""The longest cell text (once stripped) the cell rule reads as a number. Every allowed value
is spelled in a few characters (``-1``, ``1.0``); a longer cell is *not an integer*, refused
before any parsing, so a long cell costs no more than reading it."""

_SHOWN_ROWS = 5
_INT64 = np.iinfo(np.int64)


class InputValidationError(ValueError, DatasetError, ExpectedError):
    """An input that cannot be ingested or scored (a file, a request, a frame): the one error
    type of the project's input checks, naming the source, the problem, the column, the row and
    the value, and saying what to do.

    It is a ``ValueError``. It is also a Kedro ``DatasetError``, so that when a lazily read chunk
    fails while the predictions are written, Kedro's dataset wrapper passes it on without burying
    the message under a dataset description; the catalog then re-raises it as a ``DatasetError``
    prefixed with the dataset name, with this error as ``__cause__``.

    Attributes:
        column: The offending column, or ``None`` for a file-level problem.
        row: The 1-based data row as in the file (header excluded), or ``None``.
        value: The offending cell text, or ``None``.
        problem: A short code: ``missing_column``, ``repeated_column``, ``nameless_column``,
            ``no_rows``, ``missing_value``, ``not_integer``, ``not_allowed``, ``empty_file``,
            ``not_text``, ``malformed``, ``reserved_column``, ``extra_column``, ``changed``,
            ``too_many_columns``.
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


# ------------------------------------------------------------------------------ checks


def _not_integer_text(value: str) -> str:
    """Why a cell is not an integer, a long cell shown by its start and its length."""
    if len(stripped := value.strip()) <= MAX_NUMBER_CHARACTERS:
        return f"value {value!r} is not an integer"
    return (
        f"value {stripped[:MAX_NUMBER_CHARACTERS]!r}... ({len(stripped)} characters) is not an "
        f"integer (a number is at most {MAX_NUMBER_CHARACTERS} characters long)"
    )


def _rows_text(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:_SHOWN_ROWS])
    return shown + (", ..." if len(rows) > _SHOWN_ROWS else "")


def _parse_integer_text(text: str) -> int | None:
    """The integer a cell text spells (``"1"``, ``" -1 "``, ``"1.0"``), or ``None``."""
    stripped = text.strip()
    if len(stripped) > MAX_NUMBER_CHARACTERS or not _NUMBER.fullmatch(stripped):
        return None
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


def parse_integer_cells(values: Columnish) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one cell rule: one column's cells as int64, whatever their type.

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
        # the common case, every cell a plain integer: parsed by Arrow, vectorised
        parsed = _arrow_integers(pa.array(values.array))
        if parsed is not None:
            return parsed.to_numpy(), np.zeros(n, bool), np.zeros(n, bool)
        # a cell with spaces, a decimal point, text, a huge number: parse each value
    return _integers_of_objects(values.to_numpy(dtype=object))


@dataclass(frozen=True)
class Domain:
    """Columns and their allowed values, for checking whole blocks at once: the schema's
    features (``Domain.of``, what inference scores) or a labelled record's features and target
    (``Domain.of_records``, what validation checks)."""

    names: list[str]
    allowed: dict[str, list[int]]
    groups: list[tuple[np.ndarray, np.ndarray]]  # (column positions, their allowed values)

    @classmethod
    def of(cls, schema: Schema) -> Domain:
        """The features-only domain (new sites to score carry no target)."""
        key = tuple((name, tuple(values)) for name, values in schema["features"].items())
        return _domain_of(key, lambda: allowed_values(schema))

    @classmethod
    def of_records(cls, schema: Schema) -> Domain:
        """The domain of a labelled record: the features, then the target."""
        key = (
            *((name, tuple(values)) for name, values in schema["features"].items()),
            (target_column(schema), tuple(target_values(schema))),
        )
        return _domain_of(key, lambda: record_values(schema))

    @classmethod
    def build(cls, allowed: dict[str, list[int]]) -> Domain:
        names = list(allowed)
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

    def allows(self, column: str, integers: np.ndarray) -> np.ndarray:
        """Mask of the int64 values of one column that are among its allowed values."""
        return np.isin(integers, np.asarray(self.allowed[column], dtype=np.int64))


_DOMAINS: dict[tuple[Any, ...], Domain] = {}


def record_values(schema: Schema) -> dict[str, list[int]]:
    """Allowed values per column of a labelled record: each feature's, then the target's."""
    return {**allowed_values(schema), target_column(schema): target_values(schema)}


def _domain_of(key: tuple[Any, ...], allowed: Callable[[], dict[str, list[int]]]) -> Domain:
    """The ``Domain`` of a declaration, built once per distinct one."""
    domain = _DOMAINS.get(key)
    if domain is None:
        domain = Domain.build(allowed())
        if len(_DOMAINS) < 64:
            _DOMAINS[key] = domain
    return domain


def _value_text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _check_block(
    block: np.ndarray,
    domain: Domain,
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
    domain = Domain.of(schema)
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
    domain = Domain.of(schema)
    block, missing, not_integer = _parse_columns(columns, domain.names)
    flagged = _flagged(domain.names, missing, "missing_value") + _flagged(
        domain.names, not_integer, "not_integer"
    )
    return _check_block(
        block, domain, flagged, _value_getter(columns), source, row_offset, missing | not_integer
    )


def _parse_columns(
    columns: Mapping[Any, Columnish], names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``parse_integer_cells`` over several columns: (int64 block, missing, not-integer masks),
    each of shape (rows, len(names))."""
    n = len(columns[names[0]]) if names else 0
    block = np.empty((n, len(names)), np.int64)
    missing = np.zeros((n, len(names)), bool)
    not_integer = np.zeros((n, len(names)), bool)
    for j, name in enumerate(names):
        block[:, j], missing[:, j], not_integer[:, j] = parse_integer_cells(columns[name])
    return block, missing, not_integer


def _flagged(names: list[str], mask: np.ndarray, problem: str) -> list[tuple[str, str, np.ndarray]]:
    return [(names[j], problem, mask[:, j]) for j in np.flatnonzero(mask.any(axis=0))]


def _value_getter(columns: Mapping[Any, Columnish]) -> Callable[[str, int], str]:
    def value_of(column: str, position: int) -> str:
        cells = columns[column]
        if isinstance(cells, pd.Series):
            return _value_text(cells.iloc[position])
        return _value_text(cells[position])

    return value_of


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
    parsed = _arrow_integers(pa.chunked_array(chunks, kind))
    if parsed is None or parsed.null_count:
        return None
    return parsed.to_numpy().reshape(len(features), -1).T


def _arrow_integers(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """Arrow text cast to int64 when every cell is a plain decimal integer, else ``None``.

    Arrow's cast also reads hexadecimal (``0x1``) and any number of leading zeros, which the
    cell rule refuses: a cell of three bytes or more containing an ``x``, or a cell longer than
    ``MAX_NUMBER_CHARACTERS``, sends the column to the cell-by-cell parse.
    """
    try:
        parsed = pc.cast(text, pa.int64())
    except pa.ArrowInvalid:
        return None
    longest = (pc.max(pc.binary_length(text)).as_py() or 0) if len(text) else 0
    if longest > MAX_NUMBER_CHARACTERS:
        return None
    if longest > 2:
        for letter in ("x", "X"):
            if pc.any(pc.match_substring(text, letter)).as_py():
                return None
    return parsed


def normalise_header(names: Iterable[Any], source: str) -> list[str]:
    """The one header rule: column names stripped of surrounding whitespace (and of a UTF-8
    byte-order mark before the first), every name present once.

    Raises:
        InputValidationError: For a column without a name (``problem="nameless_column"``) or a
            name that appears twice once stripped (``problem="repeated_column"``), naming it.
    """
    stripped = [str(name).strip() for name in names]
    if stripped:
        stripped[0] = stripped[0].lstrip("\ufeff").strip()
    seen: set[str] = set()
    for position, name in enumerate(stripped, start=1):
        if not name:
            raise InputValidationError(
                f"{source}: column {position} of the header has no name. Name every column "
                "(or remove the unnamed one, such as an index written with the data) and run "
                "again.",
                row=0,
                problem="nameless_column",
                source=source,
            )
        if name in seen:
            raise InputValidationError(
                f"{source}: column {name!r} appears more than once in the header; keep one "
                "column per name and run again.",
                column=name,
                row=0,
                problem="repeated_column",
                source=source,
            )
        seen.add(name)
    return stripped


def require_columns(present: Iterable[Any], required: list[str], source: str, kind: str) -> None:
    """Refuse an input that lacks a required column, naming the first one missing and
    suggesting a rename when a present column is a near miss.

    Args:
        present: The input's column names.
        required: The names it must have, in schema order.
        source: The file or request, for the message.
        kind: What they are, for the message (``"feature columns the model needs"``).
    """
    names = [str(column) for column in present]
    missing = [name for name in required if name not in set(names)]
    if not missing:
        return
    if len(set(names)) != len(names):  # a frame passed as it is (no reader normalised it)
        normalise_header(names, source)
    first = missing[0]
    lowered = {column.strip().lower(): column for column in names}
    hints = []
    for name in missing[:_SHOWN_ROWS]:
        close = get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.8)
        if close:
            hints.append(f"{lowered[close[0]]!r} -> {name!r}")
    hint = f" Did you mean to rename {', '.join(hints)}?" if hints else ""
    raise InputValidationError(
        f"{source}: missing column {first!r}: {len(missing)} of the {len(required)} {kind} "
        f"are absent ({', '.join(missing[:10])}"
        f"{', ...' if len(missing) > 10 else ''}).{hint} The header has {len(names)} "
        f"column(s): {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}. Add the "
        "missing columns (names as in the schema in conf/base/parameters.yml) and run again.",
        column=first,
        problem="missing_column",
        source=source,
    )


def check_inference_frame(
    frame: pd.DataFrame,
    schema: Schema,
    source: str = "input",
    row_offset: int = 0,
) -> pd.DataFrame:
    """The features-only check: new sites against the schema's features, typed for scoring.

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
        InputValidationError: For the first problem found (missing or repeated feature column,
            no rows, missing cell, non-integer cell, value outside the allowed set, whatever
            its size or type), naming the column, row and value and how many rows have the
            same problem.
    """
    features = feature_columns(schema)
    if frame.columns.has_duplicates:  # a frame passed as it is: the header rule still holds
        normalise_header(frame.columns, source)
    require_columns(frame.columns, features, source, "feature columns the model needs")
    if len(frame) == 0:
        raise InputValidationError(
            f"{source}: no data rows to score (the header has {len(frame.columns)} column(s) "
            "but no row follows it). Add one row per site below the header and run again.",
            problem="no_rows",
            rows_affected=0,
            source=source,
        )

    columns = _columns_of(frame)
    text_block = _arrow_text_block(columns, features)
    if text_block is not None or all(_is_plain_integer(columns[n].dtype) for n in features):
        # one block, no per-column parsing: integers as they are, or text parsed by Arrow
        block = text_block
        if block is None:
            block = np.column_stack([columns[n].to_numpy(dtype=np.int64) for n in features])

        def value_of(column: str, position: int) -> str:
            return _value_text(columns[column].iloc[position])

        _check_block(block, Domain.of(schema), [], value_of, source, row_offset)
    else:
        block = check_feature_columns(
            {name: columns[name] for name in features}, schema, source, row_offset
        )
    for j, name in enumerate(features):
        columns[name] = pd.Series(block[:, j], index=frame.index, name=name, copy=False)
    return pd.DataFrame(columns, index=frame.index, copy=False)


def type_cells(
    frame: pd.DataFrame, columns: list[str], source: str, row_offset: int = 0
) -> pd.DataFrame:
    """Ingestion's typing: ``columns`` of ``frame`` parsed by the one cell rule, in that order.

    A missing cell (empty, ``NA``, ``null``, ...) becomes a missing value (the columns are then
    ``Int64``, else ``int64``): ingestion stores it and validation quarantines the row. Allowed
    values are validation's job, not this function's.

    Raises:
        InputValidationError: For the first cell that is not an integer (``abc``, ``1.5``),
            naming the file, row, column and value: nothing of the file is stored.
    """
    data = _columns_of(frame)
    block = _arrow_text_block(data, columns)
    if block is not None:  # every cell a plain integer: one Arrow cast
        return pd.DataFrame(block, columns=columns)
    block, missing, not_integer = _parse_columns(data, columns)
    if not_integer.any():
        allowed = {name: [] for name in columns}
        _raise_first_problem(
            len(frame),
            _flagged(columns, not_integer, "not_integer"),
            allowed,
            _value_getter(data),
            source,
            row_offset,
            "Correct or remove these rows and run again; nothing of this file was stored.",
        )
    typed = pd.DataFrame(block, columns=columns)
    if missing.any():
        typed = typed.astype("Int64")
        typed = typed.mask(pd.DataFrame(missing, columns=columns))
    return typed


def record_schema(schema: Schema, duplicate_keys: str = "exclude_first") -> pandera.DataFrameSchema:
    """The pandera schema of a labelled record (the validation pipeline's, run lazily), built
    from the same cell rule and allowed values as the fast check of inference and the service.

    Each feature and the target are required and non-nullable, with two checks:
    ``integer_type`` (the cell rule: an int, a whole float or text spelling one; a missing-value
    text such as ``"NA"`` fails it too) and ``allowed_values`` (``Domain.of_records``). The
    record key is required, non-null and unique.

    Args:
        schema: The project schema.
        duplicate_keys: Which rows with a repeated record key fail (pandera's
            ``report_duplicates``): ``exclude_first`` keeps the first, ``all`` rejects all.
    """
    import pandera.pandas as pandera

    domain = Domain.of_records(schema)

    def is_integer(series: pd.Series) -> pd.Series:
        _, missing, not_integer = parse_integer_cells(series)
        return pd.Series(~(missing | not_integer), index=series.index)

    def allowed_check(column: str) -> pandera.Check:
        def is_allowed(series: pd.Series) -> pd.Series:
            integers, missing, not_integer = parse_integer_cells(series)
            ok = ~(missing | not_integer) & domain.allows(column, integers)
            return pd.Series(ok, index=series.index)

        return pandera.Check(is_allowed, name="allowed_values")

    columns: dict[str, pandera.Column] = {
        record_key_column(schema): pandera.Column(
            nullable=False, required=True, unique=True, report_duplicates=duplicate_keys
        )
    }
    for name in domain.names:
        columns[name] = pandera.Column(
            nullable=False,
            required=True,
            checks=[pandera.Check(is_integer, name="integer_type"), allowed_check(name)],
        )
    return pandera.DataFrameSchema(columns, strict=False, name="phishing_records")


def _raise_first_problem(
    n_rows: int,
    problems: list[tuple[str, str, np.ndarray]],
    allowed: dict[str, list[int]],
    value_of: Callable[[str, int], str],
    source: str,
    row_offset: int,
    todo: str = "Correct or remove these rows and run again.",
) -> None:
    """Raise ``InputValidationError`` for the earliest bad row (ties: schema column order):
    the one message format, naming the source, column, row and value, then what to do."""
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
    allowed_text = f"; allowed values are {allowed_text}" if allowed_text else ""
    what = {
        "missing_value": f"value {value!r} is a missing value"
        if value.strip()
        else "is empty (missing value)",
        "not_integer": _not_integer_text(value),
        "not_allowed": f"value {value!r} is not an allowed value",
    }[problem]
    scope = f"rows {row_offset + 1}-{row_offset + n_rows}"
    raise InputValidationError(
        f"{source}: column {column!r}, row {row}: {what}{allowed_text}. "
        f"{len(positions)} row(s) of {scope} have this problem in {column!r} "
        f"(rows {_rows_text(rows)}); {int(any_bad.sum())} row(s) of {scope} have at least one "
        f"invalid cell, in {len(columns_with_problems)} column(s) "
        f"({', '.join(columns_with_problems[:10])}"
        f"{', ...' if len(columns_with_problems) > 10 else ''}). {todo}",
        column=column,
        row=row,
        value=value,
        problem=problem,
        rows_affected=len(positions),
        source=source,
    )
