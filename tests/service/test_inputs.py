"""Reading request bodies: CSV uploads by the inference pipeline's CSV reader, JSON records."""

from __future__ import annotations

import json
import time

import pytest

from network_security.datasets.chunked_csv import read_csv_bytes
from network_security.service.inputs import RequestProblem, read_csv_upload

JSON = {"Accept": "application/json"}


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
    ("data", "status", "needle", "row"),
    [
        (
            b"a,b\n1,2\n3\n",
            422,
            "line 3 (data row 2): expected 2 fields (as the header has), got 1",
            2,
        ),
        (
            b"a,b\n1,2,3\n",
            422,
            "line 2 (data row 1): expected 2 fields (as the header has), got 3",
            1,
        ),
        # an unterminated quote runs to the end: a row of the wrong width, as the pipeline reads it
        (b'a,b\n"1,2\n', 422, "line 2 (data row 1): expected 2 fields", 1),
        (b"", 422, "is empty", None),
        (b"\n\n", 422, "only blank lines", None),
        (b"a,b,a\n1,2,3\n", 422, "'a' appears more than once", 0),
        (b"a,\n1,2\n", 422, "column 2 of the header has no name", 0),
        (b"a\x00,b\n", 400, "binary file, not a CSV text file (byte 1 is a NUL byte)", None),
        (b"caf\xe9\n1\n", 400, "byte 3 is not utf-8 text", None),
        (b"a,b\n1,2\n" * 1 + b"3,4\n" * 3, 413, "more than 3 data rows", None),
        (b",".join([b"c%d" % i for i in range(11)]) + b"\n", 413, "11 columns", None),
        (b'"x\ny",' + b",".join([b"c%d" % i for i in range(11)]) + b"\n", 413, "12 columns", None),
    ],
)
def test_csv_problems_name_what_and_where(data, status, needle, row):
    with pytest.raises(RequestProblem) as raised:
        read(data, max_rows=3)
    assert raised.value.status_code == status
    assert needle in raised.value.message
    assert raised.value.message.startswith("up.csv")
    assert raised.value.row == row


def test_csv_header_without_rows_is_422_through_http(client, batch):
    response = client.post(
        "/predict",
        files={"file": ("up.csv", batch.head(0).to_csv(index=False).encode(), "text/csv")},
        headers=JSON,
    )
    assert response.status_code == 422
    assert "no data rows" in response.json()["detail"]
    assert "up.csv" in response.json()["detail"]


def test_a_very_wide_header_is_refused_before_it_is_parsed():
    data = b"a," * 2_000_000 + b"a\n1\n"  # 4 MB: the CSV reader would build 2 million columns
    with pytest.raises(RequestProblem) as raised:
        read(data, max_columns=200)
    assert raised.value.status_code == 413
    assert "2000001 columns" in raised.value.message


def test_a_header_ending_with_a_long_quoted_name_cannot_hide_its_width():
    """A quoted name longer than Python's csv field limit (128 KiB) made the width unknown and
    the limit was skipped: 50,001 extra columns were read and scored."""
    names = b",".join(b"x%d" % i for i in range(50_001))
    data = names + b',"' + b"n" * 140_000 + b'"\n' + b"1," * 50_001 + b"1\n"
    started = time.perf_counter()
    with pytest.raises(RequestProblem) as raised:
        read(data, max_columns=200)
    assert time.perf_counter() - started < 1.0
    assert raised.value.status_code == 413
    assert raised.value.message.startswith("up.csv has 50002 columns; at most 200 are read")
    assert "NETWORK_SECURITY_MAX_COLUMNS" in raised.value.message


def test_many_quoted_names_are_refused_once_past_the_limit():
    data = b",".join([b'"a""b,c"'] * 300_000) + b"\n"  # 2.4 MB of quoted names
    started = time.perf_counter()
    with pytest.raises(RequestProblem, match="has more than 200 columns") as raised:
        read(data, max_columns=200)
    assert time.perf_counter() - started < 1.0
    assert raised.value.status_code == 413


@pytest.mark.parametrize(
    "header",
    [
        b'"a,b",c',
        b'"a""b",c',
        b'a"b,c',
        b'"a"b"c,d",e',
        b'"x\ny",c',
        b'"x\r\ny\rz",c,"d"',
        b'\xef\xbb\xbf"a,b",c',
        b'\r\n\n"a",b',
        b'a,"""",b',
        b'"""x""","y"',
    ],
)
def test_the_column_limit_counts_the_header_as_the_csv_reader_splits_it(header):
    data = header + b"\n"
    width = len(read_csv_bytes(data, "up.csv", 10).columns)
    assert len(read(data, max_columns=width).columns) == width
    with pytest.raises(RequestProblem, match=f"has {width} columns; at most {width - 1}"):
        read(data, max_columns=width - 1)


def test_json_records_keep_extra_fields_in_first_seen_order_through_http(client, batch):
    records = json.loads(batch.head(2).drop(columns="url").to_json(orient="records"))
    records[0] = {"id": 7, **records[0]}
    records[1] = {"url": "u", **records[1], "id": None}
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert (first["id"], first["url"], second["id"], second["url"]) == (7, None, None, "u")
    assert list(first)[-6:] == ["prediction", "label", "phishing_probability", "risk_level",
                                "recommended_action", "model_version"]  # fmt: skip


def test_a_fraction_is_refused_naming_record_and_field(client, batch):
    records = json.loads(batch.head(2).to_json(orient="records"))
    records[1]["Favicon"] = 0.5
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 422
    body = response.json()
    assert (body["column"], body["row"], body["value"]) == ("Favicon", 2, "0.5")
    assert "'0.5' is not an integer" in body["detail"]
