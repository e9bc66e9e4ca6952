"""``ChunkedCSVDataset``: a local CSV file read as a lazy stream of chunks and written atomically.

Kedro datasets load whole objects into memory. To score a file of any size with bounded memory,
this dataset's ``load`` returns a ``ChunkStream`` (nothing is read until it is iterated; each
iteration reads the file again with ``pandas.read_csv(chunksize=...)``), and ``save`` accepts a
DataFrame *or* any iterable of DataFrames (such as the lazy stream a node returns) and writes it
chunk by chunk. Only one chunk is in memory at a time.

Saving is atomic: the rows go to a temporary file in the target's directory, which replaces the
target (``os.replace``) only once every chunk is written. If a chunk fails (a bad row found late
in a large input, a full disk), the temporary file is removed and the target is left as it was,
so no partial output is ever left behind.

``load`` checks that the file exists, is not empty and is text before returning the stream, so
those problems are reported before anything is scored; read errors found later (a malformed line,
bytes that are not text) raise ``InputValidationError`` naming the line.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview

from network_security.scoring import ChunkStream, InputValidationError
from network_security.streams import CountedStream

logger = logging.getLogger(__name__)

_SNIFF_BYTES = 64 * 1024
_COMPRESSED_SUFFIXES = {".gz", ".bz2", ".zip", ".xz", ".zst", ".tar"}
_LINE_IN_ERROR = re.compile(r"line (\d+)")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _CSVChunks:
    """Re-iterable chunks of one CSV file; read errors become ``InputValidationError``."""

    def __init__(self, path: Path, chunksize: int | None, load_args: dict[str, Any]) -> None:
        self._path = path
        self._chunksize = chunksize
        self._load_args = load_args

    def __iter__(self) -> Iterator[pd.DataFrame]:
        source = str(self._path)
        rows = 0
        try:
            if self._chunksize is None:
                yield pd.read_csv(self._path, **self._load_args)
                return
            with pd.read_csv(self._path, chunksize=self._chunksize, **self._load_args) as reader:
                for chunk in reader:
                    rows += len(chunk)
                    yield chunk
        except pd.errors.EmptyDataError as exc:
            raise InputValidationError(
                f"{source}: the file is empty (no header line). Write a header line with the "
                "feature columns and one row per site, and run again.",
                problem="empty_file",
                source=source,
            ) from exc
        except UnicodeDecodeError as exc:
            raise InputValidationError(
                f"{source}: bytes after data row {rows} are not "
                f"{self._load_args.get('encoding', 'utf-8')} text ({exc.reason}). Save the "
                "file as a UTF-8 CSV (or set load_args.encoding in the catalog) and run again.",
                row=rows + 1,
                problem="not_text",
                source=source,
            ) from exc
        except pd.errors.ParserError as exc:
            match = _LINE_IN_ERROR.search(str(exc))
            line = int(match.group(1)) if match else None
            raise InputValidationError(
                f"{source}: malformed CSV"
                + (f" at line {line} (data row {line - 1})" if line else f" after row {rows}")
                + f": {exc}. Every line must have the same number of fields as the header "
                "(quote cells that contain commas); fix the line and run again.",
                row=line - 1 if line else None,
                problem="malformed",
                source=source,
            ) from exc


class ChunkedCSVDataset(AbstractDataset[Any, Any]):
    """A local CSV file: loads a lazy ``ChunkStream`` of chunks; saves chunks atomically.

    Example catalog entry::

        inference_batch:
          type: network_security.datasets.ChunkedCSVDataset
          filepath: data/01_raw/new_batch.csv
          chunksize: 100000          # rows per chunk; null loads one whole DataFrame
          load_args:                 # passed to pandas.read_csv
            dtype: object            # read cells as text: the checks parse them
            keep_default_na: false
          save_args:                 # passed to DataFrame.to_csv (index=False by default)
            float_format: "%.6f"
    """

    def __init__(
        self,
        filepath: str,
        chunksize: int | None = 100_000,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Declare the file; nothing is read or written until ``load`` or ``save``.

        Args:
            filepath: Local path of the CSV file (relative paths: to the working directory,
                the project root under ``kedro run``).
            chunksize: Rows per chunk. ``None`` makes ``load`` return one DataFrame.
            load_args: Keyword arguments of ``pandas.read_csv`` (not ``chunksize``).
            save_args: Keyword arguments of ``DataFrame.to_csv`` (not ``header``/``mode``).
            metadata: Free-form metadata (kedro-viz layer, preview args).
        """
        if chunksize is not None and int(chunksize) < 1:
            raise DatasetError(f"chunksize must be a positive number of rows; got {chunksize}.")
        self._filepath = Path(filepath)
        self._chunksize = int(chunksize) if chunksize is not None else None
        self._load_args = dict(load_args or {})
        self._load_args.pop("chunksize", None)
        self._save_args = {"index": False, **(save_args or {})}
        for reserved in ("header", "mode", "path_or_buf"):
            self._save_args.pop(reserved, None)
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
            raise InputValidationError(
                f"{source}: the file is empty (0 bytes). Write a header line with the feature "
                "columns and one row per site, and run again.",
                problem="empty_file",
                source=source,
            )
        if path.suffix.lower() in _COMPRESSED_SUFFIXES or "compression" in self._load_args:
            return  # pandas decompresses; read errors are reported while reading
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
        nul = head.find(b"\x00")
        if nul >= 0:
            raise InputValidationError(
                f"{source}: this is a binary file, not a CSV text file (byte {nul} is a NUL "
                "byte). Export the data as a CSV text file and run again.",
                problem="not_text",
                source=source,
            )
        encoding = self._load_args.get("encoding") or "utf-8"
        try:
            text = codecs.getincrementaldecoder(encoding)().decode(head, final=False)
        except UnicodeDecodeError as exc:
            raise InputValidationError(
                f"{source}: byte {exc.start} is not {encoding} text ({exc.reason}); this does "
                f"not look like a CSV text file. Save it as a UTF-8 CSV (or set "
                "load_args.encoding in the catalog) and run again.",
                problem="not_text",
                source=source,
            ) from exc
        if not text.strip():
            raise InputValidationError(
                f"{source}: the file has only blank lines. Write a header line with the feature "
                "columns and one row per site, and run again.",
                problem="empty_file",
                source=source,
            )

    def _estimate_rows(self) -> int | None:
        """Data rows, estimated from the file size and the lines of its first 64 KiB."""
        compressed = self._filepath.suffix.lower() in _COMPRESSED_SUFFIXES
        if compressed or "compression" in self._load_args:
            return None
        size = self._filepath.stat().st_size
        with self._filepath.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
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
        chunks = _CSVChunks(self._filepath, self._chunksize, self._load_args)
        if self._chunksize is None:
            return next(iter(chunks))
        return CountedStream(chunks, source, total_rows=self._estimate_rows(), exact=False)

    # -------------------------------------------------------------------- save

    def save(self, data: pd.DataFrame | Iterable[pd.DataFrame]) -> None:
        """Write a DataFrame or an iterable of DataFrame chunks, atomically."""
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
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
        )
        rows = 0
        try:
            with os.fdopen(handle, "w", newline="", encoding="utf-8") as stream:
                columns: list[str] | None = None
                for number, chunk in enumerate(chunks):
                    if not isinstance(chunk, pd.DataFrame):
                        raise DatasetError(
                            f"Chunk {number} to save to {target} is a {type(chunk).__name__}, "
                            "not a DataFrame."
                        )
                    if columns is None:
                        columns = [str(c) for c in chunk.columns]
                    elif [str(c) for c in chunk.columns] != columns:
                        raise DatasetError(
                            f"Chunk {number} to save to {target} has columns "
                            f"{list(chunk.columns)}, unlike the first chunk's {columns}."
                        )
                    chunk.to_csv(stream, header=number == 0, **self._save_args)
                    rows += len(chunk)
                if columns is None:
                    raise DatasetError(f"Nothing to save to {target}: the stream had no chunk.")
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
            "load_args": self._load_args,
            "save_args": self._save_args,
        }

    def preview(self, nrows: int = 5) -> TablePreview:
        """The first ``nrows`` rows, for kedro-viz."""
        self._check_file()
        args = copy.deepcopy(self._load_args)
        frame = pd.read_csv(self._filepath, nrows=nrows, **args)
        return TablePreview(frame.to_dict(orient="split"))
