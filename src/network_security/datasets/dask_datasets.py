"""Datasets of the Dask inference engine: tables in, Parquet parts out, on a Dask cluster.

- ``DaskTableDataset`` loads a CSV file, a glob of CSV files or a Parquet folder (local paths or
  fsspec URLs such as ``s3://bucket/crawl/*.csv``) as a lazy Dask DataFrame. Each partition is
  one block of one file and knows where it comes from: ``partition.attrs`` holds ``source``
  (the file) and ``row_offset`` (how many data rows of that file precede it), so a bad cell is
  reported with its file and its data row in that file, as the pandas engine reports it. CSV
  files are split into blocks of ``blocksize`` bytes at line ends; the row offset of a block is
  the sum of the rows parsed in the blocks before it, computed on the cluster (no file is read
  twice). Parquet files are split by row group, whose sizes the file footers give.
- ``DaskParquetPartsDataset`` computes a Dask DataFrame on a Dask cluster and writes one Parquet
  part per partition into a temporary folder beside the target, renamed to the target once
  every part is written: a failed run leaves no output. The cluster is the scheduler at
  ``scheduler`` (``tcp://host:port``), or, when it is empty, a ``LocalCluster`` sized to the
  machine, started for the save and stopped after it. An unreachable scheduler fails within
  ``connect_timeout`` seconds, naming its address. Progress (rows, rows/s, time left) is logged
  as parts complete, and which workers wrote how many parts at the end.

Kedro's ``DaskRunner`` recipe does not work with Kedro 1.x (kedro-org/kedro#5774): the pipeline
runs with the usual runner, and the work is parallelised inside the lazy collection the nodes
build, which this output dataset computes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import operator
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from copy import deepcopy
from typing import Any

import dask
import dask.dataframe as dd
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from dask import delayed
from fsspec.utils import infer_compression, read_block
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview

from network_security.datasets.chunked_csv import csv_options
from network_security.datasets.output_paths import earlier_output, replace_folder, write_manifest
from network_security.streams import Progress
from network_security.validator import InputValidationError, normalise_header

logger = logging.getLogger(__name__)

_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_LINE_IN_ERROR = re.compile(r"Row #(\d+)")
_MAGIC = ("*", "?", "[")
DEFAULT_BLOCKSIZE = "8MiB"


def _source_name(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The file as users name it: a local path, or a URL with its protocol."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


def _tag(frame: pd.DataFrame, source: str, row_offset: int) -> pd.DataFrame:
    """The partition with its origin: ``attrs`` and an index of the file's data rows (0-based)."""
    frame.attrs = {"source": source, "row_offset": int(row_offset)}
    frame.index = pd.RangeIndex(row_offset, row_offset + len(frame))
    return frame


def _lines_before(fs: fsspec.AbstractFileSystem, path: str, offset: int) -> int:
    count = 0
    with fs.open(path, "rb") as handle:
        while offset > 0:
            data = handle.read(min(offset, 1 << 24))
            if not data:
                break
            count += data.count(b"\n")
            offset -= len(data)
    return count


def _arrow_csv_options(
    options: dict[str, Any], columns: list[str], errors: list[Any]
) -> dict[str, Any]:
    """Arrow's CSV options: every cell as text, as written, like ``ChunkedCSVDataset``."""

    def invalid_row(row: Any) -> str:
        errors.append(row)
        return "error"

    encoding = options["encoding"].lower().replace("-", "").replace("_", "")
    return {
        "read_options": pa_csv.ReadOptions(
            use_threads=False,
            block_size=1 << 26,
            encoding="utf8" if encoding in {"utf8", "utf8sig"} else options["encoding"],
        ),
        "parse_options": pa_csv.ParseOptions(
            delimiter=options["sep"],
            quote_char=options["quotechar"],
            newlines_in_values=True,
            ignore_empty_lines=True,
            invalid_row_handler=invalid_row,
        ),
        "convert_options": pa_csv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=True,
        ),
    }


def _read_csv_block(  # noqa: PLR0913
    fs: fsspec.AbstractFileSystem,
    path: str,
    source: str,
    start: int,
    length: int | None,
    header: bytes,
    names: tuple[list[str], list[str]],
    options: dict[str, Any],
) -> pd.DataFrame:
    """Parse one block of a CSV file (``length`` None: the whole, possibly compressed, file).

    Every cell is read as text, as written (Arrow's CSV reader, as the pandas engine reads).
    ``names``: the file's header as written, and the columns of the result (the header rule's
    names, in the order of the run's first file).
    """
    written, columns = names
    errors: list[Any] = []
    try:
        if length is None:
            with fs.open(path, "rb", compression=infer_compression(path)) as handle:
                data = handle.read()
        else:
            with fs.open(path, "rb") as handle:
                data = read_block(handle, start, length, delimiter=b"\n")
            if start > 0:
                data = header + data
        table = pa_csv.read_csv(io.BytesIO(data), **_arrow_csv_options(options, written, errors))
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "utf8" in message.lower() and "invalid" in message.lower():
            raise InputValidationError(
                f"{source}: bytes after byte {start} are not {options['encoding']} text "
                "(invalid UTF-8 bytes). Save the file as a UTF-8 CSV and run again.",
                problem="not_text",
                source=source,
            ) from exc
        # Lines of the file before the block (counted only when it failed): a block after the
        # first starts just after the first line end at or after its offset.
        before = _lines_before(fs, path, start) + 1 if start else 0
        number = errors[0].number if errors else None
        if number is None:
            match = _LINE_IN_ERROR.search(message)
            number = int(match.group(1)) if match else None
        line = number + (before - 1 if start else 0) if number else None
        detail = (
            f"expected {errors[0].expected_columns} fields (as the header has), got "
            f"{errors[0].actual_columns}"
            if errors
            else message.removeprefix("CSV parse error: ")[:300]
        )
        where = f"at line {line} (data row {line - 1})" if line else f"after byte {start}"
        raise InputValidationError(
            f"{source}: malformed CSV {where}: {detail}. Every line must have the same number "
            "of fields as the header (quote cells that contain commas); fix the line and run "
            "again.",
            row=line - 1 if line else None,
            problem="malformed",
            source=source,
        ) from exc
    frame = table.rename_columns(normalise_header(written, source)).to_pandas()
    if [str(c) for c in frame.columns] != columns:
        frame = frame[columns]
    return frame


def _read_parquet_groups(
    fs: fsspec.AbstractFileSystem,
    path: str,
    source: str,
    groups: list[int],
    names: tuple[list[str], list[str]],
    row_offset: int,
) -> pd.DataFrame:
    """Read row groups of one Parquet file as a tagged partition (``names``: the file's columns
    as written, and the partition's columns by the header rule, in the run's order)."""
    written, columns = names
    with fs.open(path, "rb") as handle:
        table = pq.ParquetFile(handle).read_row_groups(groups, columns=written)
    table = table.rename_columns(normalise_header(written, source))
    frame = table.select(columns).to_pandas(ignore_metadata=True)
    return _tag(frame, source, row_offset)


class DaskTableDataset(AbstractDataset[dd.DataFrame, None]):
    """Rows of CSV files or a Parquet folder as a lazy Dask DataFrame with tagged partitions.

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
                files are one partition each.
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

    # -------------------------------------------------------------------- files

    def _files(self) -> tuple[fsspec.AbstractFileSystem, list[str], str]:
        """The filesystem, the files to read (sorted) and their format."""
        fs, path = fsspec.core.url_to_fs(self._filepath, **self._storage_options)
        if any(char in path for char in _MAGIC):
            files = sorted(p for p in fs.glob(path) if fs.isfile(p))
            if not files:
                raise DatasetError(
                    f"No file matches {self._filepath}. Check the pattern; relative paths are "
                    "relative to the project directory."
                )
        elif fs.isdir(path):
            files = sorted(
                p
                for p in fs.find(path)
                if p.lower().endswith(_PARQUET_SUFFIXES) or self._format == "csv"
            )
            if not files:
                raise DatasetError(
                    f"The folder {self._filepath} holds no Parquet file "
                    f"({', '.join(_PARQUET_SUFFIXES)}). Point inference_input_path at a CSV "
                    "file, a glob of CSV files or a folder of Parquet files."
                )
        elif fs.isfile(path):
            files = [path]
        else:
            raise DatasetError(
                f"Input not found: {self._filepath}. Check the path; relative paths are "
                "relative to the project directory."
            )
        file_format = self._format
        if file_format == "auto":
            parquet = fs.isdir(path) or files[0].lower().endswith(_PARQUET_SUFFIXES)
            file_format = "parquet" if parquet else "csv"
        return fs, files, file_format

    # -------------------------------------------------------------------- CSV

    @staticmethod
    def _header(fs: fsspec.AbstractFileSystem, path: str, source: str) -> bytes:
        compression = infer_compression(path)
        with fs.open(path, "rb", compression=compression) as handle:
            header = handle.readline()
        if not header.strip():
            raise InputValidationError(
                f"{source}: the file is empty (no header line). Write a header line with the "
                "feature columns and one row per site, and run again.",
                problem="empty_file",
                source=source,
            )
        if b"\x00" in header:
            raise InputValidationError(
                f"{source}: this is a binary file, not a CSV text file. Export the data as a "
                "CSV text file and run again.",
                problem="not_text",
                source=source,
            )
        return header

    def _csv_columns(self, header: bytes, source: str) -> tuple[pd.DataFrame, list[str]]:
        """The empty frame of a file's columns (all text, names by the validator's header
        rule, ``normalise_header``), and the names as written, from its header line."""
        try:
            names = pa_csv.read_csv(
                io.BytesIO(header), **_arrow_csv_options(self._options, [], [])
            ).column_names
        except pa.ArrowInvalid as exc:
            raise InputValidationError(
                f"{source}: the header line cannot be read as CSV text ({exc}). Save the file "
                "as a UTF-8 CSV with a header line and run again.",
                problem="not_text",
                source=source,
            ) from exc
        clean = normalise_header(names, source)
        empty = pa.table({name: pa.array([], pa.string()) for name in clean})
        return empty.to_pandas(), names

    def _load_csv(self, fs: fsspec.AbstractFileSystem, files: list[str]) -> dd.DataFrame:
        meta: pd.DataFrame | None = None
        columns: list[str] = []
        parts = []
        for path in files:
            source = _source_name(fs, path)
            header = self._header(fs, path, source)
            file_meta, written = self._csv_columns(header, source)
            names = [str(c) for c in file_meta.columns]
            if meta is None:
                meta, columns = file_meta, names
            elif sorted(names) != sorted(columns):
                missing = sorted(set(columns) - set(names))
                extra = sorted(set(names) - set(columns))
                raise InputValidationError(
                    f"{source}: its columns differ from those of {_source_name(fs, files[0])} "
                    f"(missing {missing}, extra {extra}). Every file of one run needs the same "
                    "columns; score them in separate runs or align their headers.",
                    column=(missing or extra)[0],
                    problem="missing_column" if missing else "extra_column",
                    source=source,
                )
            if infer_compression(path) is not None:
                blocks: list[tuple[int, int | None]] = [(0, None)]
            else:
                size = fs.size(path)
                blocks = [(start, self._blocksize) for start in range(0, size, self._blocksize)]
            offset: Any = 0
            for start, length in blocks:
                raw = delayed(_read_csv_block, pure=True)(
                    fs, path, source, start, length, header, (written, columns), self._options
                )
                parts.append(delayed(_tag, pure=True)(raw, source, offset))
                offset = delayed(operator.add, pure=True)(offset, delayed(len, pure=True)(raw))
        return self._collection(parts, meta)

    # -------------------------------------------------------------------- Parquet

    def _load_parquet(self, fs: fsspec.AbstractFileSystem, files: list[str]) -> dd.DataFrame:
        meta: pd.DataFrame | None = None
        columns: list[str] = []
        parts = []
        for path in files:
            source = _source_name(fs, path)
            with fs.open(path, "rb") as handle:
                parquet = pq.ParquetFile(handle)
                schema = parquet.schema_arrow
                sizes = [
                    parquet.metadata.row_group(i).num_rows
                    for i in range(parquet.metadata.num_row_groups)
                ]
            written = [n for n in schema.names if not n.startswith("__index_level_")]
            names = normalise_header(written, source)  # the one header rule, as for CSV
            if meta is None:
                columns = names
                meta = schema.empty_table().select(written).rename_columns(names)
                meta = meta.to_pandas(ignore_metadata=True)
            elif sorted(names) != sorted(columns):
                missing = sorted(set(columns) - set(names))
                raise InputValidationError(
                    f"{source}: its columns differ from those of {_source_name(fs, files[0])} "
                    f"(missing {missing}, extra {sorted(set(names) - set(columns))}). Every "
                    "file of one run needs the same columns.",
                    column=(missing or [names[0]])[0],
                    problem="missing_column",
                    source=source,
                )
            offset = 0
            for group, rows in enumerate(sizes):
                if rows:
                    parts.append(
                        delayed(_read_parquet_groups, pure=True)(
                            fs, path, source, [group], (written, columns), offset
                        )
                    )
                offset += rows
        if not parts:
            raise InputValidationError(
                f"{self._filepath}: no data rows to score (the Parquet files hold no row). "
                "Add rows and run again.",
                problem="no_rows",
                rows_affected=0,
                source=self._filepath,
            )
        return self._collection(parts, meta)

    def _collection(self, parts: list[Any], meta: pd.DataFrame | None) -> dd.DataFrame:
        """The partitions as one Dask DataFrame; its ``_meta.attrs`` name the input."""
        if meta is None:
            raise DatasetError(f"No file to read at {self._filepath}.")
        meta.attrs = {"source": self._filepath, "row_offset": 0}
        with dask.config.set({"dataframe.convert-string": False}):  # text stays as pandas reads it
            return dd.from_delayed(parts, meta=meta, verify_meta=False)

    # -------------------------------------------------------------------- kedro API

    def load(self) -> dd.DataFrame:
        """A lazy Dask DataFrame; each partition carries ``attrs`` source and row_offset."""
        fs, files, file_format = self._files()
        frame = (
            self._load_parquet(fs, files) if file_format == "parquet" else self._load_csv(fs, files)
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
        """The first ``nrows`` rows of the first file, for kedro-viz."""
        fs, files, file_format = self._files()
        if file_format == "parquet":
            with fs.open(files[0], "rb") as handle:
                frame = pq.ParquetFile(handle).read_row_group(0).to_pandas().head(nrows)
        else:
            with fs.open(files[0], "rb", compression=infer_compression(files[0])) as handle:
                head = b"".join(handle.readline() for _ in range(int(nrows) + 1))
            meta, written = self._csv_columns(head, files[0])
            options = _arrow_csv_options(self._options, written, [])
            table = pa_csv.read_csv(io.BytesIO(head), **options)
            frame = table.rename_columns(list(meta.columns)).to_pandas()
        return TablePreview(frame.to_dict(orient="split"))


# ---------------------------------------------------------------------------- the cluster


@contextlib.contextmanager
def _quiet_distributed() -> Iterator[None]:
    """Only warnings from ``distributed`` while a run uses it (its INFO lines drown a run's log)."""
    distributed_logger = logging.getLogger("distributed")
    level = distributed_logger.level
    distributed_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        distributed_logger.setLevel(level)


def dask_setup(worker: Any) -> None:
    """Worker preload (local clusters): only warnings from ``distributed`` in the worker."""
    logging.getLogger("distributed").setLevel(logging.WARNING)


@contextlib.contextmanager
def dask_client(
    scheduler: str | None, connect_timeout: float = 30, cluster_args: dict[str, Any] | None = None
) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler``, or on a ``LocalCluster`` started for the block.

    The local cluster is sized to the machine by ``distributed`` (one worker process per core
    on small machines), without a dashboard unless ``cluster_args`` asks for one; it is stopped
    when the block ends. An unreachable scheduler raises ``DatasetError`` naming its address
    within ``connect_timeout`` seconds.
    """
    from distributed import Client, LocalCluster

    with _quiet_distributed(), contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = Client(scheduler, timeout=f"{connect_timeout}s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise DatasetError(
                    f"Could not connect to the Dask scheduler at {scheduler} within "
                    f"{connect_timeout:g} s ({type(exc).__name__}: {exc}). Start it (`dask "
                    "scheduler`, then `dask worker <address>` on each machine), or set "
                    "dask_scheduler to its address (tcp://HOST:PORT), or leave it unset to use "
                    "a local cluster."
                ) from exc
        else:
            arguments = {
                "dashboard_address": None,
                "preload": [__name__],  # dask_setup below: quiet worker processes too
                **(cluster_args or {}),
            }
            cluster = LocalCluster(**arguments)
            stack.callback(cluster.close)
            client = Client(cluster, set_as_default=False)
            logger.info(
                "Started a local Dask cluster: %d worker(s), %d thread(s) in all",
                len(cluster.workers),
                sum(w.nthreads for w in cluster.workers.values()),
            )
        stack.callback(client.close)
        yield client


def _write_part(
    frame: pd.DataFrame,
    fs: fsspec.AbstractFileSystem,
    path: str,
    save_args: dict[str, Any],
) -> tuple[str, int, str]:
    """Write one partition as a Parquet file; return its name, rows and the worker."""
    frame.attrs = {}  # the partition's origin is not part of the output
    with fs.open(path, "wb") as handle:
        frame.to_parquet(handle, **save_args)
    try:
        from distributed import get_worker

        worker = get_worker().address
    except ValueError:  # not on a distributed worker
        worker = "local"
    return path.rpartition("/")[2], len(frame), worker


class DaskParquetPartsDataset(AbstractDataset[dd.DataFrame, dd.DataFrame]):
    """A folder of Parquet parts, computed on a Dask cluster and written atomically.

    Example catalog entry::

        predictions:
          type: network_security.datasets.dask_datasets.DaskParquetPartsDataset
          filepath: data/07_model_output/predictions_parquet   # or s3://bucket/out/
          scheduler: tcp://10.0.0.5:8786   # empty: a LocalCluster sized to the machine
          connect_timeout: 30              # seconds to reach the scheduler
          cluster_args: {n_workers: 2}     # LocalCluster arguments (no scheduler only)
    """

    def __init__(  # noqa: PLR0913
        self,
        filepath: str,
        scheduler: str | None = None,
        connect_timeout: float = 30,
        cluster_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Declare the output folder and the cluster; nothing connects until ``save``.

        Args:
            filepath: The folder of Parquet parts (a local path or an fsspec URL, on storage
                every worker can write to).
            scheduler: Address of a running ``distributed`` scheduler; empty or ``None`` for a
                ``LocalCluster`` started for the save.
            connect_timeout: Seconds to reach the scheduler before failing.
            cluster_args: Keyword arguments of ``distributed.LocalCluster``.
            save_args: Keyword arguments of ``DataFrame.to_parquet`` (``index`` False by default).
            credentials: fsspec storage options holding secrets (merged into ``fs_args``).
            fs_args: Other fsspec storage options.
            metadata: Free-form metadata (kedro-viz layer, preview args).
        """
        self._filepath = str(filepath)
        self._scheduler = str(scheduler).strip() if scheduler else None
        self._connect_timeout = float(connect_timeout)
        self._cluster_args = dict(cluster_args or {})
        self._save_args = {"index": False, "engine": "pyarrow", **(save_args or {})}
        self._storage_options = {**deepcopy(fs_args or {}), **deepcopy(credentials or {})}
        self.metadata = metadata

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, path = fsspec.core.url_to_fs(self._filepath, **self._storage_options)
        return fs, path.rstrip("/")

    def save(self, data: dd.DataFrame) -> None:
        """Compute ``data`` on the cluster; one part per partition; rename when all are written."""
        if not isinstance(data, dd.DataFrame):
            raise DatasetError(
                f"{type(self).__name__} saves a Dask DataFrame; got {type(data).__name__}. "
                "Run with --params inference_engine=dask, or use the pandas engine's output."
            )
        fs, target = self._fs()
        earlier_output(fs, target, self._filepath, "dask")  # refused before any work
        parent, _, name = target.rpartition("/")
        temporary = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.partial"
        fs.makedirs(temporary, exist_ok=True)
        try:
            parts, workers = self._compute(data, fs, temporary)
            rows = sum(parts.values())
            if rows == 0:
                raise InputValidationError(
                    "No data rows to score: every input file is empty below its header. Add "
                    "one row per site and run again.",
                    problem="no_rows",
                    rows_affected=0,
                )
            write_manifest(fs, temporary, "dask", parts)
            replace_folder(fs, temporary, target, self._filepath, "dask")
        except BaseException:
            with contextlib.suppress(Exception):
                fs.rm(temporary, recursive=True)
            raise
        logger.info(
            "Wrote %d row(s) in %d part(s) to %s; parts per worker: %s",
            rows,
            data.npartitions,
            self._filepath,
            dict(sorted(workers.items())),
        )

    def _compute(
        self, data: dd.DataFrame, fs: fsspec.AbstractFileSystem, folder: str
    ) -> tuple[dict[str, int], Counter]:
        from distributed import as_completed

        parts = data.to_delayed(optimize_graph=True)
        writes = [
            delayed(_write_part, pure=False)(
                part, fs, f"{folder}/part.{i:05d}.parquet", self._save_args
            )
            for i, part in enumerate(parts)
        ]
        workers: Counter = Counter()
        parts_written: dict[str, int] = {}
        with dask_client(self._scheduler, self._connect_timeout, self._cluster_args) as client:
            futures = client.compute(writes)
            progress = Progress("Wrote", self._filepath, total_steps=len(futures), min_interval=0)
            try:
                for future in as_completed(futures, loop=client.loop):
                    name, rows, worker = future.result()
                    parts_written[name] = rows
                    workers[worker] += 1
                    progress.update(rows)
            except BaseException:
                client.cancel(futures)
                raise
            progress.finish()
        return dict(sorted(parts_written.items())), workers

    def load(self) -> dd.DataFrame:
        """The parts as a lazy Dask DataFrame (in part order)."""
        fs, target = self._fs()
        if not fs.isdir(target):
            raise DatasetError(f"No Parquet parts at {self._filepath}: run the inference first.")
        return dd.read_parquet(self._filepath, storage_options=self._storage_options or None)

    def _exists(self) -> bool:
        fs, target = self._fs()
        return fs.isdir(target)

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "scheduler": self._scheduler or "LocalCluster",
            "save_args": self._save_args,
        }

    def preview(self, nrows: int = 10) -> TablePreview:
        """The first ``nrows`` rows of the first part, for kedro-viz."""
        fs, target = self._fs()
        first = sorted(p for p in fs.find(target) if p.endswith(".parquet"))[0]
        with fs.open(first, "rb") as handle:
            frame = pd.read_parquet(handle).head(nrows)
        return TablePreview(frame.to_dict(orient="split"))
