"""The HTTP service: predictions from the champion, training behind a token (docs/service.md).

``network-security serve`` (or ``uvicorn network_security.service.app:app``). The routes are
module-level routers; each reaches the service's state (``service.state``: the project read
through Kedro's session, the champion, the training runner) through a FastAPI dependency.
Scoring is ``network_security.scoring``.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from network_security import __version__
from network_security.sanitize import jsonable
from network_security.schema import feature_columns
from network_security.scoring import operating_points_of
from network_security.service import openapi
from network_security.service.inputs import RequestProblem, read_body, read_upload
from network_security.service.limits import BodyLimitsMiddleware, prediction_slot
from network_security.service.predictions import frame_body, score_csv, score_records
from network_security.service.rendering import (
    HTML_HEADERS,
    TEMPLATES,
    JSONBody,
    predictions_page,
    problem_response,
    wants_json,
)
from network_security.service.settings import (
    API_TOKEN_VARIABLE,
    MIN_API_TOKEN_LENGTH,
    ServiceSettings,
)
from network_security.service.state import ServiceState, State, load_project
from network_security.service.training import TrainingAlreadyRunning

_BEARER = HTTPBearer(auto_error=False, description=f"The server's {API_TOKEN_VARIABLE}.")


def require_token(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> None:
    """``Authorization: Bearer <token>`` must match the server's token (compared in constant
    time); 403 when the server has none."""
    expected = state.settings.api_token
    secret = expected.get_secret_value().strip() if expected is not None else ""
    if len(secret) < MIN_API_TOKEN_LENGTH:  # unset; a short one never gets past the settings
        raise RequestProblem(
            403,
            f"Training over HTTP is disabled: {API_TOKEN_VARIABLE} is not set on the server (or "
            f"shorter than {MIN_API_TOKEN_LENGTH} characters). Set it and restart the service, "
            "or run `kedro run --pipeline training`.",
        )
    if credentials is None:  # no header, another scheme, or no token
        raise RequestProblem(401, "Missing credentials: send `Authorization: Bearer <token>`.")
    token = credentials.credentials.strip().encode("utf-8")
    if not hmac.compare_digest(token, secret.encode("utf-8")):
        raise RequestProblem(401, "Invalid token for /train.")


service_router = APIRouter(tags=["service"])
predict_router = APIRouter(tags=["predict"])
train_router = APIRouter(tags=["train"], dependencies=[Depends(require_token)])


@service_router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/docs")


@service_router.get("/health", response_model=openapi.Health)
def health(state: State) -> dict[str, Any]:
    """Liveness, and whether a model is loaded to serve predictions."""
    loaded = state.champion.current()
    return {
        "status": "ok",
        "service_version": __version__,
        "model_loaded": loaded is not None,
        "model_version": loaded.version if loaded else None,
        "training_running": state.runner.running is not None,
    }


@service_router.get(
    "/model",
    response_model=openapi.ModelInfo,
    responses=openapi.problems({503: "No champion model yet."}),
)
def model_info(state: State) -> dict[str, Any]:
    """The champion: version, when it was trained, its test metrics, threshold and operating
    points (where allow / review / block change, with the error budget)."""
    loaded = state.model()
    model = loaded.model
    info = {
        "version": loaded.version,
        "trained_at": model.trained_at,
        "loaded_at": loaded.loaded_at,
        "metrics": model.metrics,
        "threshold": model.threshold,
        "phishing_label": model.phishing_label,
        "legitimate_label": model.legitimate_label,
        "feature_columns": list(model.feature_columns),
        "estimator": type(model.estimator).__name__,
        "params": model.params,
        "operating_points": operating_points_of(model),
    }
    return jsonable(info)


@predict_router.get("/predict", response_class=HTMLResponse, name="upload_form")
def upload_form(request: Request, state: State) -> Response:
    """An HTML form to upload a CSV and see the predictions table."""
    loaded, settings = state.champion.current(), state.settings
    context = {
        "feature_count": len(feature_columns(state.schema)),
        "max_rows": settings.max_rows,
        "docs_url": "/docs",
        "max_size": f"{settings.max_upload_bytes / 1024**2:.3g} MiB",
        "model_version": loaded.version if loaded else None,
        "budget": operating_points_of(loaded.model) if loaded else None,
        "predict_url": request.url_for("predict").path,
    }
    return TEMPLATES.TemplateResponse(request, "upload.html", context, headers=HTML_HEADERS)


@predict_router.post("/predict", name="predict", **openapi.PREDICT)
async def predict(
    request: Request,
    state: State,
    reasons: Annotated[
        str,
        Query(
            description="`true` to add each verdict's reasons to JSON records (a few times "
            "the work of the verdicts alone, so `false` by default); an upload always has "
            "them when scoring.reasons is on.",
            json_schema_extra={"enum": ["true", "false"]},
        ),
    ] = "false",
) -> Response:
    """Score a CSV upload (field ``file``) or JSON ``{"records": [...]}`` with the champion."""
    if reasons not in ("true", "false"):  # refused in the service's own error form
        raise RequestProblem(422, f"reasons must be true or false; got {reasons[:40]!r}.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _predict_upload(request, state)
    if content_type == "application/json" or content_type.endswith("+json"):
        return await _predict_records(request, state, reasons == "true")
    raise RequestProblem(
        415,
        "POST /predict takes a CSV upload (multipart/form-data, field 'file') or a JSON "
        '(application/json) body {"records": [...]}, not '
        f"{content_type or 'a body without type'}.",
    )


# Each body is read whole (within its size and time: BodyLimitsMiddleware) before its request
# waits for a scoring slot: the slots are for scoring only.


async def _predict_upload(request: Request, state: ServiceState) -> Response:
    """A CSV upload scored: the predictions table (HTML), or JSON when the client prefers."""
    request.state.html = not wants_json(request.headers.get("accept"))
    loaded = state.model()
    data, source = await read_upload(request, state.settings.max_upload_bytes)
    async with prediction_slot(state.slots, state.settings):
        scored = await run_in_threadpool(score_csv, state, loaded, data, source)
        del data
        if request.state.html:
            page = (request, scored, feature_columns(state.schema), loaded, source)
            return await run_in_threadpool(predictions_page, *page)
        return JSONBody(frame_body(scored, loaded, source))


async def _predict_records(request: Request, state: ServiceState, reasons: bool) -> Response:
    """JSON records scored, answered in JSON (with each verdict's reasons when asked)."""
    loaded = state.model()
    body = await read_body(request)
    async with prediction_slot(state.slots, state.settings):
        if len(body) < 4096:  # a few records, scored at once (a thread hop costs more)
            return JSONBody(score_records(state, loaded, body, reasons))
        return JSONBody(await run_in_threadpool(score_records, state, loaded, body, reasons))


@train_router.post(
    "/train",
    status_code=202,
    response_model=openapi.TrainingStarted,
    responses=openapi.TRAIN_STARTED,
)
def start_training(request: Request, state: State) -> Response:
    """Start the training pipeline in the background; one run at a time."""
    try:
        job_id = state.runner.start()
    except TrainingAlreadyRunning as busy:
        running = {"job_id": state.runner.running} if state.runner.running else {}
        return JSONBody({"detail": str(busy), **running}, status_code=409)
    url = request.url_for("training_status", job_id=job_id).path
    body = {"job_id": job_id, "status": "queued", "status_url": url}
    return JSONBody(body, status_code=202, headers={"Location": url})


@train_router.get(
    "/train/{job_id}",
    name="training_status",
    response_model=openapi.TrainingJob,
    responses=openapi.TRAIN_STATUS,
)
def training_status(job_id: str, state: State) -> dict[str, Any]:
    """A training job, from its MLflow run: status, promotion outcome, metrics."""
    if (job := state.runner.get(job_id)) is None:
        raise RequestProblem(404, f"No training job {job_id[:64]!r}: start one with POST /train.")
    return jsonable(job)


async def _on_http_error(request: Request, error: StarletteHTTPException) -> Response:
    """Starlette's errors as JSON; a 405 lists every method some route takes at the path."""
    headers = dict(error.headers or {})
    if error.status_code == 405:
        scope = request.scope
        takes = [r for r in request.app.router.routes if r.matches(scope)[0] != Match.NONE]
        methods = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        full = [
            m
            for m in methods
            if any(r.matches(scope | {"method": m})[0] == Match.FULL for r in takes)
        ]
        headers["Allow"] = ", ".join(full)
    return JSONBody({"detail": error.detail}, status_code=error.status_code, headers=headers)


def _openapi(app: FastAPI, state: ServiceState) -> Callable[[], dict[str, Any]]:
    """FastAPI's OpenAPI document of ``app``, with the request bodies of ``POST /predict``
    that come from the project's schema."""
    document = app.openapi

    def make() -> dict[str, Any]:
        if app.openapi_schema is None:
            openapi.document_predict(document(), state)
        return app.openapi_schema

    return make


def _add_middleware(app: FastAPI, settings: ServiceSettings) -> None:
    """The body limits, CORS when origins are listed, then (outermost) the trusted hosts."""
    app.add_middleware(
        BodyLimitsMiddleware,
        max_upload_bytes=settings.max_upload_bytes,
        timeout_seconds=settings.body_timeout_seconds,
        max_bytes_in_flight=settings.max_body_bytes_in_flight,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
        )
    # outermost: a request for another host name (DNS rebinding) is refused before anything
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The FastAPI application for ``settings`` (default: from the environment)."""
    state = load_project(settings or ServiceSettings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(state.champion.refresh)
        try:
            yield
        finally:
            await run_in_threadpool(state.runner.shutdown)

    app = FastAPI(
        title="network_security",
        version=__version__,
        lifespan=lifespan,
        description="Phishing website detection: score sites with the champion model, and "
        "retrain it behind a token.",
    )
    app.state.service = state
    for router in (service_router, predict_router, train_router):
        app.include_router(router)
    app.openapi = _openapi(app, state)
    app.add_exception_handler(RequestProblem, problem_response)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    _add_middleware(app, state.settings)
    return app


_default_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """``app``, made on first access with settings from the environment (``uvicorn
    network_security.service.app:app``), so importing this module has no effects."""
    global _default_app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _default_app = _default_app or create_app()
    return _default_app
