"""The one CSV core: Arrow's CSV reader set to read every cell as text, and its errors in words.

Both inference engines (``ChunkedCSVDataset`` streams a file, the Dask engine's
``DaskTableDataset`` reads one block per partition), ingestion and the service's uploads read
CSV through these functions, so a file is judged alike everywhere:

- ``csv_options``: the reading options ``load_args`` may set (encoding, sep, quotechar), checked.
- ``text_stream``: a file as Arrow reads it, decompressed on the fly (``.gz``, ``.bz2``, ``.xz``,
  ``.zst``).
- ``check_text``: refuse a binary, non-text or blank file from its first bytes.
- ``open_text_csv``: Arrow's streaming reader with every cell read as text, exactly as written
  (nothing is read as missing, nothing is converted; the validator parses the cells it needs).
- ``header_names``: the header as written and as the validator's one header rule makes it.
- ``read_error``: Arrow's error (a malformed line, bytes that are not text, an empty file) as the
  validator's ``InputValidationError``, naming the file, the line and the data row.
"""

from __future__ import annotations

import codecs
import lzma
import re
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
from kedro.io import DatasetError

from network_security.validator import InputValidationError, normalise_header

LOAD_ARGS = {"encoding": "utf-8", "sep": ",", "quotechar": '"'}
"""The reading options ``load_args`` may set, with their defaults."""
SNIFF_BYTES = 64 * 1024
"""Bytes read from the start of a file to check it is text (and to estimate row lengths)."""
_TEXT_DTYPES = {"object", "str", "string"}
_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}
_LINE_IN_ERROR = re.compile(r"Row #(\d+)")


def csv_options(load_args: dict[str, Any] | None) -> dict[str, Any]:
    """``load_args`` checked: the reading options, pandas' names accepted where they agree
    (``delimiter``; ``dtype: str`` and ``keep_default_na: false``, which are always applied)."""
    args = dict(load_args or {})
    dtype = args.pop("dtype", "str")
    if (dtype if isinstance(dtype, str) else getattr(dtype, "__name__", "")) not in _TEXT_DTYPES:
        raise DatasetError(
            f"Every cell is read as text; load_args.dtype={dtype!r} is not supported (remove "
            "it, or set it to 'str')."
        )
    if args.pop("keep_default_na", False):
        raise DatasetError(
            "No cell is read as missing (every cell as it is written); "
            "load_args.keep_default_na=true is not supported."
        )
    args.pop("chunksize", None)
    if "delimiter" in args:
        args["sep"] = args.pop("delimiter")
    unknown = sorted(set(args) - set(LOAD_ARGS))
    if unknown:
        raise DatasetError(
            f"Unsupported load_args {unknown}: CSV files are read with {sorted(LOAD_ARGS)} (and "
            "dtype: str, keep_default_na: false, which are always applied)."
        )
    options = {**LOAD_ARGS, **args}
    for key in ("sep", "quotechar"):
        if not isinstance(options[key], str) or len(options[key]) != 1:
            raise DatasetError(f"load_args.{key} must be one character, got {options[key]!r}.")
    codecs.lookup(options["encoding"])  # LookupError names an unknown encoding
    return options


def compression(name: str) -> str | None:
    """The codec of a file compressed as its suffix says (gzip, bz2, xz, zstd), else None."""
    return _CODECS.get(PurePosixPath(name).suffix.lower())


def text_stream(raw: Any, name: str) -> Any:
    """The open binary file ``raw`` (named ``name``) as Arrow reads it, decompressed on the
    fly when its suffix says it is compressed."""
    codec = compression(name)
    if codec == "xz":  # not among Arrow's codecs
        return pa.PythonFile(lzma.open(raw), mode="r")
    stream = raw if isinstance(raw, pa.NativeFile) else pa.PythonFile(raw, mode="r")
    return pa.CompressedInputStream(stream, codec) if codec else stream


def first_line(stream: Any) -> bytes:
    """The first line of ``stream`` (the header), with its line end."""
    head = b""
    while b"\n" not in head:
        more = stream.read(SNIFF_BYTES)
        if not more:
            return head
        head += more
    return head[: head.index(b"\n") + 1]


def empty_file(source: str, what: str) -> InputValidationError:
    """The error of a file without a header line (``what``: "is empty (0 bytes)", ...)."""
    return InputValidationError(
        f"{source}: the file {what}. Write a header line with the feature columns and one row "
        "per site, and run again.",
        problem="empty_file",
        source=source,
    )


def check_text(head: bytes, source: str, encoding: str) -> None:
    """Refuse a file whose first bytes are binary, not ``encoding`` text, or only blanks."""
    nul = head.find(b"\x00")
    if nul >= 0:
        raise InputValidationError(
            f"{source}: this is a binary file, not a CSV text file (byte {nul} is a NUL "
            "byte). Export the data as a CSV text file and run again.",
            problem="not_text",
            source=source,
        )
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
        raise empty_file(source, "has only blank lines")


def open_text_csv(
    stream: Any,
    options: dict[str, Any],
    names: list[str] | None,
    block_size: int,
    errors: list[Any],
) -> pa_csv.CSVStreamingReader:
    """Arrow's streaming CSV reader over ``stream``, every cell of ``names`` (the header as
    written) read as text; malformed rows are appended to ``errors`` (for ``read_error``)."""

    def invalid_row(row: Any) -> str:
        errors.append(row)
        return "error"

    encoding = options["encoding"].lower().replace("-", "").replace("_", "")
    return pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(
            use_threads=False,  # row numbers in messages; parsing keeps up with scoring
            block_size=block_size,
            encoding="utf8" if encoding in {"utf8", "utf8sig"} else options["encoding"],
        ),
        parse_options=pa_csv.ParseOptions(
            delimiter=options["sep"],
            quote_char=options["quotechar"],
            newlines_in_values=True,
            ignore_empty_lines=True,
            invalid_row_handler=invalid_row,
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names or [], pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=True,
        ),
    )


def header_names(
    stream: Any, options: dict[str, Any], source: str, block_size: int, errors: list[Any]
) -> tuple[list[str], list[str]]:
    """The column names as written and as the one header rule makes them (``normalise_header``:
    stripped, no nameless or repeated column), from the first block of ``stream``."""
    reader = open_text_csv(stream, options, None, block_size, errors)
    try:
        names = list(reader.schema.names)
    finally:
        reader.close()
    return names, normalise_header(names, source)


def _not_text(source: str, encoding: str, reason: str, rows: int) -> InputValidationError:
    return InputValidationError(
        f"{source}: bytes after data row {rows} are not {encoding} text ({reason}). Save the "
        "file as a UTF-8 CSV (or set load_args.encoding in the catalog) and run again.",
        row=rows + 1,
        problem="not_text",
        source=source,
    )


def read_error(  # noqa: PLR0913
    exc: Exception,
    source: str,
    encoding: str,
    rows: int,
    errors: list[Any],
    lines_before: int = 1,
) -> InputValidationError:
    """Arrow's reading error ``exc`` (or a ``UnicodeDecodeError``) in words.

    Args:
        exc: The error.
        source: The file, for the message.
        encoding: The encoding the file was read with.
        rows: Data rows of the file read before the error.
        errors: The malformed rows Arrow reported (``open_text_csv``).
        lines_before: Lines of the file before the first data line of the text Arrow read (1:
            the header; a block of a file read with the header before it: the lines before it).
    """
    if isinstance(exc, UnicodeDecodeError):
        return _not_text(source, encoding, exc.reason, rows)
    message = str(exc)
    if "Empty CSV file" in message:
        return empty_file(source, "is empty (no header line)")
    if "UTF8" in message or "utf8" in message.lower() and "invalid" in message.lower():
        return _not_text(source, encoding, "invalid UTF-8 bytes", rows)
    detail = message.removeprefix("CSV parse error: ")
    if errors:
        line = errors[0].number
        detail = (
            f"expected {errors[0].expected_columns} fields (as the header has), got "
            f"{errors[0].actual_columns}"
        )
    else:
        match = _LINE_IN_ERROR.search(message)
        line = int(match.group(1)) if match else None
    line = line + lines_before - 1 if line else None
    return InputValidationError(
        f"{source}: malformed CSV"
        + (f" at line {line} (data row {line - 1})" if line else f" after data row {rows}")
        + f": {detail[:300]}. Every line must have the same number of fields as the header "
        "(quote cells that contain commas); fix the line and run again.",
        row=line - 1 if line else None,
        problem="malformed",
        source=source,
    )
