"""Ingestion nodes: raw CSV text -> typed records with a deterministic record key.

The raw CSV arrives as one DataFrame or as a lazy stream of chunks (``ChunkStream``, from the
``ChunkedCSVDataset``), so a file of any size is ingested in bounded memory. For a stream:

- ``type_records`` reads the whole file once and checks every cell before anything is stored
  (a file with a bad cell stores nothing), then returns a lazy stream that types the chunks
  again while they are being stored;
- ``add_record_keys`` numbers identical rows over the whole file (one pass hashing each row),
  then keys the chunks lazily, exactly as it would key the whole file at once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from network_security.schema import Schema, record_columns, record_key_column
from network_security.streams import ChunkStream, CountedStream, Progress, stream_size
from network_security.validator import InputValidationError, require_columns, type_cells

logger = logging.getLogger(__name__)

Records = pd.DataFrame | ChunkStream


def _type_chunk(
    raw: pd.DataFrame,
    schema: Schema,
    source: str,
    row_offset: int = 0,
    warn: bool = True,
) -> pd.DataFrame:
    """Type one frame of raw text (the whole file, or a chunk ``row_offset`` rows into it) by
    the one validator's column and cell rules."""
    columns = record_columns(schema)
    require_columns(raw.columns, columns, source, "columns of a record (features and label)")
    extra = [c for c in raw.columns if c not in columns]
    if extra and warn:
        logger.warning("%s: ignoring columns that are not in the schema: %s", source, extra)
    return type_cells(raw, columns, source, row_offset)


class _TypedChunks:
    """Re-iterable: the chunks of a raw stream, typed; fails if the file changed since checked."""

    def __init__(self, raw: ChunkStream, schema: Schema, source: str, rows: int) -> None:
        self._raw = raw
        self._schema = schema
        self._source = source
        self._rows = rows

    def __iter__(self) -> Iterator[pd.DataFrame]:
        offset = 0
        for chunk in self._raw:
            typed = _type_chunk(chunk, self._schema, self._source, offset, warn=False)
            offset += len(typed)
            if offset > self._rows:
                break
            yield typed
        if offset != self._rows:
            raise InputValidationError(
                f"{self._source}: the file changed while it was being ingested (checked "
                f"{self._rows} rows, then read {offset}{'+' if offset > self._rows else ''}). "
                "Let whatever writes it finish, then run the ingestion again; nothing of this "
                "run was kept.",
                problem="changed",
                source=self._source,
            )


def type_records(raw: Records, schema: Schema, source: str) -> Records:
    """Keep the schema's columns in schema order and parse every cell as an integer.

    The raw CSV is loaded as text and typed by the one validator (``type_cells``), so a cell
    that is not an integer (``abc``, ``1.5``) is caught here, before anything is written: the
    whole file is refused (``InputValidationError`` naming the file, row, column and value) and
    nothing of it is stored. Missing cells (empty, ``NA``, ``null``, ...) become missing values,
    which validation quarantines. Domain checks (is 7 an allowed value?) are validation's job,
    not ingestion's.

    Args:
        raw: The CSV with every cell as a string: one DataFrame, or a stream of chunks.
        schema: The project schema (``params:schema``).
        source: The file's path, for error messages.

    Returns:
        The typed frame; for a stream, after checking every chunk, a lazy ``CountedStream``
        of typed chunks with the exact row count.
    """
    if isinstance(raw, pd.DataFrame):
        typed = _type_chunk(raw, schema, source)
        logger.info("%s: %d rows typed", source, len(typed))
        return typed
    estimate, exact = stream_size(raw)
    progress = Progress("Checked", source, total_rows=estimate, exact=exact)
    rows = 0
    for chunk in raw:  # the whole file first: a bad cell anywhere stores nothing
        rows += len(_type_chunk(chunk, schema, source, rows, warn=rows == 0))
        progress.update(len(chunk))
    logger.info("%s: every cell of its %d rows is an integer", source, rows)
    return CountedStream(_TypedChunks(raw, schema, source, rows), source, rows, exact=True)


_NA_CODE = np.iinfo(np.int64).min  # stands for a missing value in row hashes


def _row_hashes(records: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A 64-bit hash of each row's values (missing values included), the same in any chunk."""
    values = pd.DataFrame(
        {c: records[c].to_numpy(dtype=np.int64, na_value=_NA_CODE) for c in columns}
        if all(pd.api.types.is_integer_dtype(records[c].dtype) for c in columns)
        else {c: records[c].astype(str) for c in columns}
    )
    return pd.util.hash_pandas_object(values, index=False).to_numpy()


def occurrence_numbers(hashes: np.ndarray) -> np.ndarray:
    """For each row, by its content hash, how many rows of the same content come before it
    (0 for the first copy): an exact count over every row given, in order.

    Memory: the result keeps 4 bytes a row; pandas' grouping needs about 70 bytes a distinct
    row while it counts (measured: 21 MiB for 300,000 distinct rows).
    """
    return pd.Series(hashes).groupby(hashes, sort=False).cumcount().to_numpy(np.uint32)


def _contents(records: pd.DataFrame, columns: list[str]) -> list[str]:
    """Each row's values as text joined by commas, a missing value as an empty string.

    Integer columns are joined by Arrow without a Python object per cell; any other column
    falls back to ``str`` of each value. Both spell a row the same way.
    """
    if all(pd.api.types.is_integer_dtype(records[c].dtype) for c in columns):
        texts = [
            pc.fill_null(pc.cast(pa.array(records[c], from_pandas=True), pa.string()), "")
            for c in columns
        ]
        return pc.binary_join_element_wise(*texts, ",").to_pylist()
    rows = records[columns].astype(object).to_numpy().tolist()
    return [",".join("" if value is pd.NA else str(value) for value in row) for row in rows]


def _keyed(records: pd.DataFrame, schema: Schema, occurrences: np.ndarray) -> pd.DataFrame:
    columns = record_columns(schema)
    contents = _contents(records, columns)
    keys = [
        hashlib.sha256(f"{content}#{occurrence}".encode()).hexdigest()[:32]
        for content, occurrence in zip(contents, occurrences.tolist(), strict=True)
    ]
    del contents
    keyed = records[columns].copy()
    keyed.insert(0, record_key_column(schema), keys)
    return keyed


class _KeyedChunks:
    """Re-iterable: the chunks of a typed stream with their keys, given each row's occurrence
    number in the whole file (in file order)."""

    def __init__(self, records: ChunkStream, schema: Schema, occurrences: np.ndarray) -> None:
        self._records = records
        self._schema = schema
        self._occurrences = occurrences

    def __iter__(self) -> Iterator[pd.DataFrame]:
        offset = 0
        for chunk in self._records:
            numbers = self._occurrences[offset : offset + len(chunk)]
            offset += len(chunk)
            yield _keyed(chunk, self._schema, numbers)


def add_record_keys(records: Records, schema: Schema) -> Records:
    """Prepend a deterministic record key: a hash of the row's values and its occurrence number.

    Identical rows of one file stay separate records (the n-th copy of a row gets occurrence n,
    counted over the whole file, across chunks), and ingesting the same file again yields the
    same keys, so nothing is stored twice. For a stream, one pass hashes every row's content
    (8 bytes a row) and numbers the copies (``occurrence_numbers``); the keys are then computed
    lazily, chunk by chunk, while they are stored.
    """
    columns = record_columns(schema)
    if isinstance(records, pd.DataFrame):
        return _keyed(records, schema, occurrence_numbers(_row_hashes(records, columns)))
    total, exact = stream_size(records)
    hashes = [_row_hashes(chunk, columns) for chunk in records]
    occurrences = occurrence_numbers(np.concatenate(hashes) if hashes else np.empty(0, np.uint64))
    del hashes
    logger.info(
        "%s: %d rows repeat an earlier row of the file", records.source,
        int(np.count_nonzero(occurrences)),
    )  # fmt: skip
    return CountedStream(_KeyedChunks(records, schema, occurrences), records.source, total, exact)
