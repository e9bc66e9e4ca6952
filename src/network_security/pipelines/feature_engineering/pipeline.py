"""feature_engineering pipeline: validated records -> leak-free train/test model inputs."""

from kedro.pipeline import Pipeline, node

from network_security.pipelines.feature_engineering.nodes import split_train_test, summarize_split


def create_pipeline(**kwargs) -> Pipeline:
    """Build the pipeline (input ``validated_records``; outputs ``model_input_train/test``)."""
    return Pipeline(
        [
            node(
                split_train_test,
                inputs=["validated_records", "params:schema", "params:feature_engineering.split"],
                outputs=["model_input_train", "model_input_test"],
                name="split_train_test",
            ),
            node(
                summarize_split,
                inputs=["model_input_train", "model_input_test", "params:schema"],
                outputs="split_report",
                name="summarize_split",
            ),
        ]
    )
