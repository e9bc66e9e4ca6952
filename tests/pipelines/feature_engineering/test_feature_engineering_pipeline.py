"""The feature_engineering pipeline end to end: MongoDB (test server) -> validation -> split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from network_security.datasets import MongoDataset
from network_security.schema import allowed_values, feature_columns, record_columns


def test_feature_engineering_writes_a_leak_free_in_domain_split(
    kedro_project, run_kedro, mongo_uri, mongo_database, make_records, schema
):
    base = make_records(300, seed=21)
    repeats = np.random.default_rng(21).integers(1, 5, size=len(base))
    records = base.loc[base.index.repeat(repeats)].reset_index(drop=True)
    records["record_key"] = [f"r{i:05d}" for i in range(len(records))]
    records.loc[[0, 1], "SSLfinal_State"] = 7  # quarantined by validation, never split
    dataset = MongoDataset(
        collection="phishing_records", database=mongo_database, credentials={"uri": mongo_uri}
    )
    dataset.save(records)
    dataset.release()

    run_kedro(kedro_project, "validation")
    run_kedro(kedro_project, "feature_engineering")

    model_input = kedro_project / "data" / "05_model_input"
    train = pd.read_parquet(model_input / "train.parquet")
    test = pd.read_parquet(model_input / "test.parquet")
    features = feature_columns(schema)

    assert list(train.columns) == record_columns(schema) == list(test.columns)
    assert len(train) + len(test) == len(records) - 2
    train_vectors = set(map(tuple, train[features].to_numpy()))
    test_vectors = set(map(tuple, test[features].to_numpy()))
    assert train_vectors.isdisjoint(test_vectors)
    for name, values in allowed_values(schema).items():
        assert train[name].isin(values).all() and test[name].isin(values).all(), name
    assert 0.15 < len(test) / (len(train) + len(test)) < 0.25

    summary = json.loads(
        (kedro_project / "data" / "08_reporting" / "split_report.json").read_text()
    )
    assert summary["shared_feature_vectors"] == 0
    assert summary["test"]["rows"] == len(test)
