"""The Dask engine of the inference pipeline: the one check and scoring functions, per partition.

``check_partitions`` and ``score_partitions`` map ``check_inference_frame`` and ``score_frame``
over the partitions of a lazy Dask DataFrame (from ``DaskTableDataset``). Each partition carries
its file and the number of data rows of that file before it, or how to count them
(``partition.attrs``), so a bad cell is reported with its file, its data row in that file, its
column and its value. The model
enters the graph once, as one delayed object: each worker receives it once and keeps it for all
the partitions it scores.
"""

from __future__ import annotations

import uuid
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd

from network_security.model import PhishingModel
from network_security.schema import Schema, allowed_values
from network_security.scoring import InputValidationError, check_inference_frame, score_frame


def _probe(meta: pd.DataFrame, values: dict[str, Any]) -> pd.DataFrame:
    """One made-up row with the columns and dtypes of ``meta`` (``values`` for some columns)."""
    data = {}
    for column in meta.columns:
        dtype = meta[column].dtype
        if column in values:
            value = values[column]
            if not pd.api.types.is_numeric_dtype(dtype):
                value = str(value)
        elif pd.api.types.is_bool_dtype(dtype):
            value = False
        elif pd.api.types.is_numeric_dtype(dtype):
            value = 0
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            value = pd.NaT
        else:
            value = ""
        data[column] = pd.Series([value], dtype=dtype)
    return pd.DataFrame(data)


def check_partition(partition: pd.DataFrame, schema: Schema, empty: pd.DataFrame) -> pd.DataFrame:
    """``check_inference_frame`` on one partition, rows numbered as in its file.

    A partition that does not know the rows of its file before it (a CSV block after the first:
    ``row_offset`` None) is checked as it is; only when it fails are those rows counted
    (``attrs["rows_before"]``, from the reader) and the partition checked again, so the error
    names the data row of the file.
    """
    if not len(partition):  # a block without rows (the input as a whole is checked for rows)
        return empty
    source = partition.attrs.get("source", "input")
    offset = partition.attrs.get("row_offset", 0)
    try:
        return check_inference_frame(partition, schema, source, offset or 0)
    except InputValidationError:
        if offset is not None:
            raise
        check_inference_frame(partition, schema, source, partition.attrs["rows_before"]())
        raise


def score_partition(
    partition: pd.DataFrame, model: PhishingModel, scoring: dict, empty: pd.DataFrame
) -> pd.DataFrame:
    """``score_frame`` on one checked partition."""
    if not len(partition):
        return empty
    return score_frame(model, partition, scoring)


def check_partitions(batch: dd.DataFrame, schema: Schema) -> dd.DataFrame:
    """Lazily check every partition; a missing feature column fails here, before any work."""
    first = {name: values[0] for name, values in allowed_values(schema).items()}
    source = batch._meta.attrs.get("source", "input")
    meta = check_inference_frame(_probe(batch._meta, first), schema, source).iloc[:0]
    return batch.map_partitions(check_partition, schema, meta, meta=meta)


def score_partitions(batch: dd.DataFrame, model: PhishingModel, scoring: dict) -> dd.DataFrame:
    """Lazily score every checked partition, the model shipped once to each worker."""
    first = dict.fromkeys(model.feature_columns, 0)
    meta = score_frame(model, _probe(batch._meta, first), scoring).iloc[:0]
    shipped = dask.delayed(model, name=f"champion-model-{uuid.uuid4().hex}", traverse=False)
    return batch.map_partitions(score_partition, shipped, scoring, meta, meta=meta)
