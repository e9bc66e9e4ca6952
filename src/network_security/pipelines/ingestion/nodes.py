"""Ingestion nodes: raw CSV text -> typed records with a deterministic record key.

The raw CSV arrives as one DataFrame or as a lazy stream of chunks (``ChunkStream``, from the
``ChunkedCSVDataset``), so a file of any size is ingested in bounded memory. For a stream:

- ``type_records`` reads the whole file once and checks every cell before anything is stored
  (a file with a bad cell stores nothing), then returns a lazy stream that types the chunks
  again while they are being stored;
- ``add_record_keys`` keys the chunks lazily, numbering identical rows across chunk boundaries
  exactly as it would number them in the whole file.
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
from network_security.scoring import ChunkStream
from network_security.streams import CountedStream, Progress, stream_size
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


class RepeatedRows:
    """Finds, in one pass with bounded memory, the row contents that occur more than once.

    A Bloom filter of the row hashes seen so far tells a new row from one that may have been
    seen; only the latter are kept: the exact repeats, plus false positives. Sized by
    ``for_rows`` at 16 bits per row (4 probes: about 2 false positives per 1,000 distinct rows)
    and at most 16 MiB (beyond about 8 million distinct rows the false positives grow), so
    numbering copies needs a counter only for the rows that repeat, not for every distinct row.
    """

    MAX_BITS = 2**27

    def __init__(self, bits: int = 2**20, probes: int = 4) -> None:
        bits = max(64, int(bits) // 64 * 64)
        self._bits = np.zeros(bits // 8, np.uint8)
        self._size = np.uint64(bits)
        self._probes = probes
        self._found: list[np.ndarray] = []

    @classmethod
    def for_rows(cls, rows: int | None) -> RepeatedRows:
        """A finder sized for ``rows`` rows (16 bits each, between 1 Mibit and 128 Mibit)."""
        return cls(bits=min(max(16 * (rows or 0), 2**20), cls.MAX_BITS))

    def _positions(self, hashes: np.ndarray) -> np.ndarray:
        low = hashes & np.uint64(0xFFFFFFFF)
        step = (hashes >> np.uint64(32)) | np.uint64(1)
        return np.stack(
            [(low + np.uint64(i) * step) % self._size for i in range(self._probes)], axis=1
        )

    def add(self, hashes: np.ndarray) -> None:
        """Note the row hashes of one chunk."""
        distinct, copies = np.unique(hashes, return_counts=True)
        positions = self._positions(distinct)
        seen = np.all(self._bits[positions >> np.uint64(3)] & (1 << (positions & 7)) != 0, axis=1)
        repeated = distinct[seen | (copies > 1)]
        if len(repeated):
            self._found.append(repeated)
        flat = positions.ravel()
        np.bitwise_or.at(self._bits, flat >> np.uint64(3), (1 << (flat & 7)).astype(np.uint8))

    def result(self) -> np.ndarray:
        """The sorted hashes of the contents that (may) occur more than once."""
        if not self._found:
            return np.empty(0, np.uint64)
        return np.unique(np.concatenate(self._found))


class OccurrenceCounter:
    """How often each row content has been seen so far, across the chunks of one file.

    Holds the sorted hashes of the contents seen and their counts (12 bytes per content). Given
    ``repeated`` (from ``RepeatedRows``), it counts only those contents: any other row occurs
    once in the file, so its occurrence number is 0, and memory stays bounded by the number of
    distinct repeated rows instead of growing with the file.
    """

    def __init__(self, repeated: np.ndarray | None = None) -> None:
        self._repeated = repeated
        self._hashes = np.empty(0, np.uint64)
        self._counts = np.empty(0, np.uint32)

    def __len__(self) -> int:
        return len(self._hashes)

    def number(self, hashes: np.ndarray) -> np.ndarray:
        """For each row hash, how many times the same content occurred before."""
        occurrence = np.zeros(len(hashes), np.int64)
        if self._repeated is None:
            counted = np.arange(len(hashes))
        elif len(self._repeated) == 0:
            return occurrence
        else:
            where = np.minimum(np.searchsorted(self._repeated, hashes), len(self._repeated) - 1)
            counted = np.flatnonzero(self._repeated[where] == hashes)
        if len(counted):
            occurrence[counted] = self._number(hashes[counted])
        return occurrence

    def _number(self, hashes: np.ndarray) -> np.ndarray:
        n = len(hashes)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        starts_group = np.ones(n, bool)
        starts_group[1:] = ordered[1:] != ordered[:-1]
        group_starts = np.flatnonzero(starts_group)
        group = np.cumsum(starts_group) - 1
        distinct = ordered[group_starts]
        copies = np.diff(np.append(group_starts, n)).astype(np.uint32)

        position = np.searchsorted(self._hashes, distinct)
        known = position < len(self._hashes)
        known[known] = self._hashes[position[known]] == distinct[known]
        before = np.zeros(len(distinct), np.int64)
        before[known] = self._counts[position[known]]

        occurrence = np.empty(n, np.int64)
        occurrence[order] = before[group] + (np.arange(n) - group_starts[group])

        self._counts[position[known]] += copies[known]
        fresh = ~known
        self._hashes = np.insert(self._hashes, position[fresh], distinct[fresh])
        self._counts = np.insert(self._counts, position[fresh], copies[fresh])
        return occurrence


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


def _keyed(records: pd.DataFrame, schema: Schema, counter: OccurrenceCounter) -> pd.DataFrame:
    columns = record_columns(schema)
    contents = _contents(records, columns)
    occurrences = counter.number(_row_hashes(records, columns)).tolist()
    keys = [
        hashlib.sha256(f"{content}#{occurrence}".encode()).hexdigest()[:32]
        for content, occurrence in zip(contents, occurrences, strict=True)
    ]
    del contents
    keyed = records[columns].copy()
    keyed.insert(0, record_key_column(schema), keys)
    return keyed


class _KeyedChunks:
    """Re-iterable: the chunks of a typed stream with their keys (a fresh count per pass)."""

    def __init__(self, records: ChunkStream, schema: Schema, repeated: np.ndarray) -> None:
        self._records = records
        self._schema = schema
        self._repeated = repeated

    def __iter__(self) -> Iterator[pd.DataFrame]:
        counter = OccurrenceCounter(self._repeated)
        for chunk in self._records:
            yield _keyed(chunk, self._schema, counter)


def add_record_keys(records: Records, schema: Schema) -> Records:
    """Prepend a deterministic record key: a hash of the row's values and its occurrence number.

    Identical rows of one file stay separate records (the n-th copy of a row gets occurrence n,
    counted over the whole file, across chunks), and ingesting the same file again yields the
    same keys, so nothing is stored twice. For a stream, one pass finds which rows repeat
    (``RepeatedRows``), then the keys are computed lazily, chunk by chunk, while they are stored.
    """
    if isinstance(records, pd.DataFrame):
        return _keyed(records, schema, OccurrenceCounter())
    columns = record_columns(schema)
    total, exact = stream_size(records)
    finder = RepeatedRows.for_rows(total)
    for chunk in records:
        finder.add(_row_hashes(chunk, columns))
    repeated = finder.result()
    logger.info("%s: %d distinct row contents occur more than once", records.source, len(repeated))
    return CountedStream(_KeyedChunks(records, schema, repeated), records.source, total, exact)
