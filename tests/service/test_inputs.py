"""Parsing request bodies into frames: CSV uploads and JSON records."""

from __future__ import annotations

import pandas as pd
import pytest

from network_security.service.inputs import (
    RequestProblem,
    read_csv_upload,
    records_table,
)


def records_frame(records, **limits) -> pd.DataFrame:
    """The records' cells as a frame, columns in the table's order."""
    table = records_table(records, **limits)
    return pd.DataFrame(table.cells(), columns=table.columns)


def read(data: bytes, max_rows: int = 100, max_columns: int = 10):
    return read_csv_upload(data, source="up.csv", max_rows=max_rows, max_columns=max_columns)


def test_csv_cells_stay_text_and_blank_lines_are_skipped():
    frame = read(b'\xef\xbb\xbf a ,b,url\r\n1,-1,"https://x.example/?q=1,2"\r\n\r\n0, 1,y\r\n')
    assert frame.columns.tolist() == ["a", "b", "url"]
    assert frame.to_dict("list") == {
        "a": ["1", "0"],
        "b": ["-1", " 1"],
        "url": ["https://x.example/?q=1,2", "y"],
    }


@pytest.mark.parametrize(
    ("data", "status", "needle"),
    [
        (b"a,b\n1,2\n3\n", 422, "data row 2 (line 3) has 1 fields"),
        (b"a,b\n1,2,3\n", 422, "data row 1 (line 2) has 3 fields"),
        (b"a,b\n", 422, "no data rows"),
        (b"", 422, "is empty"),
        (b"\n\n", 422, "is empty"),
        (b"a,b,a\n1,2,3\n", 422, "'a' appears more than once"),
        (b"a,\n1,2\n", 422, "column 2 of the header has no name"),
        (b"a\x00,b\n", 400, "NUL byte at position 1"),
        (b"caf\xe9\n1\n", 400, "not UTF-8 text (undecodable byte at position 3)"),
        (b'a,b\n"1,2\n', 400, "not a valid CSV file"),
        (b"a,b\n1,2\n" * 1 + b"3,4\n" * 3, 413, "more than 3 data rows"),
        (b",".join([b"c%d" % i for i in range(11)]) + b"\n", 413, "11 columns"),
    ],
)
def test_csv_problems_name_what_and_where(data, status, needle):
    with pytest.raises(RequestProblem) as raised:
        read(data, max_rows=3)
    assert raised.value.status_code == status
    assert needle in raised.value.message
    assert "up.csv" in raised.value.message


def test_records_keep_extra_fields_as_sent_in_first_seen_order():
    records = [{"a": 1, "b": -1, "id": 7}, {"url": "u", "b": 1.0, "a": 0, "id": None}]
    frame = records_frame(records, required_columns=["a", "b"], max_rows=10, max_columns=5)
    assert frame.columns.tolist() == ["a", "b", "id", "url"]
    assert frame["a"].tolist() == [1, 0]
    assert frame["b"].tolist() == [-1, 1]
    assert pd.isna(frame["url"][0])
    assert frame["url"][1] == "u"


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (True, "a boolean"),
        (None, "null"),
        ([1], "a list"),
        ({"x": 1}, "an object"),
        (0.5, "0.5"),
        ("-1", "'-1'"),
    ],
)
def test_a_record_value_a_feature_cannot_hold_names_record_and_field(value, described):
    records = [{"a": 1}, {"a": value}]
    with pytest.raises(RequestProblem) as raised:
        records_frame(records, required_columns=["a"], max_rows=10, max_columns=5)
    problem = raised.value
    assert (problem.status_code, problem.column, problem.row) == (422, "a", 2)
    assert f"record 2, field 'a' is {described}" in problem.message


def test_record_limits():
    with pytest.raises(RequestProblem, match="at most 1 per request") as raised:
        records_frame([{"a": 1}] * 2, required_columns=["a"], max_rows=1, max_columns=5)
    assert raised.value.status_code == 413
    wide = [{"a": 1, **{f"x{i}": i for i in range(5)}}]
    with pytest.raises(RequestProblem, match="6 fields") as raised:
        records_frame(wide, required_columns=["a"], max_rows=1, max_columns=5)
    assert raised.value.status_code == 413
    spread = [{"a": 1, f"x{i}": i} for i in range(6)]
    with pytest.raises(RequestProblem, match="more than 5 distinct fields"):
        records_frame(spread, required_columns=["a"], max_rows=10, max_columns=5)
    with pytest.raises(RequestProblem, match="record 2 has no field 'b'"):
        records_frame(
            [{"a": 1, "b": 1}, {"a": 1}], required_columns=["a", "b"], max_rows=5, max_columns=5
        )
