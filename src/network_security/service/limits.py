"""What bounds a request's cost: the body size (as the body arrives), the time a body may take,
and how many ``/predict`` requests are read and scored at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from network_security.service.inputs import RequestProblem

MULTIPART_OVERHEAD_BYTES = 64 * 1024


class _BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """413 for a body over ``max_upload_bytes`` (a multipart one may add its framing): a
    declared ``Content-Length`` before any byte is read, a chunked body as it arrives."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int) -> None:
        self.app, self.max_upload_bytes = app, max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.max_upload_bytes + (MULTIPART_OVERHEAD_BYTES if multipart else 0)
        if not (declared := headers.get(b"content-length", b"0")).isdigit():
            invalid = JSONResponse({"detail": "Invalid Content-Length header."}, 400)
            return await invalid(scope, receive, send)
        too_large = JSONResponse(
            {
                "detail": f"The request body is larger than {self.max_upload_bytes} bytes, the "
                "most the service accepts (NETWORK_SECURITY_MAX_UPLOAD_BYTES); split the file, "
                "or score it with `kedro run --pipeline inference`."
            },
            status_code=413,
            headers={"Connection": "close"},
        )
        if int(declared) > limit:
            return await too_large(scope, receive, send)
        received, started = 0, False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await too_large(scope, receive, send)


@asynccontextmanager
async def prediction_slot(slots: asyncio.Semaphore, settings: Any) -> AsyncIterator[None]:
    """One of ``max_concurrent_predictions`` slots to read and score a request in; others wait
    with their bodies unread (bounded memory), a 503 after ``prediction_wait_seconds``."""
    try:
        async with asyncio.timeout(settings.prediction_wait_seconds):
            await slots.acquire()
    except TimeoutError:
        raise RequestProblem(
            503,
            f"The service is busy: {settings.max_concurrent_predictions} prediction request(s) "
            f"are being scored and this one waited {settings.prediction_wait_seconds:g} s. Retry "
            "later (NETWORK_SECURITY_MAX_CONCURRENT_PREDICTIONS sets how many run at once).",
            headers={"Retry-After": "5"},
        ) from None
    try:
        yield
    finally:
        slots.release()


async def read_body(request: Request, timeout_seconds: float) -> bytes:
    """The request body, which must arrive within ``timeout_seconds`` (else a 408)."""
    try:
        async with asyncio.timeout(timeout_seconds):
            return await request.body()
    except TimeoutError:
        raise RequestProblem(
            408,
            f"The request body did not arrive within {timeout_seconds:g} s "
            "(NETWORK_SECURITY_BODY_TIMEOUT_SECONDS).",
        ) from None
