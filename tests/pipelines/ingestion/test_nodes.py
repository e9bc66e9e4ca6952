"""Ingestion nodes: typing with precise errors, deterministic record keys."""

from __future__ import annotations

import pandas as pd
import pytest

from network_security.pipelines.ingestion.nodes import IngestionError, add_record_keys, type_records

SCHEMA = {
    "record_key": "record_key",
    "target": {"name": "Result", "phishing": -1, "legitimate": 1},
    "features": {"having_IP_Address": [-1, 1], "URL_Length": [-1, 0, 1]},
}


def raw(rows: list[list[str]], columns=("having_IP_Address", "URL_Length", "Result")):
    return pd.DataFrame(rows, columns=list(columns), dtype=str)


def test_type_records_parses_integers_in_schema_order():
    frame = raw(
        [[" 1", "0", "-1"], ["-1", "1", "1"]], columns=("having_IP_Address", "URL_Length", "Result")
    )
    frame.insert(0, "url", ["a", "b"])
    typed = type_records(frame, SCHEMA, "f.csv")
    assert list(typed.columns) == ["having_IP_Address", "URL_Length", "Result"]
    assert (typed.dtypes == "int64").all()
    assert typed.values.tolist() == [[1, 0, -1], [-1, 1, 1]]


def test_type_records_keeps_empty_cells_as_missing_for_validation():
    typed = type_records(raw([["1", "", "-1"]]), SCHEMA, "f.csv")
    assert str(typed["URL_Length"].dtype) == "Int64"
    assert typed["URL_Length"].isna().tolist() == [True]


@pytest.mark.parametrize("value", ["abc", "1.5", "0x1"])
def test_type_records_names_file_row_column_and_value_of_a_bad_cell(value):
    frame = raw([["1", "0", "1"], ["1", "1", "1"], ["1", value, "-1"]])
    with pytest.raises(IngestionError) as error:
        type_records(frame, SCHEMA, "batch.csv")
    message = str(error.value)
    for part in ("batch.csv", "row 3", "line 4", "'URL_Length'", repr(value)):
        assert part in message


def test_type_records_names_missing_columns():
    with pytest.raises(IngestionError, match=r"missing required column\(s\) \['URL_Length'\]"):
        type_records(raw([["1", "1"]], columns=("having_IP_Address", "Result")), SCHEMA, "f.csv")


def test_record_keys_are_deterministic_and_keep_identical_rows_apart():
    typed = type_records(raw([["1", "0", "1"], ["1", "0", "1"], ["-1", "0", "1"]]), SCHEMA, "f")
    keyed = add_record_keys(typed, SCHEMA)
    assert list(keyed.columns)[0] == "record_key"
    assert keyed["record_key"].is_unique
    again = add_record_keys(typed, SCHEMA)
    assert keyed["record_key"].tolist() == again["record_key"].tolist()
    # the first copy of a row has the same key in any file it appears in
    alone = add_record_keys(typed.iloc[[2]].reset_index(drop=True), SCHEMA)
    assert alone["record_key"].iloc[0] == keyed["record_key"].iloc[2]
