"""``network_security.validator``: the one header rule, cell rule and allowed values, and the
validation pipeline's pandera schema agreeing with the fast check of inference and the service."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from network_security.schema import feature_columns, record_key_column, target_column
from network_security.validator import (
    InputValidationError,
    check_feature_columns,
    check_inference_frame,
    normalise_header,
    parse_integer_cells,
    record_schema,
    type_cells,
)


@pytest.mark.parametrize(
    ("cell", "integer", "missing"),
    [
        ("1", 1, False),
        (" -1 ", -1, False),
        ("+1", 1, False),
        ("1.0", 1, False),
        ("-0.0", 0, False),
        ("", None, True),
        ("  ", None, True),
        ("NA", None, True),
        ("n/a", None, True),
        ("null", None, True),
        ("None", None, True),
        ("NaN", None, True),
        (None, None, True),
        (float("nan"), None, True),
        (1, 1, False),
        (1.0, 1, False),
        ("abc", None, False),
        ("1.5", None, False),
        ("0x1", None, False),
        ("1_0", None, False),
        ("inf", None, False),
        (True, None, False),
        ("0" * 31 + "1", 1, False),
        (" 1.000000000000000000000000000000 ", 1, False),
        ("0" * 32 + "1", None, False),  # longer than any number the rule reads
        ("1" * 5_000, None, False),
    ],
)
def test_the_cell_rule(cell, integer, missing):
    for column in (
        pd.Series([cell], dtype=object),
        pd.Series([cell, "1"], dtype=object).iloc[:1],
        *([pd.Series([cell], dtype="str")] if isinstance(cell, str) else []),
    ):
        integers, is_missing, not_integer = parse_integer_cells(column)
        assert bool(is_missing[0]) is missing
        assert bool(not_integer[0]) is (integer is None and not missing)
        if integer is not None:
            assert integers[0] == integer


def test_arrow_text_with_a_hexadecimal_cell_is_not_read_as_an_integer(schema):
    # Arrow's own cast reads "0x1" as 1: the fast path must not
    integers, missing, not_integer = parse_integer_cells(pd.Series(["1", "0x1"], dtype="str"))
    assert not_integer.tolist() == [False, True]
    frame = pd.DataFrame({name: pd.array(["1"], dtype="str") for name in feature_columns(schema)})
    frame["SFH"] = pd.array(["0x1"], dtype="str")
    with pytest.raises(InputValidationError, match="value '0x1' is not an integer"):
        check_inference_frame(frame, schema)


def test_the_header_rule():
    assert normalise_header(["\ufeffa", " b ", "c\t"], "f.csv") == ["a", "b", "c"]
    with pytest.raises(InputValidationError, match="column 'b' appears more than once") as error:
        normalise_header(["a", "b", " b"], "f.csv")
    assert (error.value.column, error.value.problem, error.value.source) == (
        "b",
        "repeated_column",
        "f.csv",
    )
    with pytest.raises(InputValidationError, match="column 2 of the header has no name"):
        normalise_header(["a", " ", "c"], "f.csv")


def test_a_frame_with_a_repeated_column_is_refused_naming_it(schema):
    features = feature_columns(schema)
    frame = pd.DataFrame([[1] * 31], columns=[*features, "URL_Length"])
    with pytest.raises(InputValidationError, match="'URL_Length' appears more than once") as error:
        check_inference_frame(frame, schema, source="model input")
    assert error.value.column == "URL_Length"


def test_missing_and_not_integer_cells_name_their_column_row_and_value(schema):
    features = feature_columns(schema)
    cells = {name: ["1", "-1", "1"] for name in features}
    cells["SFH"] = ["1", "null", "1"]
    with pytest.raises(InputValidationError) as error:
        check_feature_columns(cells, schema, source="records")
    assert (error.value.column, error.value.row, error.value.value) == ("SFH", 2, "null")
    assert "records: column 'SFH', row 2: value 'null' is a missing value" in str(error.value)


@pytest.mark.parametrize("tail", ["x", "", ".5e"])
def test_a_long_cell_is_refused_at_once_naming_its_column_and_row(schema, tail):
    """A 20 KB cell of digits costs what reading it costs; it took 4 s when the number
    pattern backtracked over every way to split the digits."""
    features = feature_columns(schema)
    frame = pd.DataFrame({name: pd.array(["1", "-1", "1"], dtype="str") for name in features})
    frame["Favicon"] = pd.array(["1", "1" * 20_000 + tail, "1"], dtype="str")
    started = time.perf_counter()
    with pytest.raises(InputValidationError) as error:
        check_inference_frame(frame, schema, source="up.csv")
    assert time.perf_counter() - started < 1.0
    message = str(error.value)
    found = (error.value.column, error.value.row, error.value.problem)
    assert found == ("Favicon", 2, "not_integer")
    assert message.startswith("up.csv: column 'Favicon', row 2: value '111")
    assert f"({20_000 + len(tail)} characters) is not an integer" in message
    assert len(message) < 1_000


def test_ingestion_typing_lands_missing_cells_and_refuses_text():
    frame = pd.DataFrame({"a": ["1", "NA", " 0 "], "b": ["-1", "1.0", ""]}, dtype="str")
    typed = type_cells(frame, ["b", "a"], "f.csv")
    assert list(typed.columns) == ["b", "a"]
    assert typed.astype(object).where(typed.notna(), None).values.tolist() == [
        [-1, 1],
        [1, None],
        [None, 0],
    ]
    frame.loc[2, "a"] = "abc"
    with pytest.raises(InputValidationError, match="nothing of this file was stored") as error:
        type_cells(frame, ["a", "b"], "f.csv", row_offset=100)
    assert (error.value.column, error.value.row, error.value.value) == ("a", 103, "abc")


def test_the_pandera_schema_and_the_fast_check_agree_cell_by_cell(schema, make_records):
    import pandera.pandas as pandera

    target = target_column(schema)
    records = make_records(12).astype({"SFH": object, target: object})
    records["SFH"] = ["1", 1.0, "abc", 2, None, "NA", True, "-1", 0, 1.5, "0x1", -1]
    records[target] = [-1, 1, 0, "1", None, 1, 1, -1, 1.0, "x", 1, " 1 "]
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        record_schema(schema).validate(records, lazy=True)
    cases = caught.value.failure_cases
    failed = {
        (column, int(index))
        for column, index in zip(cases["column"], cases["index"], strict=True)
        if not pd.isna(index)
    }
    features = feature_columns(schema)
    for row in range(len(records)):
        try:  # the fast check of inference and the service, on the same cells
            check_feature_columns({name: [records[name].iloc[row]] for name in features}, schema)
            sfh_ok = True
        except InputValidationError as error:
            assert error.column == "SFH"
            sfh_ok = False
        assert sfh_ok is (("SFH", row) not in failed), (row, records["SFH"].iloc[row])
        integers, missing, not_integer = parse_integer_cells([records[target].iloc[row]])
        label_ok = not (missing[0] or not_integer[0]) and integers[0] in (-1, 1)
        assert label_ok is ((target, row) not in failed), (row, records[target].iloc[row])
    assert {column for column, _ in failed} == {"SFH", target}
    assert record_key_column(schema) in record_schema(schema).columns


def test_a_block_of_plain_integer_text_is_typed_as_int64(schema):
    rng = np.random.default_rng(0)
    text = {
        name: pd.array([str(v) for v in rng.choice(values, 1000)], dtype="str")
        for name, values in schema["features"].items()
    }
    checked = check_inference_frame(pd.DataFrame(text), schema)
    assert (checked.dtypes == "int64").all()
    assert checked.to_numpy().tolist() == pd.DataFrame(text).astype(int).to_numpy().tolist()
