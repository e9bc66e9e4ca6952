"""Nodes of the inference pipeline: pure functions over a DataFrame or a lazy chunk stream.

The input dataset yields either one DataFrame or a ``ChunkStream`` of chunks (large files). Each
node maps what it gets to the same kind: a DataFrame gives a DataFrame (so the pipeline also runs
as one MLflow model on a DataFrame), a stream gives a stream. Streams are lazy: the rows are
read, checked and scored chunk by chunk while the output dataset writes them.
"""

from __future__ import annotations

import logging

import pandas as pd

from network_security.model import PhishingModel
from network_security.schema import Schema
from network_security.scoring import (
    ChunkStream,
    check_chunks,
    check_inference_frame,
    score_chunks,
    score_frame,
)

logger = logging.getLogger(__name__)

Batch = pd.DataFrame | ChunkStream


def check_inference_batch(batch: Batch, schema: Schema) -> Batch:
    """Check new sites against the schema's features (no target); feature columns -> int64.

    Raises ``InputValidationError`` (for a stream: while it is consumed) naming the problem,
    column, row and value. Extra columns are kept.
    """
    if isinstance(batch, ChunkStream):
        return check_chunks(batch, schema)
    return check_inference_frame(batch, schema)


def score_inference_batch(batch: Batch, model: PhishingModel | None, scoring: dict) -> Batch:
    """Score checked sites with the champion model: input columns plus the verdict columns."""
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
    if isinstance(batch, ChunkStream):
        return score_chunks(model, batch, scoring)
    scored = score_frame(model, batch, scoring)
    logger.info(
        "Scored %d row(s) with model %s; risk levels: %s",
        len(scored),
        model.version,
        scored["risk_level"].value_counts(sort=False).to_dict(),
    )
    return scored
