"""Datasets of the Dask inference engine: tables in, Parquet parts out, with Dask's own reader
(``dd.from_map``) and writer (``to_parquet``).

- ``DaskTableDataset`` loads a CSV file, a glob of CSV files or a Parquet folder (local paths or
  fsspec URLs such as ``s3://bucket/crawl/*.csv``) as a lazy Dask DataFrame: one partition per
  block of ``blocksize`` bytes of a CSV file (split at line ends; a compressed file is one
  block), read through the project's one CSV core as the pandas engine reads (every cell as
  text), or per row group of a Parquet file. Each partition knows where it comes from:
  ``partition.attrs`` holds ``source`` (the file) and ``row_offset`` (the data rows of that file
  before it). A CSV block after the first cannot know its offset without reading the blocks
  before it, which only an error needs: its ``row_offset`` is None and ``attrs["rows_before"]()``
  counts them then (so no file is read twice on a run that succeeds), and a bad line or cell is
  reported with its file, line and data row, as the pandas engine reports it.
- ``DaskParquetPartsDataset`` writes a Dask DataFrame with ``to_parquet`` (one part per
  partition) to a temporary folder beside the target, adds the manifest of
  ``network_security.datasets.output_paths`` and renames it to the target once complete: a failed
  run leaves no output, and an existing path is replaced only when it is an earlier output of
  this engine. The work runs on the run's Dask client (``network_security.dask_cluster`` starts
  it); progress is reported as partitions are written.

Kedro's ``DaskRunner`` recipe does not work with Kedro 1.x (kedro-org/kedro#5774): the pipeline
runs with the usual runner, and the work is parallelised inside the lazy collection the nodes
build, which the output dataset computes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Any

import dask
import dask.dataframe as dd
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.utils import infer_compression, read_block
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview

from network_security.datasets.csv_core import (
    csv_options,
    empty_file,
    header_names,
    open_text_csv,
    read_error,
)
from network_security.datasets.output_paths import earlier_output, replace_folder, write_manifest
from network_security.streams import Progress
from network_security.validator import InputValidationError, normalise_header

logger = logging.getLogger(__name__)

_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_MAGIC = ("*", "?", "[")
_ENGINE = "dask"
_READ_BLOCK = 1 << 26  # a partition's bytes are in memory: Arrow parses them in one block
DEFAULT_BLOCKSIZE = "8MiB"


@dataclass(frozen=True)
class _Part:
    """One partition to read: a block of a CSV file or a row group of a Parquet file."""

    path: str
    source: str  # the file as users name it
    written: tuple[str, ...]  # its column names as written
    names: tuple[str, ...]  # and as the one header rule makes them
    header: bytes = b""  # CSV: the header line, parsed before every block
    start: int = 0  # CSV: the block's first byte (the line after it, unless 0)
    length: int | None = None  # CSV: the block's bytes; None: the whole (compressed) file
    group: int | None = None  # Parquet: the row group
    row_offset: int | None = 0  # data rows of the file before it; None: not known yet


def _source_name(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The file as users name it: a local path, or a URL with its protocol."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


def _block_bytes(fs: fsspec.AbstractFileSystem, part: _Part) -> bytes:
    """The CSV text of a block, the header line first."""
    if part.length is None:
        with fs.open(part.path, "rb", compression=infer_compression(part.path)) as handle:
            return handle.read()
    with fs.open(part.path, "rb") as handle:
        data = read_block(handle, part.start, part.length, delimiter=b"\n")
    return data if part.start == 0 else part.header + data


def _parse_block(  # noqa: PLR0913
    fs: fsspec.AbstractFileSystem,
    data: bytes,
    part: _Part,
    options: dict[str, Any],
    lines_before: int | None,
    rows_before: int,
) -> pa.Table:
    """The block's rows, every cell as text; a read error names the file's line and data row
    (``lines_before`` None: counted now, from the blocks before)."""
    errors: list[Any] = []
    try:
        return open_text_csv(
            pa.BufferReader(data), options, list(part.written), _READ_BLOCK, errors
        ).read_all()
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        if lines_before is None:
            lines_before, rows_before = _before(fs, part, options)
        encoding = options["encoding"]
        raise read_error(exc, part.source, encoding, rows_before, errors, lines_before) from exc


def _before(fs: fsspec.AbstractFileSystem, part: _Part, options: dict[str, Any]) -> tuple[int, int]:
    """Lines and data rows of the file before the CSV block ``part``, read block by block
    (only when an error needs them; an error in an earlier block is raised as found there)."""
    lines = rows = 0
    for start in range(0, part.start, part.length or 1):
        block = replace(part, start=start)
        data = _block_bytes(fs, block)
        rows += _parse_block(fs, data, block, options, max(lines, 1), rows).num_rows
        lines += data.count(b"\n") - (part.header.count(b"\n") if start else 0)
    return lines, rows


def _read_part(
    part: _Part, fs: fsspec.AbstractFileSystem, order: list[str], options: dict[str, Any]
) -> pd.DataFrame:
    """Read one partition (``dd.from_map``): its columns in ``order`` (the run's first file's),
    its origin in ``attrs``."""
    if part.group is not None:
        with fs.open(part.path, "rb") as handle:
            table = pq.ParquetFile(handle).read_row_group(part.group, columns=list(part.written))
        frame = table.rename_columns(part.names).select(order).to_pandas(ignore_metadata=True)
    else:
        lines = 1 if part.start == 0 else None
        table = _parse_block(fs, _block_bytes(fs, part), part, options, lines, 0)
        frame = table.rename_columns(part.names).select(order).to_pandas()
    frame.attrs = {"source": part.source, "row_offset": part.row_offset}
    if part.row_offset is None:
        frame.attrs["rows_before"] = functools.partial(_rows_before, fs, part, options)
    return frame


def _rows_before(fs: fsspec.AbstractFileSystem, part: _Part, options: dict[str, Any]) -> int:
    return _before(fs, part, options)[1]


def _same_columns(columns: list[str], names: list[str], source: str, first: str) -> None:
    """Refuse a file whose columns differ from those of the run's first file."""
    if sorted(names) != sorted(columns):
        missing = sorted(set(columns) - set(names))
        extra = sorted(set(names) - set(columns))
        raise InputValidationError(
            f"{source}: its columns differ from those of {first} (missing {missing}, extra "
            f"{extra}). Every file of one run needs the same columns; score them in separate "
            "runs or align their headers.",
            column=(missing or extra)[0],
            problem="missing_column" if missing else "extra_column",
            source=source,
        )


class DaskTableDataset(AbstractDataset[dd.DataFrame, None]):
    """Rows of CSV files or a Parquet folder as a lazy Dask DataFrame (``dd.from_map``), each
    partition knowing its file and data rows.

    Example catalog entry::

        sites:
          type: network_security.datasets.dask_datasets.DaskTableDataset
          filepath: s3://crawl/2024-06-01/*.csv   # a file, a glob, or a Parquet folder
          file_format: auto                       # csv, parquet, or auto (by path)
          blocksize: 8MiB                         # CSV bytes per partition
          load_args: {encoding: utf-8}            # CSV: encoding, sep, quotechar
          credentials: {key: ..., secret: ...}    # fsspec storage options
    """

    def __init__(  # noqa: PLR0913
        self,
        filepath: str,
        file_format: str = "auto",
        blocksize: str | int = DEFAULT_BLOCKSIZE,
        load_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Declare the input; nothing is read until ``load``.

        Args:
            filepath: A CSV file, a glob of CSV files, a Parquet file or a folder of Parquet
                files; a local path or an fsspec URL.
            file_format: ``csv``, ``parquet`` or ``auto`` (a folder or a ``.parquet`` path is
                Parquet, anything else CSV).
            blocksize: Bytes of CSV per partition (``"8MiB"``, or a number); compressed CSV
                files are one partition each. A quoted cell holding a line break must not span
                two blocks (a larger blocksize helps).
            load_args: CSV reading options, as ``ChunkedCSVDataset`` takes them: ``encoding``,
                ``sep``, ``quotechar`` (every cell is read as text, as written).
            credentials: fsspec storage options holding secrets (merged into ``fs_args``).
            fs_args: Other fsspec storage options.
            metadata: Free-form metadata (kedro-viz layer, preview args).
        """
        if file_format not in ("auto", "csv", "parquet"):
            raise DatasetError(
                f"file_format must be 'auto', 'csv' or 'parquet'; got {file_format!r}."
            )
        self._filepath = str(filepath)
        self._format = file_format
        self._blocksize = dask.utils.parse_bytes(blocksize)
        if self._blocksize < 1:
            raise DatasetError(f"blocksize must be a positive size; got {blocksize!r}.")
        self._load_args = dict(load_args or {})
        self._options = csv_options(self._load_args)
        self._storage_options = {**deepcopy(fs_args or {}), **deepcopy(credentials or {})}
        self.metadata = metadata

    def _files(self) -> tuple[fsspec.AbstractFileSystem, list[str], str]:
        """The filesystem, the files to read (sorted) and their format."""
        fs, path = fsspec.core.url_to_fs(self._filepath, **self._storage_options)
        if any(char in path for char in _MAGIC):
            files = sorted(p for p in fs.glob(path) if fs.isfile(p))
            problem = "No file matches {}. Check the pattern"
        elif fs.isdir(path):
            files = sorted(
                p
                for p in fs.find(path)
                if p.lower().endswith(_PARQUET_SUFFIXES) or self._format == "csv"
            )
            problem = (
                f"The folder {{}} holds no Parquet file ({', '.join(_PARQUET_SUFFIXES)}). Point "
                "inference_input_path at a CSV file, a glob of CSV files or a folder of Parquet "
                "files"
            )
        else:
            files = [path] if fs.isfile(path) else []
            problem = "Input not found: {}. Check the path"
        if not files:
            raise DatasetError(
                problem.format(self._filepath)
                + "; relative paths are relative to the project directory."
            )
        file_format = self._format
        if file_format == "auto":
            parquet = fs.isdir(path) or files[0].lower().endswith(_PARQUET_SUFFIXES)
            file_format = "parquet" if parquet else "csv"
        return fs, files, file_format

    def _csv_parts(self, fs: fsspec.AbstractFileSystem, files: list[str]) -> list[_Part]:
        """The blocks of every CSV file, their headers checked (same columns in every file)."""
        parts: list[_Part] = []
        for path in files:
            source = _source_name(fs, path)
            with fs.open(path, "rb", compression=infer_compression(path)) as handle:
                header = handle.readline()
            if not header.strip():
                raise empty_file(source, "is empty (no header line)")
            errors: list[Any] = []
            try:
                written, names = header_names(
                    pa.BufferReader(header), self._options, source, 1 << 20, errors
                )
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                raise read_error(exc, source, self._options["encoding"], 0, errors) from exc
            if parts:
                _same_columns(list(parts[0].names), names, source, parts[0].source)
            part = _Part(path, source, tuple(written), tuple(names), header)
            if infer_compression(path) is not None:
                parts.append(part)
                continue
            blocks = range(0, max(fs.size(path), 1), self._blocksize)
            parts += [
                replace(part, start=s, length=self._blocksize, row_offset=None if s else 0)
                for s in blocks
            ]
        return parts

    def _parquet_parts(self, fs: fsspec.AbstractFileSystem, files: list[str]) -> list[_Part]:
        """The row groups of every Parquet file, with the data rows before each."""
        parts: list[_Part] = []
        first: tuple[str, list[str]] | None = None
        for path in files:
            source = _source_name(fs, path)
            with fs.open(path, "rb") as handle:
                metadata = pq.ParquetFile(handle).metadata
            schema = metadata.schema.to_arrow_schema()
            written = [n for n in schema.names if not n.startswith("__index_level_")]
            names = normalise_header(written, source)  # the one header rule, as for CSV
            if first is None:
                first = (source, names)
            _same_columns(first[1], names, source, first[0])
            offset = 0
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                if rows:
                    part = _Part(path, source, tuple(written), tuple(names), group=group)
                    parts.append(replace(part, row_offset=offset))
                offset += rows
        if not parts:
            raise InputValidationError(
                f"{self._filepath}: no data rows to score (the Parquet files hold no row). "
                "Add rows and run again.",
                problem="no_rows",
                rows_affected=0,
                source=self._filepath,
            )
        return parts

    def _meta(self, fs: fsspec.AbstractFileSystem, part: _Part) -> pd.DataFrame:
        """The empty frame of the columns (text for CSV, the file's types for Parquet)."""
        if part.group is None:
            empty = pa.table({name: pa.array([], pa.string()) for name in part.names})
        else:
            with fs.open(part.path, "rb") as handle:
                schema = pq.ParquetFile(handle).schema_arrow
            empty = schema.empty_table().select(list(part.written)).rename_columns(part.names)
        meta = empty.to_pandas(ignore_metadata=True)
        meta.attrs = {"source": self._filepath, "row_offset": 0}
        return meta

    def load(self) -> dd.DataFrame:
        """A lazy Dask DataFrame; each partition carries ``attrs`` source and row_offset."""
        fs, files, file_format = self._files()
        if file_format == "parquet":
            parts = self._parquet_parts(fs, files)
        else:
            parts = self._csv_parts(fs, files)
        meta = self._meta(fs, parts[0])
        with dask.config.set({"dataframe.convert-string": False}):  # text stays as pandas reads it
            frame = dd.from_map(
                _read_part,
                parts,
                args=[fs, list(meta.columns), self._options],
                meta=meta,
                label="read-table",
                enforce_metadata=False,
            )
        logger.info(
            "Reading %d %s file(s) from %s in %d partition(s)",
            len(files),
            file_format.upper(),
            self._filepath,
            frame.npartitions,
        )
        return frame

    def save(self, data: None) -> None:
        raise DatasetError(f"{type(self).__name__} is read-only: it is an input.")

    def _exists(self) -> bool:
        try:
            self._files()
        except DatasetError:
            return False
        return True

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "file_format": self._format,
            "blocksize": self._blocksize,
            "load_args": self._load_args,
        }

    def preview(self, nrows: int = 5) -> TablePreview:
        """The first ``nrows`` rows of the first partition, for kedro-viz."""
        fs, files, file_format = self._files()
        parts = (self._parquet_parts if file_format == "parquet" else self._csv_parts)(
            fs, files[:1]
        )
        frame = _read_part(parts[0], fs, list(parts[0].names), self._options).head(nrows)
        return TablePreview(frame.to_dict(orient="split"))


# ---------------------------------------------------------------------------- the output

_LISTENERS: dict[str, Callable[[int], None]] = {}
"""Progress callbacks of the saves under way, for partitions computed in this process."""


def _report(frame: pd.DataFrame, topic: str) -> pd.DataFrame:
    """Pass a partition on without its origin (``attrs``, not part of the output), reporting its
    rows to the save's progress (from a worker, as a ``distributed`` event its client receives).
    """
    frame = frame.copy(deep=False)
    frame.attrs = {}
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # computed here, not on a distributed worker
        listener = _LISTENERS.get(topic)
        if listener is not None:
            listener(len(frame))
    else:
        worker.log_event(topic, len(frame))
    return frame


@contextlib.contextmanager
def _progress_events(progress: Progress) -> Iterator[str]:
    """A topic whose events (rows of a partition) update ``progress`` while the block runs."""
    topic = f"network-security-progress-{uuid.uuid4().hex}"
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed client: partitions computed here
        client = None
    _LISTENERS[topic] = progress.update
    if client is not None:
        client.subscribe_topic(topic, lambda event: progress.update(event[1]))
    try:
        yield topic
    finally:
        _LISTENERS.pop(topic, None)
        if client is not None:
            client.unsubscribe_topic(topic)


def _part_name(number: int) -> str:
    return f"part.{number:05d}.parquet"  # zero-padded: the names sort as the partitions


class DaskParquetPartsDataset(AbstractDataset[dd.DataFrame, dd.DataFrame]):
    """A folder of Parquet parts written with Dask's ``to_parquet``, atomically, replacing only
    an earlier output of its own.

    Example catalog entry::

        predictions:
          type: network_security.datasets.dask_datasets.DaskParquetPartsDataset
          filepath: data/07_model_output/predictions_parquet   # or s3://bucket/out/
          save_args: {compression: zstd}                       # more to_parquet arguments
    """

    def __init__(  # noqa: PLR0913
        self,
        filepath: str,
        save_args: dict[str, Any] | None = None,
        load_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Declare the output folder; nothing is written until ``save``.

        Args:
            filepath: The folder of Parquet parts (a local path or an fsspec URL, on storage
                every worker can write to).
            save_args: Keyword arguments of ``dask.dataframe.to_parquet`` (``write_index``
                False by default; the part names and the folder are this dataset's).
            load_args: Keyword arguments of ``dask.dataframe.read_parquet``.
            credentials: fsspec storage options holding secrets (merged into ``fs_args``).
            fs_args: Other fsspec storage options.
            metadata: Free-form metadata (kedro-viz layer, preview args).
        """
        self._filepath = str(filepath)
        self._save_args = {"write_index": False, **(save_args or {})}
        self._load_args = dict(load_args or {})
        self._storage_options = {**deepcopy(fs_args or {}), **deepcopy(credentials or {})}
        self.metadata = metadata

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, path = fsspec.core.url_to_fs(self._filepath, **self._storage_options)
        return fs, path.rstrip("/")

    def save(self, data: dd.DataFrame) -> None:
        """Compute ``data`` (on the run's Dask client), one part per partition, into a
        temporary folder; add the manifest; move it to the target."""
        if not isinstance(data, dd.DataFrame):
            raise DatasetError(
                f"{type(self).__name__} saves a Dask DataFrame; got {type(data).__name__}. "
                "Run with --params inference_engine=dask, or use the pandas engine's output."
            )
        fs, target = self._fs()
        earlier_output(fs, target, self._filepath, _ENGINE)  # refused before any work
        parent, _, name = target.rpartition("/")
        temporary = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.partial"
        progress = Progress("Wrote", self._filepath, total_steps=data.npartitions, min_interval=5)
        try:
            with _progress_events(progress) as topic:
                reported = data.map_partitions(
                    _report, topic, meta=data._meta, enforce_metadata=False
                )
                reported.to_parquet(
                    fs.unstrip_protocol(temporary),
                    storage_options=self._storage_options or None,
                    name_function=_part_name,
                    **self._save_args,
                )
            parts = self._rows_per_part(fs, temporary)
            if sum(parts.values()) == 0:
                raise InputValidationError(
                    "No data rows to score: every input file is empty below its header. Add "
                    "one row per site and run again.",
                    problem="no_rows",
                    rows_affected=0,
                )
            write_manifest(fs, temporary, _ENGINE, parts)  # last: the folder is complete
            replace_folder(fs, temporary, target, self._filepath, _ENGINE)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.rm(temporary, recursive=True)
            raise
        progress.finish(sum(parts.values()))
        logger.info("Wrote %d part(s) to %s", len(parts), self._filepath)

    @staticmethod
    def _rows_per_part(fs: fsspec.AbstractFileSystem, folder: str) -> dict[str, int]:
        """The parts written (file name -> rows, from their footers)."""
        parts = {}
        for path in sorted(fs.ls(folder, detail=False)):
            name = path.rstrip("/").rpartition("/")[2]
            if name.endswith(".parquet"):
                with fs.open(path, "rb") as handle:
                    parts[name] = pq.ParquetFile(handle).metadata.num_rows
        return parts

    def load(self) -> dd.DataFrame:
        """The parts as a lazy Dask DataFrame (in part order)."""
        fs, target = self._fs()
        if not fs.isdir(target):
            raise DatasetError(f"No Parquet parts at {self._filepath}: run the inference first.")
        return dd.read_parquet(
            self._filepath, storage_options=self._storage_options or None, **self._load_args
        )

    def _exists(self) -> bool:
        fs, target = self._fs()
        return fs.isdir(target)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "save_args": self._save_args}

    def preview(self, nrows: int = 10) -> TablePreview:
        """The first ``nrows`` rows of the first part, for kedro-viz."""
        fs, target = self._fs()
        first = sorted(p for p in fs.ls(target, detail=False) if p.endswith(".parquet"))[0]
        with fs.open(first, "rb") as handle:
            frame = pd.read_parquet(handle).head(nrows)
        return TablePreview(frame.to_dict(orient="split"))
