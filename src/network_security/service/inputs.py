"""Turning request bodies (a CSV upload, JSON records) into frames for the schema checks.

Both paths produce cells for the one validator (``network_security.validator``), which judges
uploads and records alike: a CSV as a frame of text cells, exactly as the inference pipeline
reads a file; JSON records as columns of the values sent (an integer matrix straight away when
every feature value is a plain integer, the usual case), once the values JSON can hold but a
feature cannot (booleans, null, objects, fractions) are refused here with the record and field
named. A JSON body's record limit is enforced before any object is built.
Everything that can be wrong with the bytes themselves (binary content, an encoding other than
UTF-8, a malformed CSV, too many rows or columns, a JSON value that is not a number) is caught
here and reported as a ``RequestProblem`` that names the row and column; nothing is written to
disk.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pandas as pd

from network_security.validator import InputValidationError, normalise_header


class RequestProblem(Exception):
    """A request the service cannot serve, with the HTTP status and a message saying why."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        column: str | None = None,
        row: int | None = None,
        value: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.column = column
        self.row = row
        self.value = value
        self.headers = headers

    def details(self) -> dict[str, Any]:
        """The located fields (column, row, value) that are known."""
        found = {"column": self.column, "row": self.row, "value": self.value}
        return {key: value for key, value in found.items() if value is not None}


def _text_of(data: bytes, source: str) -> str:
    """The upload as text: UTF-8 (a byte-order mark is allowed), no NUL bytes."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise RequestProblem(
            400,
            f"{source} is not a text CSV file (it contains binary data: a NUL byte at position "
            f"{nul}): upload a comma-separated UTF-8 text file with a header row.",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RequestProblem(
            400,
            f"{source} is not UTF-8 text (undecodable byte at position {error.start}): upload a "
            "comma-separated UTF-8 text file with a header row.",
        ) from None


def _check_header(header: list[str], source: str, max_columns: int) -> list[str]:
    """Refuse too many columns; then the validator's one header rule (names stripped, no
    nameless or repeated column), its refusals as 422s naming the column."""
    if len(header) > max_columns:
        raise RequestProblem(
            413,
            f"{source} has {len(header)} columns; the service accepts at most {max_columns} "
            "(NETWORK_SECURITY_MAX_COLUMNS).",
        )
    try:
        return normalise_header(header, source)
    except InputValidationError as error:
        raise RequestProblem(422, str(error), column=error.column, row=error.row) from None


def read_csv_upload(data: bytes, *, source: str, max_rows: int, max_columns: int) -> pd.DataFrame:
    """Parse an uploaded CSV into a frame of text cells (one row per non-blank data line).

    Raises ``RequestProblem``: 400 for binary or non-UTF-8 content or a malformed CSV, 413 for
    too many rows or columns, 422 for an empty file, a bad header or a row of the wrong width.
    """
    text = _text_of(data, source)
    if not text.strip():
        raise RequestProblem(
            422,
            f"{source} is empty: expected a header row naming the feature columns, then one "
            "row per site.",
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    header: list[str] | None = None
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if header is None:
                header = _check_header(fields, source, max_columns)
                continue
            if len(rows) == max_rows:
                raise RequestProblem(
                    413,
                    f"{source} has more than {max_rows} data rows, the most the service scores "
                    "per request (NETWORK_SECURITY_MAX_ROWS); split the file, or score it with "
                    "`kedro run --pipeline inference`.",
                )
            if len(fields) != len(header):
                row = len(rows) + 1
                raise RequestProblem(
                    422,
                    f"{source}: data row {row} (line {reader.line_num}) has {len(fields)} "
                    f"fields, the header has {len(header)}; every row needs one value per column.",
                    row=row,
                )
            rows.append(fields)
    except csv.Error as error:
        raise RequestProblem(
            400, f"{source} is not a valid CSV file (line {reader.line_num}): {error}."
        ) from None
    if header is None:  # only blank lines
        raise RequestProblem(422, f"{source} is empty: expected a header row and data rows.")
    if not rows:
        raise RequestProblem(
            422, f"{source} has a header but no data rows: add one row per site to score."
        )
    columns = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            name: pd.array(list(cells), dtype="str")
            for name, cells in zip(header, columns, strict=True)
        },
        copy=False,
    )


# ------------------------------------------------------------------------------ JSON records

_KINDS = {bool: "a boolean", type(None): "null", dict: "an object", list: "a list"}
_SCAN_WINDOW = 64 * 1024


def _shown(value: Any) -> Any:
    """A value fit for an error body: scalars as they are (text made encodable), else text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value)[:100]
    if isinstance(value, str):
        return value[:200].encode("utf-8", "backslashreplace").decode("utf-8")
    return value if isinstance(value, bool | int | float) else repr(value)[:200]


def _bad_value(column: str, row: int, value: Any, expected: str) -> RequestProblem:
    kind = _KINDS.get(type(value))
    described = kind if kind is not None else repr(value)
    return RequestProblem(
        422,
        f"records: record {row}, field '{column}' is {described}; expected {expected}.",
        column=column,
        row=row,
        value=_shown(value),
    )


def _containers_outside_strings(body: bytes | bytearray, limit: int) -> int:
    """How many objects and arrays (``{``, ``[`` outside JSON strings) the body holds, counted
    up to ``limit + 1``: a scan of the bytes in windows, with bounded memory, that builds
    nothing (so a body of millions of ``{}`` costs no more than its bytes)."""
    count = 0
    in_string = False
    backslashes = 0  # length of the run of backslashes that ends the previous window
    for start in range(0, len(body), _SCAN_WINDOW):
        window = np.frombuffer(body, np.uint8, min(_SCAN_WINDOW, len(body) - start), start)
        positions = np.arange(len(window))
        is_backslash = window == 0x5C
        # the run of backslashes before each byte decides whether a quote there is escaped
        last_other = np.maximum.accumulate(np.where(is_backslash, -1, positions))
        run_before = np.empty(len(window), np.int64)
        run_before[0] = backslashes
        previous_run = positions[:-1] - last_other[:-1]
        run_before[1:] = np.where(last_other[:-1] < 0, previous_run + backslashes, previous_run)
        quotes = (window == 0x22) & (run_before % 2 == 0)
        # inside a string after an odd number of unescaped quotes
        toggles = np.cumsum(quotes) - quotes + int(in_string)
        outside = toggles % 2 == 0
        count += int(np.count_nonzero(((window == 0x7B) | (window == 0x5B)) & outside))
        if count > limit:
            return count
        in_string = bool((int(np.count_nonzero(quotes)) + int(in_string)) % 2)
        tail = len(window) - 1 - int(last_other[-1])
        backslashes = tail + backslashes if last_other[-1] < 0 else tail
    return count


def _loads(body: bytes | bytearray, exact: bool = False) -> Any:
    """The JSON value of the body (orjson; the standard library's parser for what orjson
    refuses but JSON allows, such as 1e999, so that such values are judged like any other, and
    when ``exact``: orjson reads integers beyond 64 bits as floats)."""
    try:
        if exact:
            return json.loads(body)
        return orjson.loads(body)
    except (orjson.JSONDecodeError, ValueError, RecursionError) as error:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise RequestProblem(400, f"The request body is not valid JSON: {error}.") from None


def read_records(body: bytes | bytearray, *, max_rows: int, exact: bool = False) -> list[Any]:
    """The ``records`` of a JSON body ``{"records": [...]}``, with the record limit enforced
    before any object is built.

    A body of ``max_rows`` records holds at most ``max_rows + 2`` objects and arrays (the body,
    the list, one object per record); one with more is refused (413) from a scan of its bytes,
    so that a small body of many empty records cannot make the process allocate many times its
    size. ``exact`` reads integers of any size exactly (slower; see ``RecordsTable.lossy``).
    Raises ``RequestProblem``: 400 for invalid JSON, 413 past the record limit, 422 for a body
    of another shape.
    """
    limit = max_rows + 2
    if body.count(b"{") + body.count(b"[") > limit:  # an upper bound: braces in strings count
        found = _containers_outside_strings(body, limit)
        if found > limit:
            raise RequestProblem(
                413,
                f"records holds more than {max_rows} records (or values that are objects or "
                f"lists); the service scores at most {max_rows} per request "
                "(NETWORK_SECURITY_MAX_ROWS), each a flat object.",
            )
    data = _loads(body, exact)
    if not isinstance(data, dict) or "records" not in data or len(data) != 1:
        extra = sorted(data)[:5] if isinstance(data, dict) else None
        found = f"an object with the keys {extra}" if extra is not None else type(data).__name__
        raise RequestProblem(
            422,
            'The JSON body must be {"records": [{...}, ...]} with one object per site and no '
            f"other key; got {found}.",
        )
    records = data["records"]
    if not isinstance(records, list):
        raise RequestProblem(
            422, 'records must be a list of objects, one per site: {"records": [{...}, ...]}.'
        )
    return records


@dataclass
class RecordsTable:
    """JSON records checked for shape, ready for the schema check.

    Attributes:
        records: The records as parsed (each a dict; extra values JSON cannot carry back exactly,
            non-finite numbers or integers beyond 64 bits, replaced by their text).
        columns: Every field, in first-seen order.
        features: When every feature value is a plain integer within int64 (the usual case),
            the features as an int64 matrix in ``required_columns`` order; else ``None``.
        feature_cells: When ``features`` is ``None``, each feature column's values for the
            schema check (whole floats as integers; text as sent).
        lossy: Whether a number may have lost digits in parsing (a whole number of 2**63 or
            more read as a float): read the body again with ``read_records(exact=True)`` to
            report or echo it exactly.
    """

    records: list[dict[str, Any]]
    columns: list[str]
    features: np.ndarray | None
    feature_cells: dict[str, list[Any]] | None
    lossy: bool = False

    def cells(self) -> dict[str, list[Any]]:
        """Each field's values, one per record (``None`` where a record lacks the field)."""
        cells = {column: [record.get(column) for record in self.records] for column in self.columns}
        return {**cells, **(self.feature_cells or {})}


def _feature_cells(values: list[Any], column: str) -> list[Any]:
    """A feature column's JSON values: integers pass (judged by the schema check afterwards);
    whole floats (``1.0``, the same JSON number) become ints; anything else, text included, is
    refused, as the documented request schema says (JSON carries numbers as numbers)."""
    if set(map(type, values)) <= {int}:
        return values
    cells = []
    for row, value in enumerate(values, start=1):
        if type(value) is int:
            cells.append(value)
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            cells.append(int(value))
        else:
            raise _bad_value(
                column, row, value, "a whole number such as -1, 0 or 1 (a JSON number, not text)"
            )
    return cells


def _may_be_lossy(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and abs(value) >= 2**63


def _check_extra_values(records: list[dict[str, Any]], column: str) -> bool:
    """Another field's JSON values (an id, a URL): any single value, returned as sent (a number
    JSON cannot carry back exactly, non-finite or beyond 64 bits, as its text). Returns whether
    a value may have lost digits in parsing."""
    kinds = {type(record.get(column)) for record in records}
    if kinds <= {str, type(None), int}:
        return False
    lossy = False
    for row, record in enumerate(records, start=1):
        value = record.get(column)
        if isinstance(value, dict | list):
            raise _bad_value(column, row, value, "a single value (text or number)")
        if (isinstance(value, float) and not math.isfinite(value)) or (
            type(value) is int and not -(2**63) <= value < 2**64
        ):
            record[column] = str(value)
        lossy = lossy or _may_be_lossy(value)
    return lossy


def _int_matrix(rows: list[tuple[Any, ...]], width: int) -> np.ndarray | None:
    """The rows as an int64 matrix when every value is a plain ``int`` within int64."""
    flat = list(chain.from_iterable(rows))
    if set(map(type, flat)) != {int}:
        return None
    try:
        return np.fromiter(flat, dtype=np.int64, count=len(flat)).reshape(len(rows), width)
    except OverflowError:  # beyond int64: checked value by value (and refused)
        return None


def records_table(
    records: list[Any],
    *,
    required_columns: list[str],
    max_rows: int,
    max_columns: int,
) -> RecordsTable:
    """The JSON records as a ``RecordsTable``, fields in first-seen order, for the schema check.

    Each record must be an object with every column of ``required_columns`` (a 422 names the
    record and field); their values must be whole numbers (or text, judged by the schema check).
    Other fields (an id, a URL) are kept as they are and come back with the predictions.
    """
    if not records:
        raise RequestProblem(422, "records is empty: send at least one record to score.")
    if len(records) > max_rows:
        raise RequestProblem(
            413,
            f"records holds {len(records)} records; the service scores at most {max_rows} per "
            "request (NETWORK_SECURITY_MAX_ROWS).",
        )
    for row, record in enumerate(records, start=1):
        if type(record) is not dict:
            kind = _KINDS.get(type(record), f"a {type(record).__name__}")
            raise RequestProblem(
                422,
                f"records: record {row} is {kind}, not an object: send one object per site "
                "with the feature fields.",
                row=row,
            )
    widest = max(map(len, records))
    if widest > max_columns:
        row = next(i for i, record in enumerate(records, start=1) if len(record) == widest)
        raise RequestProblem(
            413,
            f"records: record {row} has {widest} fields; the service accepts at most "
            f"{max_columns} (NETWORK_SECURITY_MAX_COLUMNS).",
            row=row,
        )
    required = list(required_columns)
    getter = itemgetter(*required)
    try:
        rows = [getter(record) for record in records]
    except KeyError:
        for row, record in enumerate(records, start=1):
            for column in required:
                if column not in record:
                    raise RequestProblem(
                        422,
                        f"records: record {row} has no field '{column}'; every record needs "
                        f"all {len(required)} feature fields.",
                        column=column,
                        row=row,
                    ) from None
        raise
    if len(required) == 1:
        rows = [(value,) for value in rows]
    columns: dict[str, None] = dict.fromkeys(records[0])
    if widest > len(required):
        for record in records:
            if len(record) > len(required):
                columns.update(dict.fromkeys(record))
                if len(columns) > max_columns:
                    raise RequestProblem(
                        413,
                        f"records use more than {max_columns} distinct fields, the most the "
                        "service accepts (NETWORK_SECURITY_MAX_COLUMNS).",
                    )
    order = list(dict.fromkeys([*columns, *required]))
    features = _int_matrix(rows, len(required))
    feature_cells = None
    lossy = False
    if features is None:
        feature_cells = {}
        for j, column in enumerate(required):
            values = [row[j] for row in rows]
            lossy = lossy or any(_may_be_lossy(value) for value in values)
            feature_cells[column] = _feature_cells(values, column)
    positions = set(required)
    for column in order:
        if column not in positions:
            lossy = _check_extra_values(records, column) or lossy
    return RecordsTable(records, order, features, feature_cells, lossy)
