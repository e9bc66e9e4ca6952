"""Turning request bodies (a CSV upload, JSON records) into frames for the schema checks.

Both paths produce a frame for the one schema check (``scoring.check_inference_frame``), which
judges uploads and records alike: a CSV as text cells, exactly as the inference pipeline reads
a file; JSON records as sent, once the values JSON can hold but a feature cannot (text,
booleans, null, objects, fractions) are refused here with the record and field named.
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
from typing import Any

import pandas as pd


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
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.column = column
        self.row = row
        self.value = value

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
    """Strip the column names; refuse too many, nameless or repeated columns."""
    if len(header) > max_columns:
        raise RequestProblem(
            413,
            f"{source} has {len(header)} columns; the service accepts at most {max_columns} "
            "(NETWORK_SECURITY_MAX_COLUMNS).",
        )
    names = [name.strip() for name in header]
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if not name:
            raise RequestProblem(
                422, f"{source}: column {position} of the header has no name.", row=0
            )
        if name in seen:
            raise RequestProblem(
                422,
                f"{source}: column '{name}' appears more than once in the header; "
                "keep one column per name.",
                column=name,
            )
        seen.add(name)
    return names


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
    return pd.DataFrame(rows, columns=header, dtype=str)


_KINDS = {bool: "a boolean", type(None): "null", dict: "an object", list: "a list"}


def _bad_value(column: str, row: int, value: Any, expected: str) -> RequestProblem:
    kind = _KINDS.get(type(value))
    described = kind if kind is not None else repr(value)
    shown = value if isinstance(value, bool | int | float | str) else None
    if isinstance(value, float) and not math.isfinite(value):
        shown = str(value)
    if isinstance(value, dict | list):
        shown = json.dumps(value)[:100]
    return RequestProblem(
        422,
        f"records: record {row}, field '{column}' is {described}; expected {expected}.",
        column=column,
        row=row,
        value=shown,
    )


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


def _extra_cells(values: list[Any], column: str) -> list[Any]:
    """Another field's JSON values (an id, a URL): any single value, returned as sent."""
    cells = []
    for row, value in enumerate(values, start=1):
        if isinstance(value, dict | list):
            raise _bad_value(column, row, value, "a single value (text or number)")
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        cells.append(value)
    return cells


def records_frame(
    records: list[dict[str, Any]],
    *,
    required_columns: list[str],
    max_rows: int,
    max_columns: int,
) -> pd.DataFrame:
    """The JSON records as a frame, columns in first-seen order, for the schema check.

    Each record needs every column of ``required_columns`` (a 422 names the record and field);
    their values must be whole numbers (or text, judged by the schema check). Other fields (an
    id, a URL) are kept as they are and come back with the predictions.
    """
    if not records:
        raise RequestProblem(422, "records is empty: send at least one record to score.")
    if len(records) > max_rows:
        raise RequestProblem(
            413,
            f"records holds {len(records)} records; the service scores at most {max_rows} per "
            "request (NETWORK_SECURITY_MAX_ROWS).",
        )
    columns: dict[str, None] = {}
    for row, record in enumerate(records, start=1):
        if len(record) > max_columns:
            raise RequestProblem(
                413,
                f"records: record {row} has {len(record)} fields; the service accepts at most "
                f"{max_columns} (NETWORK_SECURITY_MAX_COLUMNS).",
                row=row,
            )
        for column in required_columns:
            if column not in record:
                raise RequestProblem(
                    422,
                    f"records: record {row} has no field '{column}'; every record needs all "
                    f"{len(required_columns)} feature fields.",
                    column=column,
                    row=row,
                )
        if len(record) > len(required_columns):
            columns.update(dict.fromkeys(record))
            if len(columns) > max_columns:
                raise RequestProblem(
                    413,
                    f"records use more than {max_columns} distinct fields, the most the service "
                    "accepts (NETWORK_SECURITY_MAX_COLUMNS).",
                )
    order = list(dict.fromkeys([*records[0], *columns]))
    required = set(required_columns)
    data = {}
    for column in order:
        values = [record.get(column) for record in records]
        data[column] = (
            _feature_cells(values, column) if column in required else _extra_cells(values, column)
        )
    return pd.DataFrame(data, columns=order)
