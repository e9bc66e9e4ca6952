"""Nodes of the inference pipeline: pure functions over a DataFrame, a stream or a Dask frame.

The input dataset yields one DataFrame, a ``ChunkStream`` of chunks (the pandas engine, for
large files) or a lazy Dask DataFrame (the Dask engine). Each node maps what it gets to the same
kind: a DataFrame gives a DataFrame (so the pipeline also runs as one MLflow model on a
DataFrame), a stream gives a stream, a Dask frame a Dask frame. Streams and Dask frames are
lazy: the rows are read, checked and scored chunk by chunk (partition by partition, on the
cluster) while the output dataset writes them, with the same check and scoring functions.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from network_security.model import PhishingModel
from network_security.reasons import with_allowed_values
from network_security.schema import Schema
from network_security.scoring import (
    check_chunks,
    check_inference_frame,
    score_chunks,
    score_frame,
)
from network_security.streams import ChunkStream, CountedStream, stream_size, with_progress

logger = logging.getLogger(__name__)


Batch = pd.DataFrame | ChunkStream | Any
"""One frame, a lazy stream of chunks, or a Dask DataFrame (``Any``: Dask is imported only when
the Dask engine is used, and Kedro resolves these hints at run time)."""


def _is_dask(batch: object) -> bool:
    return type(batch).__module__.split(".")[0] == "dask"


def check_inference_batch(batch: Batch, schema: Schema) -> Batch:
    """Check new sites against the schema's features (no target); feature columns -> int64.

    Raises ``InputValidationError`` (for a stream or a Dask frame: while it is computed) naming
    the problem, column, row and value (and the file). Extra columns are kept.
    """
    if isinstance(batch, ChunkStream):
        total, exact = stream_size(batch)
        return CountedStream(check_chunks(batch, schema), batch.source, total, exact)
    if _is_dask(batch):
        from network_security.pipelines.inference.dask_engine import check_partitions

        return check_partitions(batch, schema)
    return check_inference_frame(batch, schema)


def score_inference_batch(
    batch: Batch, model: PhishingModel | None, scoring: dict, schema: Schema
) -> Batch:
    """Score checked sites with the champion model: input columns plus the verdict columns
    (and the reasons, tried over the schema's allowed values, when ``scoring.reasons`` is on)."""
    if model is None:
        raise ValueError(
            "No champion model to score with: the catalog entry 'champion_model' "
            "(data/06_models/champion.pkl) does not exist yet. Train one first with "
            "`kedro run --pipeline training`, then run the inference pipeline again."
        )
    if not isinstance(model, PhishingModel):
        raise TypeError(
            f"'champion_model' holds a {type(model).__name__}, not a PhishingModel; retrain it "
            "with `kedro run --pipeline training`."
        )
    scoring = with_allowed_values(scoring, schema)
    if isinstance(batch, ChunkStream):
        total, exact = stream_size(batch)
        return with_progress(score_chunks(model, batch, scoring), "Scored", total, exact)
    if _is_dask(batch):
        from network_security.pipelines.inference.dask_engine import score_partitions

        return score_partitions(batch, model, scoring)
    scored = score_frame(model, batch, scoring)
    logger.info(
        "Scored %d row(s) with model %s; risk levels: %s",
        len(scored),
        model.version,
        scored["risk_level"].value_counts(sort=False).to_dict(),
    )
    return scored
