"""What bounds a request's cost: the body size (as the body arrives), the time a body may take,
the bytes of bodies held at once, and how many ``/predict`` requests are scored at once.

A body is read whole, within its size and time, before its request asks for a scoring slot:
the slots are for scoring only, so a client that sends its body slowly (or not at all) holds
no slot and gets a 408 once its time is up, while the others are scored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from network_security.service.inputs import RequestProblem

MULTIPART_OVERHEAD_BYTES = 64 * 1024
_CLOSE = {"Connection": "close"}  # the rest of a refused body is not read


class BodyLimitsMiddleware:
    """Bounds on request bodies as they arrive (Starlette's ``RequestBodyLimitMiddleware``
    bounds only the size; the time and the bytes in flight need the same receive wrapper):

    - 413 for a body over ``max_upload_bytes`` (a multipart one may add its framing): a
      declared ``Content-Length`` before any byte is read, a chunked body as it arrives;
    - 408 for a body not whole ``timeout_seconds`` after the app first asked for it;
    - 503 when the bodies of the requests in progress would hold more than
      ``max_bytes_in_flight`` bytes (the request's own bytes are released when it ends).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_upload_bytes: int,
        timeout_seconds: float,
        max_bytes_in_flight: int,
    ) -> None:
        self.app, self.max_upload_bytes = app, max_upload_bytes
        self.timeout_seconds, self.max_bytes_in_flight = timeout_seconds, max_bytes_in_flight
        self.bytes_in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.max_upload_bytes + (MULTIPART_OVERHEAD_BYTES if multipart else 0)
        if not (declared := headers.get(b"content-length", b"0")).isdigit():
            invalid = JSONResponse({"detail": "Invalid Content-Length header."}, 400)
            return await invalid(scope, receive, send)
        if int(declared) > limit:
            too_large = self._too_large()
            response = JSONResponse({"detail": too_large.message}, 413, too_large.headers)
            return await response(scope, receive, send)
        received, deadline = 0, None

        async def limited_receive() -> Message:
            nonlocal received, deadline
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.timeout_seconds
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise self._late() from None
            size = len(message.get("body", b""))
            received += size
            self.bytes_in_flight += size
            if received > limit:
                raise self._too_large()
            if self.bytes_in_flight > self.max_bytes_in_flight:
                raise self._busy()
            return message

        try:  # a refusal raised by limited_receive is answered by the app's handler
            await self.app(scope, limited_receive, send)
        finally:
            self.bytes_in_flight -= received

    def _too_large(self) -> RequestProblem:
        return RequestProblem(
            413,
            f"The request body is larger than {self.max_upload_bytes} bytes, the most the "
            "service accepts (NETWORK_SECURITY_MAX_UPLOAD_BYTES); split the file, or score it "
            "with `kedro run --pipeline inference`.",
            headers=_CLOSE,
        )

    def _late(self) -> RequestProblem:
        return RequestProblem(
            408,
            f"The request body did not arrive within {self.timeout_seconds:g} s "
            "(NETWORK_SECURITY_BODY_TIMEOUT_SECONDS).",
            headers=_CLOSE,
        )

    def _busy(self) -> RequestProblem:
        return RequestProblem(
            503,
            f"The service is busy: the requests in progress hold {self.max_bytes_in_flight} "
            "bytes of bodies, the most it keeps at once "
            "(NETWORK_SECURITY_MAX_BODY_BYTES_IN_FLIGHT). Retry later.",
            headers={"Retry-After": "5", **_CLOSE},
        )


@asynccontextmanager
async def prediction_slot(slots: asyncio.Semaphore, settings: Any) -> AsyncIterator[None]:
    """One of ``max_concurrent_predictions`` slots to score a request (its body already read)
    in; others wait, a 503 after ``prediction_wait_seconds``."""
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
