"""The HTTP service: predictions from the champion, training behind a token (docs/service.md).

``network-security serve`` (or ``uvicorn network_security.service.app:app``). The project is
read through Kedro's own bootstrap and session; scoring is ``network_security.scoring``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from network_security import __version__
from network_security.sanitize import jsonable
from network_security.schema import feature_columns
from network_security.service import openapi
from network_security.service.champion import ChampionStore, LoadedModel
from network_security.service.inputs import RequestProblem
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
from network_security.service.training import TrainingAlreadyRunning, TrainingRunner

NO_MODEL = (
    "No champion model is available yet (no alias 'champion' in the model registry and no "
    "cached copy {name!r}): train one with `kedro run --pipeline training` in the project, "
    "or POST /train."
)
MODEL_UNREADABLE = (
    "The champion model could not be loaded (from the model registry or its cached copy "
    "{name!r}); the service log says why. Train one with `kedro run --pipeline training` in "
    "the project, or POST /train."
)


@dataclass
class ServiceState:
    """What the service holds between requests."""

    settings: ServiceSettings
    schema: dict[str, Any]
    scoring: dict[str, Any]
    champion: ChampionStore
    runner: TrainingRunner
    slots: asyncio.Semaphore

    def model(self) -> LoadedModel:
        """The champion, or a 503 that says how to get one (the file's name only: its path and
        why it could not be loaded are in the log, not in answers)."""
        if (loaded := self.champion.current()) is None:
            text = MODEL_UNREADABLE if self.champion.last_error else NO_MODEL
            raise RequestProblem(503, text.format(name=self.champion.path.name))
        return loaded


def load_project(settings: ServiceSettings) -> ServiceState:
    """The project through Kedro's session: parameters, catalog, kedro-mlflow's store."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project = settings.project_path.resolve()
    bootstrap_project(project)
    # relative paths in the configuration (the SQLite MLflow store) are the project's
    with contextlib.chdir(project), KedroSession.create(project, env=settings.kedro_env) as session:
        context = session.load_context()
        params = context.params
        cache = settings.model_path or Path(
            context.catalog.get("champion_model")._describe()["filepath"]
        )
        mlflow_config = getattr(context, "mlflow", None)
    if missing := [key for key in ("schema", "scoring") if key not in params]:
        raise RuntimeError(
            f"The project's parameters (conf/) have no {' or '.join(missing)}: "
            "expected in conf/base/parameters*.yml; the service cannot score."
        )
    uri = mlflow_config.server.mlflow_tracking_uri if mlflow_config else None
    if uri and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{project / uri.removeprefix('sqlite:///')}"
    champion = ChampionStore(project / cache.expanduser(), uri, settings.champion_refresh_seconds)
    experiment = mlflow_config.tracking.experiment.name if mlflow_config else "network_security"
    settings = settings.model_copy(update={"project_path": project})
    runner = TrainingRunner(settings, champion, uri, experiment)
    slots = asyncio.Semaphore(settings.max_concurrent_predictions)
    return ServiceState(settings, params["schema"], params["scoring"], champion, runner, slots)


async def _read_upload(request: Request, max_bytes: int) -> tuple[bytes, str]:
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


def require_token(
    request: Request,
    credentials: Annotated[
        HTTPAuthorizationCredentials | None,
        Security(HTTPBearer(auto_error=False, description=f"The server's {API_TOKEN_VARIABLE}.")),
    ] = None,
) -> None:
    """``Authorization: Bearer <token>`` must match the server's token (compared in constant
    time); 403 when the server has none."""
    expected = request.app.state.service.settings.api_token
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


def _routes(state: ServiceState) -> APIRouter:  # noqa: C901 - the routes, one closure each
    router, settings = APIRouter(), state.settings

    @router.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @router.get("/health", tags=["service"], response_model=openapi.Health)
    def health() -> dict[str, Any]:
        """Liveness, and whether a model is loaded to serve predictions."""
        loaded = state.champion.current()
        return {
            "status": "ok",
            "service_version": __version__,
            "model_loaded": loaded is not None,
            "model_version": loaded.version if loaded else None,
            "training_running": state.runner.running is not None,
        }

    no_model = openapi.problems({503: "No champion model yet."})

    @router.get("/model", tags=["service"], response_model=openapi.ModelInfo, responses=no_model)
    def model_info() -> dict[str, Any]:
        """The champion: version, when it was trained, its test metrics and threshold."""
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
        }
        return jsonable(info)

    @router.get("/predict", response_class=HTMLResponse, name="upload_form", tags=["predict"])
    def upload_form(request: Request) -> Response:
        """An HTML form to upload a CSV and see the predictions table."""
        loaded = state.champion.current()
        context = {
            "feature_count": len(feature_columns(state.schema)),
            "max_rows": settings.max_rows,
            "docs_url": "/docs",
            "max_size": f"{settings.max_upload_bytes / 1024**2:.3g} MiB",
            "model_version": loaded.version if loaded else None,
            "predict_url": request.url_for("predict").path,
        }
        return TEMPLATES.TemplateResponse(request, "upload.html", context, headers=HTML_HEADERS)

    @router.post("/predict", name="predict", tags=["predict"], **openapi.predict(state, settings))
    async def predict(request: Request) -> Response:
        """Score a CSV upload (field ``file``) or JSON ``{"records": [...]}`` with the champion."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        # each body is read (within its size and time: BodyLimitsMiddleware) before its
        # request waits for a scoring slot
        if content_type == "multipart/form-data":
            request.state.html = not wants_json(request.headers.get("accept"))
            loaded = await run_in_threadpool(state.model)
            data, source = await _read_upload(request, settings.max_upload_bytes)
            async with prediction_slot(state.slots, settings):
                scored = await run_in_threadpool(score_csv, state, loaded, data, source)
                del data
                if request.state.html:
                    features = feature_columns(state.schema)
                    page = (request, scored, features, loaded, source)
                    return await run_in_threadpool(predictions_page, *page)
                return JSONBody(frame_body(scored, loaded, source))
        if content_type == "application/json" or content_type.endswith("+json"):
            loaded = state.model()
            body = await request.body()
            async with prediction_slot(state.slots, settings):
                if len(body) < 4096:  # a few records: scored at once (a thread hop costs more)
                    return JSONBody(score_records(state, loaded, body))
                return JSONBody(await run_in_threadpool(score_records, state, loaded, body))
        raise RequestProblem(
            415,
            "POST /predict takes a CSV upload (multipart/form-data, field 'file') or a JSON "
            '(application/json) body {"records": [...]}, not '
            f"{content_type or 'a body without type'}.",
        )

    auth = {"dependencies": [Depends(require_token)], "tags": ["train"]}

    started = {"response_model": openapi.TrainingStarted, "responses": openapi.TRAIN_STARTED}

    @router.post("/train", status_code=202, **started, **auth)
    def start_training(request: Request) -> Response:
        """Start the training pipeline in the background; one run at a time."""
        try:
            job_id = state.runner.start()
        except TrainingAlreadyRunning as busy:
            running = {"job_id": state.runner.running} if state.runner.running else {}
            return JSONBody({"detail": str(busy), **running}, status_code=409)
        url = request.url_for("training_status", job_id=job_id).path
        body = {"job_id": job_id, "status": "queued", "status_url": url}
        return JSONBody(body, status_code=202, headers={"Location": url})

    job = {"response_model": openapi.TrainingJob, "responses": openapi.TRAIN_STATUS}

    @router.get("/train/{job_id}", name="training_status", **job, **auth)
    def training_status(job_id: str) -> dict[str, Any]:
        """A training job, from its MLflow run: status, promotion outcome, metrics."""
        if (job := state.runner.get(job_id)) is None:
            raise RequestProblem(
                404, f"No training job {job_id[:64]!r}: start one with POST /train."
            )
        return jsonable(job)

    return router


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


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The FastAPI application for ``settings`` (default: from the environment)."""
    state = load_project(settings := settings or ServiceSettings())

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
    app.include_router(_routes(state))
    app.add_exception_handler(RequestProblem, problem_response)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
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
