"""Inference pipeline: ``inference_batch`` (new sites) -> ``inference_predictions``
(namespace ``inference``).

``kedro run --pipeline inference --params inference_input_path=<csv>,inference_output_path=<csv>``
(the pandas engine), or with ``inference_engine=dask,dask_scheduler=tcp://HOST:PORT`` on a Dask
cluster (CSV files, a glob or a Parquet folder in; Parquet parts out). The same two nodes serve
both engines; the catalog's ``EngineDataset`` entries choose the datasets.
"""

from kedro.pipeline import Node, Pipeline

from network_security.pipelines.inference.nodes import (
    check_inference_batch,
    score_inference_batch,
)


def create_pipeline(**kwargs) -> Pipeline:
    """The ``inference`` modular pipeline: ``inference_batch`` and ``champion_model`` ->
    ``inference_predictions``, through the checked stream ``inference.checked_inference_batch``.
    """
    nodes = [
        Node(
            check_inference_batch,
            inputs=["inference_batch", "params:schema"],
            outputs="checked_inference_batch",
            name="check_inference_batch",
        ),
        Node(
            score_inference_batch,
            inputs=["checked_inference_batch", "champion_model", "params:scoring", "params:schema"],
            outputs="inference_predictions",
            name="score_inference_batch",
        ),
    ]
    return Pipeline(
        nodes,
        namespace="inference",
        inputs={"inference_batch", "champion_model"},
        outputs={"inference_predictions"},
        parameters={"schema", "scoring"},
    )
