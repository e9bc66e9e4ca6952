"""Inference pipeline: ``inference_batch`` (new sites) -> ``inference_predictions``.

``kedro run --pipeline inference --params inference_input_path=<csv>,inference_output_path=<csv>``
(the pandas engine), or with ``inference_engine=dask,dask_scheduler=tcp://HOST:PORT`` on a Dask
cluster (CSV files, a glob or a Parquet folder in; Parquet parts out). The same two nodes serve
both engines; the catalog's ``EngineDataset`` entries choose the datasets.
"""

from kedro.pipeline import Pipeline, node

from network_security.pipelines.inference.nodes import (
    check_inference_batch,
    score_inference_batch,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Build the inference pipeline (inputs ``inference_batch``, ``champion_model``)."""
    return Pipeline(
        [
            node(
                check_inference_batch,
                inputs=["inference_batch", "params:schema"],
                outputs="checked_inference_batch",
                name="check_inference_batch",
            ),
            node(
                score_inference_batch,
                inputs=["checked_inference_batch", "champion_model", "params:scoring"],
                outputs="inference_predictions",
                name="score_inference_batch",
            ),
        ]
    )
