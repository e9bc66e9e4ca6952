"""Request bodies read for the one validator: a CSV upload (the multipart field ``file``) by the
inference pipeline's own CSV reader (``read_csv_bytes``); service-only limits (bytes, rows,
columns) and every problem become a ``RequestProblem`` naming the row, the column and the
value. JSON records are ``service.records``."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import pandas as pd
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from network_security.datasets.chunked_csv import read_csv_bytes
from network_security.validator import InputValidationError


class RequestProblem(HTTPException):
    """A request the service cannot serve: the HTTP status, why, and where when known.

    An ``HTTPException``, so FastAPI passes one raised while a body is read (by the body
    limits) on to the service's handler as it is."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        column: str | None = None,
        row: int | None = None,
        value: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, message, headers)
        self.message = message
        self.column, self.row, self.value = column, row, value

    @classmethod
    def of(cls, error: InputValidationError, status_code: int = 422) -> RequestProblem:
        """A validator's error, naming the column, row and value."""
        value = error.value
        if isinstance(value, str):
            value = value[:200].encode("utf-8", "backslashreplace").decode("utf-8")
        return cls(status_code, str(error), column=error.column, row=error.row, value=value)

    def details(self) -> dict[str, Any]:
        """The located fields (column, row, value) that are known."""
        found = {"column": self.column, "row": self.row, "value": self.value}
        return {key: value for key, value in found.items() if value is not None}


async def read_body(request: Request) -> bytearray:
    """The request body, gathered in one buffer as it arrives (Starlette's ``body()`` joins a
    list of the chunks: twice the body's size at its peak)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
    return body


async def read_upload(request: Request, max_bytes: int) -> tuple[bytes, str]:
    """The bytes and file name of the multipart field ``file`` (a file, or the CSV text)."""
    async with request.form(max_files=1, max_fields=10, max_part_size=max_bytes) as form:
        if unknown := sorted({name for name in form if name != "file"}):
            shown = ", ".join(repr(name[:40]) for name in unknown[:5])
            raise RequestProblem(
                422,
                f"The upload has field(s) the service does not take ({shown}): send only the "
                "CSV, in the multipart field 'file'.",
                column=unknown[0][:100],
            )
        upload = form.get("file")
        if isinstance(upload, str):
            data, source = upload.encode("utf-8"), "the CSV in the field 'file'"
        elif isinstance(upload, UploadFile):
            name = PurePath((upload.filename or "").replace("\\", "/")).name
            source = "".join(ch for ch in name if ch.isprintable())[:100] or "the uploaded file"
            data = await upload.read(max_bytes + 1)
        else:
            raise RequestProblem(
                422,
                "The upload has no file in the multipart field 'file': send the CSV as "
                "file=@sites.csv (curl -F), or use the form at GET /predict.",
                column="file",
            )
    if len(data) > max_bytes:
        raise RequestProblem(
            413,
            f"{source} is larger than {max_bytes} bytes, the most the service accepts "
            "(NETWORK_SECURITY_MAX_UPLOAD_BYTES).",
        )
    return data, source


def read_csv_upload(data: bytes, *, source: str, max_rows: int, max_columns: int) -> pd.DataFrame:
    """An uploaded CSV as a frame of text cells, read as the inference pipeline reads a file.

    Raises ``RequestProblem``: 400 for bytes that are not CSV text (or cannot be split into
    rows), 413 past the row or column limit (a wide header is refused before it is parsed),
    422 for an empty file, a bad header or a row of the wrong width.
    """
    try:
        frame = read_csv_bytes(data, source, max_rows, max_columns)
    except InputValidationError as error:
        if error.problem == "too_many_columns":
            message = f"{error} (NETWORK_SECURITY_MAX_COLUMNS sets the limit)"
            raise RequestProblem(413, message) from None
        # bytes that are not text, or a CSV the reader cannot split into rows: a 400
        unreadable = (
            error.problem == "not_text" or error.row is None and error.problem == "malformed"
        )
        raise RequestProblem.of(error, 400 if unreadable else 422) from None
    if len(frame) > max_rows:
        raise RequestProblem(
            413,
            f"{source} has more than {max_rows} data rows, the most the service scores per "
            "request (NETWORK_SECURITY_MAX_ROWS); split the file, or score it with `kedro run "
            "--pipeline inference`.",
        )
    return frame
