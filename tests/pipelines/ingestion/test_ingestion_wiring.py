"""The ingestion pipeline's wiring, in memory: raw text chunks -> keyed records (no database)."""

from __future__ import annotations

import pandas as pd

from network_security.pipelines.ingestion import create_pipeline
from network_security.schema import record_columns
from network_security.scoring import ChunkStream


def _as_csv_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the CSV dataset loads it: every cell text."""
    return frame.astype(str)


def test_ingestion_types_and_keys_a_chunked_csv(run_in_memory, synthetic_records, schema):
    records = synthetic_records(120, seed=3)
    records = pd.concat([records, records.iloc[[5]]], ignore_index=True)  # a repeated row
    text = _as_csv_text(records)
    text.insert(0, "url", [f"https://s{i}.test/" for i in range(len(text))])  # extra: dropped
    chunks = [text.iloc[:50], text.iloc[50:]]  # the repeat crosses a chunk boundary

    pipeline = create_pipeline()
    assert {n.namespace for n in pipeline.nodes} == {"ingestion"}
    assert pipeline.inputs() == {"raw_phishing_csv", "params:schema", "params:raw_data_path"}
    assert pipeline.outputs() == {"phishing_records"}

    outputs = run_in_memory(
        pipeline, {"raw_phishing_csv": ChunkStream(chunks, source="memory.csv")}
    )

    assert set(outputs) == {"ingestion.typed_records", "phishing_records"}
    stored = pd.concat(list(outputs["phishing_records"]), ignore_index=True)
    key = schema["record_key"]
    assert list(stored.columns) == [key, *record_columns(schema)]
    assert len(stored) == len(records)
    pd.testing.assert_frame_equal(
        stored[record_columns(schema)], records, check_dtype=False, check_index_type=False
    )
    assert stored[key].is_unique  # the repeated row is a record of its own
    assert (stored.loc[5, record_columns(schema)] == stored.loc[120, record_columns(schema)]).all()

    # the keys do not depend on the chunking: the whole file at once gives the same ones
    whole = run_in_memory(pipeline, {"raw_phishing_csv": text})["phishing_records"]
    assert whole[key].tolist() == stored[key].tolist()
