"""JSON records read for scoring: the model generated from the schema, what it accepts and
how it words a refusal (the record, the field, the value), and the record and field limits."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from network_security.service.inputs import RequestProblem
from network_security.service.records import read_records, record_fields, records_model

ALLOWED = {"a": [-1, 0, 1], "b": [-1, 1]}


def records(sent: list, features: str = "a", max_rows: int = 10, max_columns: int = 5) -> list:
    """``sent`` as a JSON body, read as the service reads it, for a schema of features among
    ``a`` (-1, 0, 1) and ``b`` (-1, 1)."""
    schema = {"features": {f: ALLOWED[f] for f in features}}
    model = records_model(schema, max_rows, max_columns)
    body = json.dumps({"records": sent}).encode()
    return read_records(body, model, schema, max_rows=max_rows)[0]


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
