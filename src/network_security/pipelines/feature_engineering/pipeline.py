"""feature_engineering pipeline: validated records -> leak-free train/test model inputs
(namespace ``feature_engineering``)."""

from kedro.pipeline import Node, Pipeline

from network_security.pipelines.feature_engineering.nodes import split_train_test, summarize_split


def create_pipeline(**kwargs) -> Pipeline:
    """The ``feature_engineering`` modular pipeline: ``validated_records`` ->
    ``model_input_train``, ``model_input_test`` and ``split_report``."""
    nodes = [
        Node(
            split_train_test,
            inputs=["validated_records", "params:schema", "params:feature_engineering.split"],
            outputs=["model_input_train", "model_input_test"],
            name="split_train_test",
        ),
        Node(
            summarize_split,
            inputs=["model_input_train", "model_input_test", "params:schema"],
            outputs="split_report",
            name="summarize_split",
        ),
    ]
    return Pipeline(
        nodes,
        namespace="feature_engineering",
        inputs={"validated_records"},
        outputs={"model_input_train", "model_input_test", "split_report"},
        parameters={"schema", "feature_engineering.split"},
    )
