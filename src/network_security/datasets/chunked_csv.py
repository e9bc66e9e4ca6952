"""``ChunkedCSVDataset``: a local CSV file read as a lazy stream of chunks and written atomically.

``load`` returns a ``ChunkStream`` (nothing is read until it is iterated; each iteration reads
the file again) of ``chunksize`` rows per chunk, read through the one CSV core
(``csv_core``: Arrow's reader, every cell as text, errors naming the file, line and data row),
so a file of any size is scored with bounded memory. The file is first checked to exist, be
non-empty and be text, so those problems are reported before anything is scored.

``save`` takes a DataFrame or any iterable of DataFrames and writes it chunk by chunk (Arrow's
CSV writer; text quoted, numbers not; formula-like text cells neutralised for spreadsheets,
``safe_csv``) to a temporary file that replaces the target only once complete: a failed stream
leaves the target as it was. A folder at the target's path is refused (``OutputPathError``).

``read_csv_bytes`` reads a CSV held in memory (the service's uploads) with the same reader,
checks and messages, so an upload and a file are judged alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview
from pydantic import ByteSize, TypeAdapter, ValidationError

from network_security.datasets.csv_core import (
    LOAD_ARGS,
    SNIFF_BYTES,
    check_text,
    compression,
    csv_options,
    empty_file,
    header_names,
    open_text_csv,
    read_error,
    text_stream,
)
from network_security.datasets.output_paths import refuse_folder
from network_security.datasets.safe_csv import neutralise_formulas
from network_security.streams import ChunkStream, CountedStream
from network_security.validator import InputValidationError

logger = logging.getLogger(__name__)

_MIN_BLOCK, _MAX_BLOCK = 1 << 20, 256 << 20


def _parse_bytes(size: int | str | None) -> int | None:
    """``"128KiB"``, ``"1MiB"``, ``"65536"`` or a number of bytes (at least 4 KiB), or None."""
    if size is None:
        return None
    try:
        value = int(TypeAdapter(ByteSize).validate_python(size))
    except ValidationError:
        value = 0
    if value < 4096:
        raise DatasetError(f"block_size must be at least 4KiB (e.g. '128KiB'); got {size!r}.")
    return value


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _CSVChunks:
    """Re-iterable chunks of one CSV file (or of CSV bytes held in memory, named ``source``),
    read through the CSV core."""

    def __init__(
        self,
        path: Path | bytes,
        chunksize: int | None,
        options: dict[str, Any],
        block_size: int | None = None,
        source: str | None = None,
    ) -> None:
        self._path = path
        self._name = source or str(path)
        self._chunksize = chunksize
        self._options = options
        self._fixed_block_size = block_size

    def _source(self) -> Any:
        """The file as Arrow reads it (decompressed on the fly when it is compressed)."""
        if isinstance(self._path, bytes):
            return pa.BufferReader(self._path)
        return text_stream(pa.OSFile(str(self._path)), self._path.name)

    def _block_size(self) -> int:
        """Bytes per block read: as configured, else about ``chunksize`` rows (from the length of
        the first lines)."""
        if self._fixed_block_size is not None:
            return self._fixed_block_size
        if isinstance(self._path, bytes):
            head = self._path[:SNIFF_BYTES]
        else:
            with self._path.open("rb") as handle:
                head = handle.read(SNIFF_BYTES)
        lines = max(head.count(b"\n"), 1)
        rows = self._chunksize or 1_000_000
        return int(min(max(len(head) / lines * rows * 1.1, _MIN_BLOCK), _MAX_BLOCK))

    def header(self, errors: list[Any]) -> tuple[list[str], list[str]]:
        """The column names as written and as the one header rule makes them."""
        block = min(_MIN_BLOCK, self._fixed_block_size or _MIN_BLOCK)
        return header_names(self._source(), self._options, self._name, block, errors)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        rows = 0
        errors: list[Any] = []
        try:
            names, clean = self.header(errors)
            reader = open_text_csv(self._source(), self._options, names, self._block_size(), errors)
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            size = self._chunksize
            for batch in reader:
                pending.append(batch)
                pending_rows += batch.num_rows
                while size is not None and pending_rows >= size:
                    table = pa.Table.from_batches(pending)
                    chunk, rest = table.slice(0, size), table.slice(size)
                    pending, pending_rows = rest.to_batches(), rest.num_rows
                    rows += size
                    yield chunk.rename_columns(clean).to_pandas()
            if pending_rows or (rows == 0 and size is None):
                table = pa.Table.from_batches(pending, schema=reader.schema)
                rows += table.num_rows
                yield table.rename_columns(clean).to_pandas()
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise read_error(exc, self._name, self._options["encoding"], rows, errors) from exc


def _arrow_table(chunk: pd.DataFrame) -> pa.Table:
    """The chunk as an Arrow table for the writer; a column of mixed Python objects is written
    as the text of each value (empty for a missing one)."""
    try:
        return pa.Table.from_pandas(chunk, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    arrays = []
    for name in chunk.columns:
        column = chunk[name]
        try:
            arrays.append(pa.array(column, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            texts = ["" if pd.isna(value) else str(value) for value in column.tolist()]
            arrays.append(pa.array(texts, pa.string()))
    return pa.Table.from_arrays(arrays, names=[str(c) for c in chunk.columns])


def _write_chunks(chunks: Iterable[pd.DataFrame], stream: Any, target: Path) -> int:
    """Write the chunks as CSV (header once, formula-like cells neutralised); return the rows."""
    rows = 0
    columns: list[str] | None = None
    for number, chunk in enumerate(chunks):
        if not isinstance(chunk, pd.DataFrame):
            raise DatasetError(
                f"Chunk {number} to save to {target} is a {type(chunk).__name__}, not a DataFrame."
            )
        if columns is None:
            columns = [str(c) for c in chunk.columns]
        elif [str(c) for c in chunk.columns] != columns:
            raise DatasetError(
                f"Chunk {number} to save to {target} has columns {list(chunk.columns)}, unlike "
                f"the first chunk's {columns}."
            )
        pa_csv.write_csv(
            _arrow_table(neutralise_formulas(chunk)),
            stream,
            write_options=pa_csv.WriteOptions(include_header=number == 0),
        )
        rows += len(chunk)
    if columns is None:
        raise DatasetError(f"Nothing to save to {target}: the stream had no chunk.")
    return rows


class ChunkedCSVDataset(AbstractDataset[Any, Any]):
    """A local CSV file: loads a lazy ``ChunkStream`` of text chunks; saves chunks atomically.

    Example catalog entry::

        inference_batch:
          type: network_security.datasets.ChunkedCSVDataset
          filepath: data/01_raw/new_batch.csv
          chunksize: 100000          # rows per chunk; null loads one whole DataFrame
          load_args:                 # optional: encoding (utf-8), sep (","), quotechar ('"')
            encoding: utf-8
    """

    def __init__(
        self,
        filepath: str,
        chunksize: int | None = 100_000,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        block_size: int | str | None = None,
    ) -> None:
        """Declare the file; nothing is read or written until ``load`` or ``save``.

        Args:
            filepath: Local path of the CSV file (relative paths: to the working directory,
                the project root under ``kedro run``). ``.gz``, ``.bz2``, ``.xz`` and ``.zst``
                files are decompressed while read.
            chunksize: Rows per chunk. ``None`` makes ``load`` return one DataFrame.
            load_args: ``encoding``, ``sep`` (or ``delimiter``), ``quotechar``. For
                compatibility with pandas-style entries, ``dtype: str``/``object`` and
                ``keep_default_na: false`` are accepted: they are what it always does.
            save_args: ``index: false`` only (the index is never written).
            metadata: Free-form metadata (kedro-viz layer, preview args).
            block_size: Bytes per block Arrow reads (``"128KiB"`` or a number); by default
                about ``chunksize`` rows, at least 1 MiB. Arrow's streaming reader holds a few
                dozen blocks at a time, so a small block bounds the memory of reading (the
                ingestion's catalog entry sets one).
        """
        if chunksize is not None and int(chunksize) < 1:
            raise DatasetError(f"chunksize must be a positive number of rows; got {chunksize}.")
        self._filepath = Path(filepath)
        self._chunksize = int(chunksize) if chunksize is not None else None
        self._block_size = _parse_bytes(block_size)
        self._load_args = dict(load_args or {})
        self._options = csv_options(self._load_args)
        self._save_args = dict(save_args or {})
        if self._save_args.pop("index", False) or self._save_args:
            raise DatasetError(
                f"Unsupported save_args {self._save_args or {'index': True}} for "
                "ChunkedCSVDataset: it writes the columns (never the index) with Arrow's CSV "
                "writer, which takes no options here."
            )
        self.metadata = metadata

    # -------------------------------------------------------------------- load

    def _check_file(self) -> None:
        """Fail early, with a message saying what to do, on a missing, empty or binary file."""
        path = self._filepath
        source = str(path)
        if not path.is_file():
            raise DatasetError(
                f"CSV file not found: {source} (absolute: {path.absolute()}). Check the path; "
                "relative paths are relative to the project directory."
            )
        if path.stat().st_size == 0:
            raise empty_file(source, "is empty (0 bytes)")
        if compression(path.name):
            return  # decompressed while read; read errors are reported while reading
        with path.open("rb") as handle:
            check_text(handle.read(SNIFF_BYTES), source, self._options["encoding"])

    def _estimate_rows(self) -> int | None:
        """Data rows, estimated from the file size and the lines of its first 64 KiB."""
        if compression(self._filepath.name):
            return None
        size = self._filepath.stat().st_size
        with self._filepath.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
        if not head:
            return None
        if size <= len(head):  # the whole file: count its lines (the header is not a row)
            return max(len(head.splitlines()) - 1, 0)
        lines = head.count(b"\n")
        return max(round(size * lines / len(head)) - 1, 0)

    def load(self) -> ChunkStream | pd.DataFrame:
        """The rows as a lazy ``ChunkStream`` (or one DataFrame when ``chunksize`` is None).

        The stream is a ``CountedStream`` whose ``total_rows`` estimates the data rows from the
        file size, for progress reports (``exact`` is False).
        """
        self._check_file()
        source = str(self._filepath)
        chunks = _CSVChunks(self._filepath, self._chunksize, self._options, self._block_size)
        if self._chunksize is None:
            return next(iter(chunks))
        return CountedStream(chunks, source, total_rows=self._estimate_rows(), exact=False)

    # -------------------------------------------------------------------- save

    def save(self, data: pd.DataFrame | Iterable[pd.DataFrame]) -> None:
        """Write a DataFrame or an iterable of DataFrame chunks, atomically; formula-like text
        cells are neutralised for spreadsheets."""
        if isinstance(data, pd.DataFrame):
            chunks: Iterable[pd.DataFrame] = [data]
        elif isinstance(data, Iterable) and not isinstance(data, str | bytes | dict):
            chunks = data
        else:
            raise DatasetError(
                f"{type(self).__name__} saves a DataFrame or an iterable of DataFrames; got "
                f"{type(data).__name__}."
            )
        target = self._filepath
        refuse_folder(target, "pandas")
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
        )
        os.close(handle)
        try:
            with pa.OSFile(temporary, "wb") as stream:
                rows = _write_chunks(chunks, stream, target)
            os.chmod(temporary, 0o666 & ~_current_umask())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        logger.info("Wrote %d row(s) to %s", rows, target)

    # -------------------------------------------------------------------- other

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "chunksize": self._chunksize,
            "block_size": self._block_size,
            "load_args": self._load_args,
            "save_args": self._save_args,
        }

    def preview(self, nrows: int = 5) -> TablePreview:
        """The first ``nrows`` rows, for kedro-viz."""
        self._check_file()
        chunks = _CSVChunks(self._filepath, max(int(nrows), 1), self._options)
        frame = next(iter(chunks), pd.DataFrame()).head(nrows)
        return TablePreview(frame.to_dict(orient="split"))


# The header's fields as the reader splits them with the default options (LOAD_ARGS): a quote
# opens a quoted field only at the start of a field, "" is a quote inside one, a quoted field
# may hold line ends. Arrow takes seconds to set up tens of thousands of columns, so their
# number is counted first, in one pass (possessive patterns: no byte is read twice).
_HEADER_START = re.compile(rb"(?:\xef\xbb\xbf)?[\r\n]*+")
_QUOTED_FIELD = re.compile(rb'"(?:[^"]++|"")*+"?')
_LINE_END_OR_QUOTED_FIELD = re.compile(rb'[\r\n]|,"')


def _header_width(data: bytes, limit: int) -> tuple[int, bool]:
    """The number of fields of the header line, and whether it was counted to the line's end
    (counting stops after ``limit`` quoted fields, each one more field)."""
    position, width = _HEADER_START.match(data).end(), 1
    if data.startswith(b'"', position):
        position = _QUOTED_FIELD.match(data, position).end()
    for _ in range(limit + 1):
        found = _LINE_END_OR_QUOTED_FIELD.search(data, position)
        width += data.count(b",", position, found.start() if found else len(data))
        if found is None or found.group() != b',"':
            return width, True
        width += 1
        position = _QUOTED_FIELD.match(data, found.start() + 1).end()
    return width, False


def _too_many_columns(
    source: str, width: int, exact: bool, max_columns: int
) -> InputValidationError:
    counted = f"{width}" if exact else f"more than {max_columns}"
    return InputValidationError(
        f"{source} has {counted} columns; at most {max_columns} are read. Remove the columns "
        "the model does not need and run again.",
        problem="too_many_columns",
        source=source,
    )


def read_csv_bytes(
    data: bytes, source: str, max_rows: int, max_columns: int | None = None
) -> pd.DataFrame:
    """CSV bytes held in memory (an upload) read as ``ChunkedCSVDataset`` reads a file: the
    same checks, header rule and messages, every cell as text; at most ``max_rows`` + 1 data
    rows are read (more than ``max_rows`` is for the caller to refuse), and a header of more
    than ``max_columns`` fields is refused before it is parsed.

    Raises:
        InputValidationError: For an empty, binary, non-UTF-8 or malformed CSV, a bad header,
            or too many columns (``problem="too_many_columns"``).
    """
    if not data:
        raise empty_file(source, "is empty (0 bytes)")
    check_text(data[:SNIFF_BYTES], source, LOAD_ARGS["encoding"])
    if max_columns is not None:
        width, exact = _header_width(data, max_columns)
        if width > max_columns:
            raise _too_many_columns(source, width, exact, max_columns)
    chunks = _CSVChunks(data, max_rows + 1, dict(LOAD_ARGS), source=source)
    first = next(iter(chunks), None)
    frame = first if first is not None else pd.DataFrame(columns=chunks.header([])[1])
    if max_columns is not None and len(frame.columns) > max_columns:  # as the reader split it
        raise _too_many_columns(source, len(frame.columns), True, max_columns)
    return frame
