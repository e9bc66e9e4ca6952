"""Ingestion nodes: typing with precise errors, deterministic record keys."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from network_security.pipelines.ingestion.nodes import (
    add_record_keys,
    occurrence_numbers,
    type_records,
)
from network_security.scoring import ChunkStream
from network_security.streams import CountedStream
from network_security.validator import InputValidationError

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


@pytest.mark.parametrize("missing", ["", "NA", "null", " n/a ", "None"])
def test_type_records_keeps_missing_cells_as_missing_for_validation(missing):
    typed = type_records(raw([["1", missing, "-1"], ["-1", "1.0", "1"]]), SCHEMA, "f.csv")
    assert str(typed["URL_Length"].dtype) == "Int64"
    assert typed["URL_Length"].isna().tolist() == [True, False]
    assert typed.loc[1].tolist() == [-1, 1, 1]


@pytest.mark.parametrize("value", ["abc", "1.5", "0x1"])
def test_type_records_names_file_row_column_and_value_of_a_bad_cell(value):
    frame = raw([["1", "0", "1"], ["1", "1", "1"], ["1", value, "-1"]])
    with pytest.raises(InputValidationError) as error:
        type_records(frame, SCHEMA, "batch.csv")
    message = str(error.value)
    for part in ("batch.csv", "row 3", "'URL_Length'", repr(value), "nothing of this file"):
        assert part in message
    assert (error.value.column, error.value.row, error.value.value) == ("URL_Length", 3, value)


def test_type_records_names_missing_columns():
    with pytest.raises(InputValidationError, match="missing column 'URL_Length'"):
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


# ------------------------------------------------------------------ chunked ingestion


def reference_keys(records: pd.DataFrame, schema=SCHEMA) -> list[str]:
    """The record keys as defined before chunked ingestion: a dictionary over the whole file."""
    columns = [*schema["features"], schema["target"]["name"]]
    seen: dict[str, int] = {}
    keys = []
    for row in records[columns].astype(object).to_numpy().tolist():
        content = ",".join("" if value is pd.NA else str(value) for value in row)
        occurrence = seen.get(content, 0)
        seen[content] = occurrence + 1
        keys.append(hashlib.sha256(f"{content}#{occurrence}".encode()).hexdigest()[:32])
    return keys


def stream_of(frame: pd.DataFrame, size: int) -> ChunkStream:
    """A re-iterable stream of ``frame`` in chunks of ``size`` rows, as text (like the CSV)."""
    text = frame.astype(str).fillna("")
    chunks = [text.iloc[i : i + size] for i in range(0, len(text), size)]
    return CountedStream(chunks, "batch.csv", total_rows=len(frame), exact=False)


@pytest.fixture
def repetitive() -> pd.DataFrame:
    """600 rows with many copies of few contents (like the real data), and missing values."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "having_IP_Address": rng.choice([-1, 1], 600),
            "URL_Length": rng.choice([-1, 0, 1], 600),
            "Result": rng.choice([-1, 1], 600),
        }
    ).astype("Int64")
    frame.loc[[5, 77, 400], "URL_Length"] = pd.NA
    return frame


@pytest.mark.parametrize("size", [2, 7, 100, 600, 1000])
def test_chunked_keys_equal_whole_file_keys_across_chunk_boundaries(repetitive, size):
    typed = type_records(stream_of(repetitive, size), SCHEMA, "batch.csv")
    assert isinstance(typed, CountedStream) and typed.total_rows == 600 and typed.exact
    keyed = add_record_keys(typed, SCHEMA)
    chunks = list(keyed)
    assert [len(c) for c in chunks] == [len(c) for c in stream_of(repetitive, size)]
    keys = pd.concat(chunks, ignore_index=True)["record_key"].tolist()
    assert keys == reference_keys(repetitive)
    assert len(set(keys)) == 600
    assert list(keyed)[0]["record_key"].tolist() == keys[: len(chunks[0])]  # re-iterable


def test_whole_frame_keys_equal_the_reference(repetitive):
    keyed = add_record_keys(repetitive, SCHEMA)
    assert keyed["record_key"].tolist() == reference_keys(repetitive)


def test_a_bad_cell_in_a_late_chunk_fails_before_any_chunk_is_passed_on(repetitive):
    text = repetitive.astype(str).fillna("")
    text.loc[457, "URL_Length"] = "x1"
    stream = CountedStream([text.iloc[i : i + 100] for i in range(0, 600, 100)], "big.csv")
    with pytest.raises(InputValidationError) as error:
        type_records(stream, SCHEMA, "big.csv")
    message = str(error.value)
    for part in ("big.csv", "row 458", "'URL_Length'", "'x1'"):
        assert part in message


def test_a_file_that_changes_between_check_and_store_fails(repetitive):
    chunks = [repetitive.iloc[:300].astype(str).fillna("")]
    typed = type_records(CountedStream(chunks, "f.csv"), SCHEMA, "f.csv")
    chunks.append(chunks[0])  # the file grows after it was checked
    with pytest.raises(InputValidationError, match="changed while it was being ingested"):
        list(typed)


def test_occurrence_numbers_count_the_earlier_copies_of_each_content():
    assert occurrence_numbers(np.array([7, 5, 7, 9, 7, 5], np.uint64)).tolist() == [
        0, 0, 1, 0, 2, 1,
    ]  # fmt: skip
    assert occurrence_numbers(np.empty(0, np.uint64)).tolist() == []


def test_occurrence_numbers_are_exact_for_many_contents_and_copies():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 50_000, dtype=np.int64).astype(np.uint64)
    data = np.concatenate([hashes, hashes[:300], hashes[:10]])  # 300 twice, 10 three times
    rng.shuffle(data)
    numbers = occurrence_numbers(data)
    seen: dict[int, int] = {}
    expected = []
    for value in data.tolist():
        expected.append(seen.get(value, 0))
        seen[value] = seen.get(value, 0) + 1
    assert numbers.tolist() == expected
    assert np.bincount(numbers).tolist() == [50_000, 300, 10]
