"""The feature_engineering pipeline's wiring, in memory: validated records -> a leak-free split."""

from __future__ import annotations

from network_security.pipelines.feature_engineering import create_pipeline
from network_security.schema import feature_columns, record_columns


def test_feature_engineering_splits_without_shared_vectors(
    run_in_memory, synthetic_records, schema
):
    records = synthetic_records(600, seed=17)  # many exact repeats, as in the real data
    records.insert(0, schema["record_key"], [f"r{i:04d}" for i in range(len(records))])

    pipeline = create_pipeline()
    assert {n.namespace for n in pipeline.nodes} == {"feature_engineering"}
    outputs = run_in_memory(pipeline, {"validated_records": records})

    assert set(outputs) == {"model_input_train", "model_input_test", "split_report"}
    train, test = outputs["model_input_train"], outputs["model_input_test"]
    assert list(train.columns) == record_columns(schema) == list(test.columns)
    assert len(train) + len(test) == len(records)
    features = feature_columns(schema)
    train_vectors = set(map(tuple, train[features].to_numpy()))
    test_vectors = set(map(tuple, test[features].to_numpy()))
    assert train_vectors.isdisjoint(test_vectors)
    assert len(train_vectors) + len(test_vectors) < len(records)  # the repeats stayed together
    # conf/base's test_size 0.2: a fifth of the distinct vectors, within a few rows
    assert 0.1 < len(test) / len(records) < 0.3
    report = outputs["split_report"]
    assert report["shared_feature_vectors"] == 0
    assert (report["train"]["rows"], report["test"]["rows"]) == (len(train), len(test))
