"""Datasets of the Dask inference engine, on Dask's own reader (``dd.from_map``) and writer
(``to_parquet``); the run's cluster is ``network_security.dask_cluster``'s.

- ``DaskTableDataset``: a CSV file, a glob of CSV files or a Parquet folder (local or fsspec
  URLs) as a lazy Dask DataFrame, one partition per ``blocksize`` bytes of CSV (split at line
  ends, read by the one CSV core as the pandas engine reads; a compressed file is one block) or
  per Parquet row group. ``partition.attrs`` names the ``source`` file and its ``row_offset``
  (data rows before it). A CSV block after the first does not know its offset until the blocks
  before it are read, which only an error needs: ``row_offset`` is None and
  ``attrs["rows_before"]()`` counts them, so errors name the file's line and data row and a run
  that succeeds reads every byte once.
- ``DaskParquetPartsDataset``: ``to_parquet`` (one part per partition) into a temporary folder,
  the manifest of ``output_paths`` last, then renamed to the target, replacing only an earlier
  output of this engine. Progress is reported as partitions are written.

Kedro's ``DaskRunner`` recipe does not work with Kedro 1.x (kedro-org/kedro#5774): the usual
runner runs the nodes, which build a lazy collection that the output dataset computes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, replace
from typing import Any

import dask
import dask.dataframe as dd
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.utils import read_block
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview

from network_security.datasets import csv_core
from network_security.datasets.output_paths import earlier_output, replace_folder, write_manifest
from network_security.streams import Progress
from network_security.validator import InputValidationError, normalise_header

logger = logging.getLogger(__name__)

_PARQUET = (".parquet", ".pq", ".parq")
_ENGINE = "dask"


@dataclass(frozen=True)
class _Part:
    """One partition: a block of a CSV file (``length`` None: the whole, compressed, file) or a
    Parquet row group; ``written``/``names``: the file's columns as written and as read."""

    path: str
    source: str
    written: tuple[str, ...]
    names: tuple[str, ...]
    header: bytes = b""
    start: int = 0
    length: int | None = None
    group: int | None = None
    row_offset: int | None = 0


@dataclass(frozen=True)
class _Reader:
    """Reads partitions (``dd.from_map``'s function), their columns in ``order``."""

    fs: fsspec.AbstractFileSystem
    options: dict[str, Any]
    order: tuple[str, ...]

    def __call__(self, part: _Part) -> pd.DataFrame:
        if part.group is not None:
            with self.fs.open(part.path, "rb") as handle:
                table = pq.ParquetFile(handle).read_row_group(part.group, list(part.written))
        else:
            table = self._parse(self._bytes(part), part, 1 if part.start == 0 else None, 0)
        table = table.rename_columns(part.names).select(list(self.order))
        frame = table.to_pandas(ignore_metadata=True)
        frame.attrs = {"source": part.source, "row_offset": part.row_offset}
        if part.row_offset is None:
            frame.attrs["rows_before"] = functools.partial(self.rows_before, part)
        return frame

    def _bytes(self, part: _Part) -> bytes:
        """The CSV text of a block, the header line first."""
        with self.fs.open(part.path, "rb") as handle:
            if part.length is None:
                return csv_core.text_stream(handle, part.path).read()
            data = read_block(handle, part.start, part.length, delimiter=b"\n")
        return data if part.start == 0 else part.header + data

    def _parse(self, data: bytes, part: _Part, lines: int | None, rows: int) -> pa.Table:
        """A block's rows as text; errors name the file's line (``lines`` before the block's
        first data line, None: counted now) and data row (``rows`` before it)."""
        errors: list[Any] = []
        block = max(len(data), 1 << 20)  # the bytes are in memory: one Arrow block
        try:
            reader = csv_core.open_text_csv(
                pa.BufferReader(data), self.options, list(part.written), block, errors
            )
            return reader.read_all()
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if lines is None:
                lines, rows = self._before(part)
            encoding = self.options["encoding"]
            raise csv_core.read_error(exc, part.source, encoding, rows, errors, lines) from exc

    def _before(self, part: _Part) -> tuple[int, int]:
        """Lines and data rows of the file before a block, read block by block (an error in an
        earlier block is raised as found there)."""
        lines = rows = 0
        for start in range(0, part.start, part.length or 1):
            data = self._bytes(replace(part, start=start))
            rows += self._parse(data, replace(part, start=start), max(lines, 1), rows).num_rows
            lines += data.count(b"\n") - (part.header.count(b"\n") if start else 0)
        return lines, rows

    def rows_before(self, part: _Part) -> int:
        """Data rows of the file before a block."""
        return self._before(part)[1]


def _source_name(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The file as users name it: a local path, or a URL with its protocol."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


def _same_columns(first: _Part, names: list[str], source: str) -> None:
    """Refuse a file whose columns differ from those of the run's first file."""
    missing = sorted(set(first.names) - set(names))
    extra = sorted(set(names) - set(first.names))
    if missing or extra:
        raise InputValidationError(
            f"{source}: its columns differ from those of {first.source} (missing {missing}, "
            f"extra {extra}). Every file of one run needs the same columns; score them in "
            "separate runs or align their headers.",
            column=(missing or extra)[0],
            problem="missing_column" if missing else "extra_column",
            source=source,
        )


class DaskTableDataset(AbstractDataset[dd.DataFrame, None]):
    """Rows of CSV files or a Parquet folder as a lazy Dask DataFrame.

    Example catalog entry::

        sites:
          type: network_security.datasets.dask_datasets.DaskTableDataset
          filepath: s3://crawl/2024-06-01/*.csv   # a file, a glob, or a Parquet folder
          file_format: auto      # csv, parquet, or auto (a folder or .parquet path: Parquet)
          blocksize: 8MiB        # CSV bytes per partition (a quoted line break must not span two)
          load_args: {encoding: utf-8}            # CSV: encoding, sep, quotechar
          credentials: {key: ..., secret: ...}    # fsspec storage options (and fs_args)
    """

    def __init__(  # noqa: PLR0913
        self,
        filepath: str,
        file_format: str = "auto",
        blocksize: str | int = "8MiB",
        load_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if file_format not in ("auto", "csv", "parquet"):
            raise DatasetError(f"file_format must be auto, csv or parquet; got {file_format!r}.")
        self._filepath = str(filepath)
        self._format = file_format
        self._blocksize = dask.utils.parse_bytes(blocksize)
        if self._blocksize < 1:
            raise DatasetError(f"blocksize must be a positive size; got {blocksize!r}.")
        self._load_args = dict(load_args or {})
        self._options = csv_core.csv_options(self._load_args)
        self._storage_options = {**deepcopy(fs_args or {}), **deepcopy(credentials or {})}
        self.metadata = metadata

    def _files(self) -> tuple[fsspec.AbstractFileSystem, list[str], bool]:
        """The filesystem, the files to read (sorted) and whether they are Parquet."""
        fs, path = fsspec.core.url_to_fs(self._filepath, **self._storage_options)
        if any(char in path for char in "*?["):
            files = sorted(p for p in fs.glob(path) if fs.isfile(p))
            problem = "No file matches {}. Check the pattern"
        elif fs.isdir(path):
            csv = self._format == "csv"
            files = sorted(p for p in fs.find(path) if csv or p.lower().endswith(_PARQUET))
            problem = (
                f"The folder {{}} holds no Parquet file ({', '.join(_PARQUET)}). Point "
                "inference_input_path at a CSV file, a glob of CSV files or a Parquet folder"
            )
        else:
            files = [path] if fs.isfile(path) else []
            problem = "Input not found: {}. Check the path"
        if not files:
            raise DatasetError(
                problem.format(self._filepath) + "; relative paths are relative to the project."
            )
        auto = fs.isdir(path) or files[0].lower().endswith(_PARQUET)
        return fs, files, self._format == "parquet" or (self._format == "auto" and auto)

    def _csv_parts(self, fs: fsspec.AbstractFileSystem, files: list[str]) -> list[_Part]:
        """The blocks of every CSV file, the headers read (the same columns in every file)."""
        parts: list[_Part] = []
        for path in files:
            source = _source_name(fs, path)
            with fs.open(path, "rb") as handle:
                header = csv_core.first_line(csv_core.text_stream(handle, path))
            if not header.strip():
                raise csv_core.empty_file(source, "is empty (no header line)")
            errors: list[Any] = []
            try:
                written, names = csv_core.header_names(
                    pa.BufferReader(header), self._options, source, 1 << 20, errors
                )
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                encoding = self._options["encoding"]
                raise csv_core.read_error(exc, source, encoding, 0, errors) from exc
            if parts:
                _same_columns(parts[0], names, source)
            part = _Part(path, source, tuple(written), tuple(names), header)
            if csv_core.compression(path):
                parts.append(part)
                continue
            starts = range(0, max(fs.size(path), 1), self._blocksize)
            parts += [
                replace(part, start=s, length=self._blocksize, row_offset=None if s else 0)
                for s in starts
            ]
        return parts

    def _parquet_parts(self, fs: fsspec.AbstractFileSystem, files: list[str]) -> list[_Part]:
        """The row groups (with rows) of every Parquet file, with the data rows before each."""
        parts: list[_Part] = []
        first: _Part | None = None
        for path in files:
            source = _source_name(fs, path)
            with fs.open(path, "rb") as handle:
                metadata = pq.ParquetFile(handle).metadata
            names = metadata.schema.to_arrow_schema().names
            written = [n for n in names if not n.startswith("__index_level_")]
            file = _Part(path, source, tuple(written), tuple(normalise_header(written, source)))
            first = first or file
            _same_columns(first, list(file.names), source)
            offset = 0
            for group in range(metadata.num_row_groups):
                if metadata.row_group(group).num_rows:
                    parts.append(replace(file, group=group, row_offset=offset))
                offset += metadata.row_group(group).num_rows
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
        """The empty frame of the columns: text for CSV, the first file's types for Parquet."""
        if part.group is None:
            schema = pa.schema([(name, pa.string()) for name in part.names])
        else:
            with fs.open(part.path, "rb") as handle:
                schema = pq.ParquetFile(handle).schema_arrow
            pairs = zip(part.written, part.names, strict=True)
            schema = pa.schema([schema.field(w).with_name(n) for w, n in pairs])
        meta = schema.empty_table().to_pandas(ignore_metadata=True)
        meta.attrs = {"source": self._filepath, "row_offset": 0}
        return meta

    def load(self) -> dd.DataFrame:
        """A lazy Dask DataFrame; each partition carries its origin in ``attrs``."""
        fs, files, parquet = self._files()
        parts = (self._parquet_parts if parquet else self._csv_parts)(fs, files)
        meta = self._meta(fs, parts[0])
        reader = _Reader(fs, self._options, tuple(meta.columns))
        with dask.config.set({"dataframe.convert-string": False}):  # text stays as pandas reads it
            frame = dd.from_map(reader, parts, meta=meta, label="read", enforce_metadata=False)
        kind = "Parquet" if parquet else "CSV"
        logger.info(
            "Reading %d %s file(s) from %s in %d partition(s)",
            len(files),
            kind,
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
        fs, files, parquet = self._files()
        part = (self._parquet_parts if parquet else self._csv_parts)(fs, files[:1])[0]
        frame = _Reader(fs, self._options, part.names)(part).head(nrows)
        return TablePreview(frame.to_dict(orient="split"))


def _report(frame: pd.DataFrame, topic: str) -> pd.DataFrame:
    """A partition without its origin (``attrs``: not output), its rows reported to the save's
    progress as a ``distributed`` event when computed on a worker."""
    frame = frame.copy(deep=False)
    frame.attrs = {}
    with contextlib.suppress(ImportError, ValueError):  # ValueError: not on a worker
        from distributed import get_worker

        worker = get_worker()
        worker.log_event(topic, {"rows": len(frame), "worker": worker.address})
    return frame


@contextlib.contextmanager
def _progress_events(progress: Progress, workers: Counter) -> Iterator[str]:
    """A topic whose events (a partition's rows) update ``progress`` and count the parts of
    each worker (``workers``) within the block."""
    topic = f"network-security-progress-{uuid.uuid4().hex}"
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed client: no events
        yield topic
        return

    def received(event: tuple[float, dict[str, Any]]) -> None:
        workers[event[1]["worker"]] += 1
        progress.update(event[1]["rows"])

    client.subscribe_topic(topic, received)
    try:
        yield topic
    finally:
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
          save_args: {compression: zstd}   # to_parquet's (write_index: false by default)
          load_args: {}                    # read_parquet's
          credentials: {key: ..., secret: ...}    # fsspec storage options (and fs_args)
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
        self._filepath = str(filepath)
        self._save_args = {"write_index": False, **(save_args or {})}
        self._load_args = dict(load_args or {})
        self._storage_options = {**deepcopy(fs_args or {}), **deepcopy(credentials or {})}
        self.metadata = metadata

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, path = fsspec.core.url_to_fs(self._filepath, **self._storage_options)
        return fs, path.rstrip("/")

    def save(self, data: dd.DataFrame) -> None:
        """Write ``data`` (computed on the run's Dask client) to a temporary folder, add the
        manifest, move it to the target."""
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
            workers: Counter = Counter()
            with _progress_events(progress, workers) as topic:
                data.map_partitions(_report, topic, meta=data._meta).to_parquet(
                    fs.unstrip_protocol(temporary),
                    storage_options=self._storage_options or None,
                    name_function=_part_name,
                    **self._save_args,
                )
            parts = {}
            for path in sorted(p for p in fs.ls(temporary, detail=False) if p.endswith(".parquet")):
                with fs.open(path, "rb") as handle:
                    parts[path.rpartition("/")[2]] = pq.ParquetFile(handle).metadata.num_rows
            if not sum(parts.values()):
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
        if workers:
            logger.info("Parts per worker: %s", dict(sorted(workers.items())))

    def load(self) -> dd.DataFrame:
        """The parts as a lazy Dask DataFrame (in part order)."""
        if not self._exists():
            raise DatasetError(f"No Parquet parts at {self._filepath}: run the inference first.")
        options = self._storage_options or None
        return dd.read_parquet(self._filepath, storage_options=options, **self._load_args)

    def _exists(self) -> bool:
        fs, target = self._fs()
        return fs.isdir(target)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "save_args": self._save_args}

    def preview(self, nrows: int = 10) -> TablePreview:
        """The first ``nrows`` rows of the first part, for kedro-viz."""
        fs, target = self._fs()
        first = min(p for p in fs.ls(target, detail=False) if p.endswith(".parquet"))
        with fs.open(first, "rb") as handle:
            frame = pd.read_parquet(handle).head(nrows)
        return TablePreview(frame.to_dict(orient="split"))
