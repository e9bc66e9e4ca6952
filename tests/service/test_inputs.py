"""Reading request bodies: CSV uploads by the inference pipeline's CSV reader, JSON records."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError

from network_security.datasets.chunked_csv import read_csv_bytes
from network_security.service.inputs import (
    RequestProblem,
    read_csv_upload,
    read_records,
    record_fields,
    records_model,
)

JSON = {"Accept": "application/json"}


def read(data: bytes, max_rows: int = 100, max_columns: int = 10):
    return read_csv_upload(data, source="up.csv", max_rows=max_rows, max_columns=max_columns)


ALLOWED = {"a": [-1, 0, 1], "b": [-1, 1]}


def records(sent: list, features: str = "a", max_rows: int = 10, max_columns: int = 5) -> list:
    """``sent`` as a JSON body, read as the service reads it, for a schema of features among
    ``a`` (-1, 0, 1) and ``b`` (-1, 1)."""
    schema = {"features": {f: ALLOWED[f] for f in features}}
    model = records_model(schema, max_rows, max_columns)
    body = json.dumps({"records": sent}).encode()
    return read_records(body, model, schema, max_rows=max_rows)[0]


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


def test_records_hold_the_features_as_integers_and_the_other_fields_as_sent():
    sent = [{"id": 7, "b": -1, "a": 1}, {"url": "u", "b": 1.0, "a": 0, "id": None}]
    read = records(sent, "ab")
    assert read == [{"a": 1, "b": -1, "id": 7}, {"a": 0, "b": 1, "url": "u", "id": None}]
    assert type(read[1]["b"]) is int  # 1.0 is read as 1
    assert record_fields(read, ["a", "b"], max_columns=5) == ["a", "b", "id", "url"]
    assert record_fields(records([{"b": 1, "a": 1}], "ab"), ["a", "b"], 5) == ["a", "b"]
    plain = [{"id": 7, "b": -1, "a": 1}, {"url": "u", "b": 1, "a": 0}]
    assert [list(record) for record in records(plain, "ab")] == [
        ["id", "b", "a"],
        ["url", "b", "a"],
    ]


BODIES = [
    *(
        json.dumps({"records": sent}).encode()
        for sent in (
            [{"a": 1, "b": -1}],
            [{"b": 1, "a": 0, "url": "u", "n": None, "f": 1.5, "t": True}],
            [{"a": 1.0, "b": 1}, {"a": -1, "b": -1.0}],
            [{"a": True, "b": 1}],
            [{"a": 2, "b": 1}],
            [{"a": 1, "b": 0}],
            [{"a": 1}],
            [{"a": 1, "b": 1, "prediction": 1}],
            [{"a": 1, "b": 1, "x": [1]}],
            [{"a": 1, "b": 1, "x": {"y": 1}}],
            [{"a": 2**63, "b": 1}],
            [{"a": 2**64 + 1, "b": 1}],
            [{"a": 1, "b": 1, "id": 2**70}],
            [{"a": "1", "b": 1}],
            [{"a": 1, "b": 1}, 1],
            [{"a": 1, "b": 1}] * 11,
            [],
        )
    ),
    b'{"records": [{"a": 1, "b": 1, "a": "x"}]}',
    b'{"records": [{"a": "x", "a": 1, "b": 1}]}',
    b'{"records": [{"a": NaN, "b": 1}]}',
    b'{"records": [{"a": 1, "b": 1}], "records": []}',
    b'{"records": [{"a": 1, "b": 1}], "x": 1}',
]


@pytest.mark.parametrize("body", BODIES, ids=lambda body: body.decode()[:60])
def test_the_service_reads_exactly_what_the_model_accepts(body):
    """Plainly valid records are read without the model (faster); the model decides any
    other body: either way, what is accepted and its values are the model's."""
    schema = {"features": ALLOWED}
    model = records_model(schema, max_rows=10, max_columns=10)
    try:
        expected = model.model_validate_json(body).records
    except ValidationError:
        expected = None
    try:
        read, matrix = read_records(body, model, schema, max_rows=10)
    except RequestProblem:
        read = matrix = None
    assert read == expected
    if expected is not None:
        assert matrix.tolist() == [[record["a"], record["b"]] for record in expected]


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


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (True, "a boolean"),
        (None, "null"),
        ([1], "a list"),
        ({"x": 1}, "an object"),
        ("-1", "'-1'"),
        (float("nan"), "nan"),
    ],
)
def test_a_record_value_a_feature_cannot_hold_names_record_and_field(value, described):
    with pytest.raises(RequestProblem) as raised:
        records([{"a": 1}, {"a": value}])
    problem = raised.value
    assert (problem.status_code, problem.column, problem.row) == (422, "a", 2)
    assert f"record 2, field 'a' is {described}" in problem.message


@pytest.mark.parametrize(
    ("value", "what"),
    [(2, "'2' is not an allowed value"), (0.5, "'0.5' is not an integer"),
     (2**64, f"'{2**64}' is not an allowed value"), (1e300, "'1e+300' is not an allowed value")],
)  # fmt: skip
def test_a_number_outside_the_allowed_values_names_record_field_and_value(value, what):
    with pytest.raises(RequestProblem) as raised:
        records([{"b": 1}, {"b": -1.0}, {"b": value}], "b")
    problem = raised.value
    assert (problem.status_code, problem.column, problem.row) == (422, "b", 3)
    assert problem.message.startswith(f"records: record 3, field 'b': value {what}")
    assert problem.value == str(value)


def test_a_fraction_is_refused_naming_record_and_field(client, batch):
    records = json.loads(batch.head(2).to_json(orient="records"))
    records[1]["Favicon"] = 0.5
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 422
    body = response.json()
    assert (body["column"], body["row"], body["value"]) == ("Favicon", 2, "0.5")
    assert "'0.5' is not an integer" in body["detail"]


def test_another_field_must_hold_a_single_value_and_not_be_named_like_a_verdict():
    with pytest.raises(RequestProblem) as raised:
        records([{"a": 1, "u": "x"}, {"a": 1, "u": [1]}])
    assert (raised.value.status_code, raised.value.column, raised.value.row) == (422, "u", 2)
    assert "record 2, field 'u' is a list" in raised.value.message
    with pytest.raises(RequestProblem, match="which scoring adds") as raised:
        records([{"a": 1}, {"a": 1, "risk_level": "low"}])
    assert (raised.value.status_code, raised.value.column, raised.value.row) == (
        422,
        "risk_level",
        2,
    )


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"null", 422, "got NoneType"),
        (b'{"rows": []}', 422, "got an object with the keys ['rows']"),
        (b'{"records": [], "x": 1}', 422, "and no other key; got the key 'x'"),
        (b'{"records": []}', 422, "records is empty"),
        (b'{"records": {}}', 422, "records must be a list of objects"),
        (b'{"records": [1]}', 422, "record 1 is a int, not an object"),
    ],
)
def test_a_body_of_another_shape_says_what_is_expected(body, status, needle):
    schema = {"features": {"a": [-1, 1]}}
    with pytest.raises(RequestProblem) as raised:
        read_records(body, records_model(schema, 10, 5), schema, max_rows=10)
    assert (raised.value.status_code, needle in raised.value.message) == (status, True)


def test_record_limits():
    with pytest.raises(RequestProblem, match="at most 1 per request") as raised:
        records([{"a": 1}] * 2, max_rows=1)
    assert raised.value.status_code == 413
    wide = records([{"a": 1, **{f"x{i}": i for i in range(5)}}])
    with pytest.raises(RequestProblem, match="6 fields") as raised:
        record_fields(wide, ["a"], max_columns=5)
    assert raised.value.status_code == 413
    spread = records([{"a": 1, f"x{i}": i} for i in range(6)])
    with pytest.raises(RequestProblem, match="more than 5 distinct fields"):
        record_fields(spread, ["a"], max_columns=5)
    with pytest.raises(RequestProblem, match="record 2 has no field 'b'"):
        records([{"a": 1, "b": 1}, {"a": 1}], "ab")
