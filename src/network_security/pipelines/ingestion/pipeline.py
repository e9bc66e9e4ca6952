"""Ingestion: raw CSV -> typed, keyed records -> MongoDB (namespace ``ingestion``)."""

from kedro.pipeline import Node, Pipeline

from network_security.pipelines.ingestion.nodes import add_record_keys, type_records


def create_pipeline(**kwargs) -> Pipeline:
    """The ``ingestion`` modular pipeline: ``raw_phishing_csv`` -> ``phishing_records``.

    Its one intermediate, the lazy stream of typed chunks, is ``ingestion.typed_records``.
    """
    nodes = [
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
    return Pipeline(
        nodes,
        namespace="ingestion",
        inputs={"raw_phishing_csv"},
        outputs={"phishing_records"},
        parameters={"schema", "raw_data_path"},
    )
