"""Unit tests of the feature_engineering nodes: the leak-free stratified split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from network_security.pipelines.feature_engineering.nodes import split_train_test, summarize_split
from network_security.schema import feature_columns, record_columns

SPLIT = {"test_size": 0.2, "random_state": 42}


@pytest.fixture
def duplicated_records(make_records):
    """600 records: 150 distinct vectors, repeated 1-7 times (as in the real data)."""
    base = make_records(150, seed=7)
    repeats = np.random.default_rng(7).integers(1, 8, size=len(base))
    records = base.loc[base.index.repeat(repeats)].reset_index(drop=True)
    records["record_key"] = [f"r{i}" for i in range(len(records))]
    return records


def vectors(frame, schema):
    return set(map(tuple, frame[feature_columns(schema)].to_numpy()))


def test_split_keeps_every_feature_vector_on_one_side(duplicated_records, schema):
    train, test = split_train_test(duplicated_records, schema, SPLIT)

    assert vectors(train, schema).isdisjoint(vectors(test, schema))
    assert len(train) + len(test) == len(duplicated_records)
    assert list(train.columns) == record_columns(schema) == list(test.columns)
    assert all(dtype == "int64" for dtype in train.dtypes)
    assert len(test) / len(duplicated_records) == pytest.approx(0.2, abs=0.05)


def test_split_is_stratified_by_label(duplicated_records, schema):
    train, test = split_train_test(duplicated_records, schema, SPLIT)
    overall = (duplicated_records["Result"] == -1).mean()
    assert (train["Result"] == -1).mean() == pytest.approx(overall, abs=0.05)
    assert (test["Result"] == -1).mean() == pytest.approx(overall, abs=0.05)


def test_split_is_reproducible_and_follows_the_seed(duplicated_records, schema):
    first, _ = split_train_test(duplicated_records, schema, SPLIT)
    again, _ = split_train_test(duplicated_records, schema, SPLIT)
    other, _ = split_train_test(duplicated_records, schema, {**SPLIT, "random_state": 1})
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_test_size_sets_the_number_of_folds(duplicated_records, schema):
    _, test = split_train_test(duplicated_records, schema, {**SPLIT, "test_size": 0.5})
    assert len(test) / len(duplicated_records) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("test_size", [0, 0.75, -0.1])
def test_invalid_test_size_is_rejected(duplicated_records, schema, test_size):
    with pytest.raises(
        ValueError, match=r"feature_engineering\.split\.test_size = .*: Input should"
    ):
        split_train_test(duplicated_records, schema, {**SPLIT, "test_size": test_size})


def test_all_duplicate_input_cannot_be_split(make_records, schema):
    records = pd.concat([make_records(1)] * 50, ignore_index=True)
    with pytest.raises(ValueError, match=r"1 distinct feature vectors"):
        split_train_test(records, schema, SPLIT)


def test_summary_reports_sides_and_no_shared_vectors(duplicated_records, schema):
    train, test = split_train_test(duplicated_records, schema, SPLIT)
    summary = summarize_split(train, test, schema)
    assert summary["shared_feature_vectors"] == 0
    assert summary["train"]["rows"] == len(train) and summary["test"]["rows"] == len(test)
    assert summary["test"]["distinct_feature_vectors"] == len(vectors(test, schema))
    assert sum(summary["test"]["labels"].values()) == len(test)
    assert summary["test_fraction"] == pytest.approx(len(test) / len(duplicated_records))


def test_summary_refuses_a_leaky_split(duplicated_records, schema):
    leaky_test = duplicated_records.head(20)[record_columns(schema)]
    with pytest.raises(ValueError, match="split leaked"):
        summarize_split(duplicated_records[record_columns(schema)], leaky_test, schema)
