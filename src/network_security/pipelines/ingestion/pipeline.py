"""Ingestion: raw CSV -> typed, keyed records -> MongoDB."""

from kedro.pipeline import Node, Pipeline

from network_security.pipelines.ingestion.nodes import add_record_keys, type_records


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                type_records,
                inputs=["raw_phishing_csv", "params:schema", "params:raw_data_path"],
                outputs="typed_records",
                name="type_records",
            ),
            Node(
                add_record_keys,
                inputs=["typed_records", "params:schema"],
                outputs="phishing_records",
                name="add_record_keys",
            ),
        ]
    )
