"""Request bodies read for the one validator: a CSV upload by the inference pipeline's own CSV
reader (``read_csv_bytes``), JSON records as the values sent. Service-only limits (rows,
columns, records before a JSON body is parsed) and every problem become a ``RequestProblem``."""

from __future__ import annotations

import contextlib
import json
import math
import re
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pandas as pd
from starlette.exceptions import HTTPException

from network_security.datasets.chunked_csv import read_csv_bytes
from network_security.validator import InputValidationError

# a JSON string, or the rest of the body after an opening quote that is never closed; its
# repeats are possessive, so the scan never backtracks and each byte is read once (a string
# pattern that can fail retries from every later quote: quadratic on escaped quotes)
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"0" * 9)
_LONG_NUMBER = b"0" * 19  # 19 digits in a row, as 2**63 has: orjson would read a float
_KINDS = {bool: "a boolean", type(None): "null", dict: "an object", list: "a list"}


class RequestProblem(HTTPException):
    """A request the service cannot serve: the HTTP status, why, and where when known.

    An ``HTTPException``, so FastAPI passes one raised while a body is read (by the body
    limits) on to the service's handler as it is."""

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
        super().__init__(status_code, message, headers)
        self.message = message
        self.column, self.row, self.value = column, row, value

    @classmethod
    def of(cls, error: InputValidationError, status_code: int = 422) -> RequestProblem:
        """A validator's error, naming the column, row and value."""
        value = error.value
        if isinstance(value, str):
            value = value[:200].encode("utf-8", "backslashreplace").decode("utf-8")
        return cls(status_code, str(error), column=error.column, row=error.row, value=value)

    def details(self) -> dict[str, Any]:
        """The located fields (column, row, value) that are known."""
        found = {"column": self.column, "row": self.row, "value": self.value}
        return {key: value for key, value in found.items() if value is not None}


def read_csv_upload(data: bytes, *, source: str, max_rows: int, max_columns: int) -> pd.DataFrame:
    """An uploaded CSV as a frame of text cells, read as the inference pipeline reads a file.

    Raises ``RequestProblem``: 400 for bytes that are not CSV text (or cannot be split into
    rows), 413 past the row or column limit (a wide header is refused before it is parsed),
    422 for an empty file, a bad header or a row of the wrong width.
    """
    try:
        frame = read_csv_bytes(data, source, max_rows, max_columns)
    except InputValidationError as error:
        if error.problem == "too_many_columns":
            message = f"{error} (NETWORK_SECURITY_MAX_COLUMNS sets the limit)"
            raise RequestProblem(413, message) from None
        # bytes that are not text, or a CSV the reader cannot split into rows: a 400
        unreadable = (
            error.problem == "not_text" or error.row is None and error.problem == "malformed"
        )
        raise RequestProblem.of(error, 400 if unreadable else 422) from None
    if len(frame) > max_rows:
        raise RequestProblem(
            413,
            f"{source} has more than {max_rows} data rows, the most the service scores per "
            "request (NETWORK_SECURITY_MAX_ROWS); split the file, or score it with `kedro run "
            "--pipeline inference`.",
        )
    return frame


def read_records(body: bytes | bytearray, *, max_rows: int) -> list[Any]:
    """The ``records`` of a JSON body ``{"records": [...]}``, the record limit enforced first.

    ``max_rows`` records hold ``max_rows + 2`` objects and arrays with the body and the list:
    a body with more ``{`` and ``[`` outside strings is refused (413) before it is parsed, so
    a small body of many empty records cannot cost many times its size. Raises
    ``RequestProblem``: 400 for invalid JSON, 413 past the limit, 422 for another shape.
    """
    limit = max_rows + 2
    if body.count(b"{") + body.count(b"[") > limit:  # an upper bound: braces in strings count
        outside = _STRING.sub(b"", body)
        if outside.count(b"{") + outside.count(b"[") > limit:
            raise RequestProblem(
                413,
                f"records holds more than {max_rows} records (or values that are objects or "
                f"lists); the service scores at most {max_rows} per request "
                "(NETWORK_SECURITY_MAX_ROWS), each a flat object.",
            )
    try:  # orjson is fast; the standard parser reads long integers exactly, and 1e999 or NaN
        data = (
            json.loads(body)
            if _LONG_NUMBER in body.translate(_DIGITS_AS_ZERO)
            else orjson.loads(body)
        )
    except ValueError as error:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise RequestProblem(400, f"The request body is not valid JSON: {error}.") from None
    if not isinstance(data, dict) or list(data) != ["records"]:
        found = f"an object with the keys {sorted(data)[:5]}" if isinstance(data, dict) else None
        raise RequestProblem(
            422,
            'The JSON body must be {"records": [{...}, ...]} with one object per site and no '
            f"other key; got {found or type(data).__name__}.",
        )
    if not isinstance(records := data["records"], list):
        raise RequestProblem(
            422, 'records must be a list of objects, one per site: {"records": [{...}, ...]}.'
        )
    return records


def _refuse(row: int, column: str, value: Any, expected: str) -> RequestProblem:
    shown = value if isinstance(value, bool | int | str | None) else json.dumps(value)[:100]
    return RequestProblem(
        422,
        f"records: record {row}, field '{column}' is {_KINDS.get(type(value), repr(value))}; "
        f"expected {expected}.",
        column=column,
        row=row,
        value=shown[:200] if isinstance(shown, str) else shown,
    )


def _field_names(records: list[Any], width: int, max_rows: int, max_columns: int) -> list[str]:
    """Every field of the records, in first-seen order, once each record is an object and the
    records are within the limits."""
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
    names = dict.fromkeys(chain.from_iterable(records)) if widest > width else records[0]
    if len(names) > max_columns:
        raise RequestProblem(
            413,
            f"records use more than {max_columns} distinct fields, the most the service accepts "
            "(NETWORK_SECURITY_MAX_COLUMNS).",
        )
    return list(names)


def records_features(
    records: list[Any], features: list[str], *, max_rows: int, max_columns: int
) -> tuple[list[str], np.ndarray | None, dict[str, tuple[Any, ...]]]:
    """The fields of JSON records (first-seen order) and their feature values: an int64 matrix
    when every one is a plain integer within int64 (the usual case), else each feature's
    values, all finite JSON numbers, for the validator to judge.

    Raises ``RequestProblem``: 413 past the limits, 422 for a record that is not an object, a
    missing feature, a feature value that is not a finite number, another field's value that
    is an object or a list.
    """
    names = _field_names(records, len(features), max_rows, max_columns)
    getter = itemgetter(*features)
    try:
        rows = [getter(record) for record in records]
    except KeyError:
        row, column = next((i, c) for i, r in enumerate(records, 1) for c in features if c not in r)
        raise RequestProblem(
            422,
            f"records: record {row} has no field '{column}'; every record needs all "
            f"{len(features)} feature fields.",
            column=column,
            row=row,
        ) from None
    rows = rows if len(features) > 1 else [(value,) for value in rows]
    matrix = None
    if set(map(type, chain.from_iterable(rows))) == {int}:
        with contextlib.suppress(OverflowError):  # beyond int64: judged by the validator
            matrix = np.array(rows, np.int64)
    for row, values in enumerate(rows if matrix is None else (), start=1):
        for column, value in zip(features, values, strict=True):
            if type(value) is not int and not (type(value) is float and math.isfinite(value)):
                expected = "a whole number such as -1, 0 or 1 (a JSON number, not text)"
                raise _refuse(row, column, value, expected)
    for name in names if len(names) > len(features) else ():
        if name in features:
            continue
        values = [record.get(name) for record in records]
        if bad := next((i for i, v in enumerate(values, 1) if isinstance(v, dict | list)), 0):
            raise _refuse(bad, name, values[bad - 1], "a single value (text or number)")
    cells = {} if matrix is not None else dict(zip(features, zip(*rows, strict=True), strict=True))
    return names, matrix, cells
