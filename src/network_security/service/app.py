"""The HTTP service: predictions from the champion model, training behind a token.

Start it with ``network-security serve`` (or ``uvicorn network_security.service.app:app``).

- ``GET /`` -> the OpenAPI docs; ``GET /health``; ``GET /model``: the champion's version, training
  time and test metrics.
- ``POST /predict``: a CSV upload (multipart field ``file``) -> an HTML table, or JSON with
  ``Accept: application/json``; a JSON body ``{"records": [...]}`` -> JSON predictions. Scoring is
  ``network_security.scoring.score_frame``, the function the inference pipeline runs.
- ``POST /train`` (``Authorization: Bearer <NETWORK_SECURITY_API_TOKEN>``) starts the training
  pipeline in the background; ``GET /train/{job_id}`` reports it.

Limits (upload size, rows, columns) come from ``ServiceSettings``. Bad input gets a 4xx that
says what is wrong and where (column, row, value); uploads are processed in memory (or in the
system's temporary directory), never written into the project.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path, PurePath
from typing import Annotated, Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates
from kedro.config import OmegaConfigLoader
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from network_security import __version__
from network_security.schema import feature_columns
from network_security.scoring import OUTPUT_COLUMNS as VERDICT_COLUMNS
from network_security.scoring import (
    InputValidationError,
    Verdicts,
    check_feature_columns,
    check_feature_matrix,
    check_inference_frame,
    refuse_verdict_columns,
    score_features,
    score_frame,
)
from network_security.service.champion import ChampionStore, LoadedModel, project_tracking_uri
from network_security.service.inputs import (
    RequestProblem,
    read_csv_upload,
    read_records,
    records_table,
)
from network_security.service.openapi import (
    AUTH_RESPONSES,
    JOB_SCHEMA,
    error_response,
    install_openapi,
)
from network_security.service.settings import (
    API_TOKEN_VARIABLE,
    MIN_API_TOKEN_LENGTH,
    ServiceSettings,
)
from network_security.service.training import TrainingAlreadyRunning, TrainingRunner

logger = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
MULTIPART_OVERHEAD_BYTES = 64 * 1024
OUTPUT_COLUMNS = ("label", "phishing_probability", "risk_level", "recommended_action", "prediction")
NO_MODEL_MESSAGE = (
    "No champion model is available yet (no alias 'champion' in the model registry and no "
    "cached copy at {path}): train one with "
    "`kedro run --pipeline training` in the project, or POST /train."
)


def _risk_class(level: Any) -> str:
    """A risk level as a CSS class suffix (``High risk`` -> ``high-risk``)."""
    return re.sub(r"[^a-z0-9]+", "-", str(level).lower()).strip("-") or "unknown"


TEMPLATES.env.filters["risk_class"] = _risk_class

HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# ------------------------------------------------------------------------------ state


def project_config_loader(settings: ServiceSettings) -> Any:
    """Kedro's config loader on the project's conf/, with the project's loader settings."""
    from network_security import settings as project_settings

    loader_class = getattr(project_settings, "CONFIG_LOADER_CLASS", OmegaConfigLoader)
    loader_args = dict(getattr(project_settings, "CONFIG_LOADER_ARGS", {}))
    conf_source = settings.project_path / "conf"
    if not conf_source.is_dir():
        raise RuntimeError(
            f"No Kedro configuration at {conf_source}: set NETWORK_SECURITY_PROJECT_PATH to the "
            "project root (the folder holding pyproject.toml and conf/), or start the service "
            "there."
        )
    return loader_class(conf_source=str(conf_source), env=settings.kedro_env, **loader_args)


def catalog_filepath(catalog: dict[str, Any], name: str, project_path: Path) -> Path | None:
    """The local file behind catalog entry ``name`` (looking inside wrapping datasets)."""
    entry = catalog.get(name)
    while isinstance(entry, dict) and "filepath" not in entry:
        entry = entry.get("dataset")
    filepath = entry.get("filepath") if isinstance(entry, dict) else None
    if not isinstance(filepath, str) or "://" in filepath:
        return None
    path = Path(filepath)
    return path if path.is_absolute() else project_path / path


def training_report_paths(loader: Any, settings: ServiceSettings) -> dict[str, Path | None]:
    """Where a training run leaves its candidate model and promotion decision."""
    try:
        catalog = dict(loader["catalog"])
    except Exception as error:  # noqa: BLE001 - jobs then report less detail, nothing breaks
        logger.warning("Could not read the project's catalog: %s", error)
        catalog = {}
    return {
        "candidate_path": catalog_filepath(
            catalog, settings.training_candidate_dataset, settings.project_path
        ),
        "decision_path": catalog_filepath(
            catalog, settings.training_decision_dataset, settings.project_path
        ),
    }


@dataclass
class ServiceState:
    """What the service holds between requests."""

    settings: ServiceSettings
    schema: dict[str, Any]
    scoring: dict[str, Any]
    champion: ChampionStore
    runner: TrainingRunner
    slots: asyncio.Semaphore

    @classmethod
    def start(cls, settings: ServiceSettings) -> ServiceState:
        loader = project_config_loader(settings)
        parameters = dict(loader["parameters"])
        missing = [key for key in ("schema", "scoring") if key not in parameters]
        if missing:
            raise RuntimeError(
                f"The project's parameters under {settings.project_path / 'conf'} have no "
                f"{' or '.join(repr(k) for k in missing)} key (expected in conf/base/parameters.yml"
                " and conf/base/parameters_inference.yml); the service cannot score without them."
            )
        champion = ChampionStore(
            settings.resolved_model_path,
            project_tracking_uri(dict(loader["mlflow"]), settings.project_path),
            settings.champion_refresh_seconds,
        )
        if champion.refresh() is None:
            logger.warning(
                "%s", NO_MODEL_MESSAGE.format(path=settings.resolved_model_path)
            )  # fmt: skip
        runner = TrainingRunner(
            project_path=settings.project_path,
            champion=champion,
            pipeline=settings.training_pipeline,
            runtime_params=settings.training_runtime_params,
            kedro_env=settings.kedro_env,
            timeout_seconds=settings.training_timeout_seconds,
            jobs_kept=settings.training_jobs_kept,
            **training_report_paths(loader, settings),
        )
        return cls(
            settings=settings,
            schema=parameters["schema"],
            scoring=parameters["scoring"],
            champion=champion,
            runner=runner,
            slots=asyncio.Semaphore(settings.max_concurrent_predictions),
        )

    def model(self) -> LoadedModel:
        """The champion, or a 503 that says how to get one."""
        loaded = self.champion.current()
        if loaded is None:
            message = self.champion.last_error or NO_MODEL_MESSAGE.format(
                path=self.settings.model_path
            )
            raise RequestProblem(503, message)
        return loaded


def _state(request: Request) -> ServiceState:
    return request.app.state.service


# ------------------------------------------------------------------------------ limits


class _BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """Answer 413 to a request body above ``max_body_bytes``, before it is read in full.

    A multipart upload may exceed the limit by the multipart framing (the file itself is
    checked exactly in the endpoint); any other body may not. A declared ``Content-Length``
    above the limit is refused before any byte is read; a body without one (chunked) is counted
    as it arrives and refused when it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes

    def _too_large(self) -> JSONResponse:
        return JSONResponse(
            {
                "detail": f"The request body is larger than {self.max_upload_bytes} bytes, the "
                "most the service accepts (NETWORK_SECURITY_MAX_UPLOAD_BYTES); split the file, "
                "or score it with `kedro run --pipeline inference`."
            },
            status_code=413,
            headers={"Connection": "close"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_body_bytes = self.max_upload_bytes
        for name, value in scope["headers"]:
            if name == b"content-type" and value.lower().startswith(b"multipart/"):
                max_body_bytes = self.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    response = JSONResponse({"detail": "Invalid Content-Length header."}, 400)
                    await response(scope, receive, send)
                    return
                if declared > max_body_bytes:
                    await self._too_large()(scope, receive, send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._too_large()(scope, receive, send)


# ------------------------------------------------------------------------------ negotiation


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def wants_json(accept: str | None) -> bool:
    """True when ``Accept`` names JSON at least as strongly as HTML (HTML is the default)."""
    quality: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            quality[media.lower()] = max(q, quality.get(media.lower(), 0.0))
    json_q = max(quality.get("application/json", 0.0), quality.get("application/*", 0.0))
    html_q = max(quality.get("text/html", 0.0), quality.get("text/*", 0.0))
    return json_q > 0 and json_q >= html_q


def _problem_response(request: Request, problem: RequestProblem) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if problem.status_code == 401 else None
    if problem.headers:
        headers = {**(headers or {}), **problem.headers}
    if getattr(request.state, "html", False):
        return TEMPLATES.TemplateResponse(
            request,
            "error.html",
            {
                "status_code": problem.status_code,
                "reason": HTTPStatus(problem.status_code).phrase,
                "message": problem.message,
                "details": problem.details(),
                "upload_url": request.url_for("upload_form").path,
            },
            status_code=problem.status_code,
            headers={**HTML_HEADERS, **(headers or {})},
        )
    body = {"detail": problem.message, **problem.details()}
    return JSONResponse(jsonable(body), status_code=problem.status_code, headers=headers)


def jsonable(value: Any) -> Any:
    """``value`` with what JSON cannot hold made plain: numpy scalars, NaN/inf (null), objects."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


# ------------------------------------------------------------------------------ scoring


class PredictRecords(BaseModel):
    """A JSON prediction request: the records to score, one object per site."""

    # the documented schema and a valid example come from the project's schema once the
    # service has started (network_security.service.openapi)
    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] = Field(
        description="Objects with every feature of the schema (values -1, 0 or 1); other fields "
        "(an id, a URL) are returned with the predictions."
    )


def _filename(upload: UploadFile) -> str:
    """The upload's file name, for messages: base name only, printable, at most 100 chars."""
    name = PurePath((upload.filename or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable())[:100]
    return name or "the uploaded file"


def _checked_problem(error: InputValidationError) -> RequestProblem:
    """A schema problem as a 422 naming the column, row and value."""
    value = error.value
    if isinstance(value, str):
        value = value[:200].encode("utf-8", "backslashreplace").decode("utf-8")
    return RequestProblem(422, str(error), column=error.column, row=error.row, value=value)


def _score(state: ServiceState, loaded: LoadedModel, frame: pd.DataFrame, source: str):
    """Schema checks, then the champion's predictions (runs in a worker thread)."""
    try:
        checked = check_inference_frame(frame, state.schema, source=source)
        return score_frame(loaded.model, checked, state.scoring)
    except InputValidationError as error:  # names the column, row and value
        raise _checked_problem(error) from None


def _score_csv(state: ServiceState, loaded: LoadedModel, data: bytes, source: str):
    settings = state.settings
    frame = read_csv_upload(
        data, source=source, max_rows=settings.max_rows, max_columns=settings.max_columns
    )
    return _score(state, loaded, frame, source)


def _score_records(state: ServiceState, loaded: LoadedModel, body: bytes | bytearray) -> bytes:
    """JSON records -> the JSON predictions body, without a DataFrame: the values go straight
    into an integer matrix, checked and scored by the functions the inference pipeline uses,
    and the verdicts are added to the records as parsed."""
    settings = state.settings
    features = feature_columns(state.schema)
    limits = {"max_rows": settings.max_rows, "max_columns": settings.max_columns}
    table = records_table(
        read_records(body, max_rows=settings.max_rows), required_columns=features, **limits
    )
    if table.lossy:  # a huge integer read as a float: read again, exactly, to name it as sent
        exact = read_records(body, max_rows=settings.max_rows, exact=True)
        table = records_table(exact, required_columns=features, **limits)
    try:
        refuse_verdict_columns(table.columns)
        if table.features is not None:
            matrix = check_feature_matrix(table.features, state.schema, source="records")
        else:
            matrix = check_feature_columns(table.feature_cells, state.schema, source="records")
        verdicts = score_features(loaded.model, matrix, state.scoring, columns=features)
    except InputValidationError as error:
        raise _checked_problem(error) from None
    records = table.records
    if table.features is None:  # the checked integers (a "1" sent as text -> 1)
        for j, name in enumerate(features):
            for record, value in zip(records, matrix[:, j].tolist(), strict=True):
                record[name] = value
    width = len(table.columns)
    for record in records:
        if len(record) != width:  # a field another record has: null here
            for column in table.columns:
                record.setdefault(column, None)
    verdict_columns = _verdict_columns(verdicts)
    names = list(verdict_columns)
    rows = zip(*verdict_columns.values(), strict=True)
    for record, values in zip(records, rows, strict=True):
        record.update(zip(names, values, strict=True))
    return _dumps(
        {
            "model_version": loaded.model.version,
            "rows": len(records),
            "source": "records",
            "predictions": records,
        }
    )


def _verdict_columns(verdicts: Verdicts) -> dict[str, list[Any]]:
    """The verdict columns as lists, in the order the inference pipeline writes them."""
    bands = verdicts.band.tolist()
    columns = {
        "prediction": verdicts.prediction.tolist(),
        "label": [verdicts.words[code] for code in verdicts.label_codes().tolist()],
        "phishing_probability": verdicts.phishing_probability.tolist(),
        "risk_level": [verdicts.levels[band] for band in bands],
        "recommended_action": [verdicts.actions[band] for band in bands],
        "model_version": [verdicts.model_version] * len(bands),
    }
    return {name: columns[name] for name in VERDICT_COLUMNS}


def _dumps(body: dict[str, Any]) -> bytes:
    """JSON bytes (orjson; the standard library for text orjson refuses, a lone surrogate)."""
    try:
        return orjson.dumps(body)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(jsonable(body), ensure_ascii=True, allow_nan=False).encode()


def _predictions_body(columns: dict[str, list[Any]], loaded: LoadedModel, source: str) -> bytes:
    """``{"model_version", "rows", "source", "predictions": [...]}``, one object per row."""
    names = list(columns)
    rows = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    return _dumps(
        {
            "model_version": loaded.model.version,
            "rows": len(rows),
            "source": source,
            "predictions": rows,
        }
    )


def _ordered_columns(scored: pd.DataFrame, schema: dict[str, Any]) -> list[str]:
    """Display order: the caller's own columns, the verdict, then the features."""
    features = feature_columns(schema)
    outputs = [c for c in OUTPUT_COLUMNS if c in scored.columns]
    own = [c for c in scored.columns if c not in features and c not in outputs]
    own = [c for c in own if c != "model_version"]
    return [*own, *outputs, *[c for c in features if c in scored.columns]]


def _json_predictions(scored: pd.DataFrame, loaded: LoadedModel, source: str) -> Response:
    """The scored rows of an upload as the JSON predictions body."""
    columns = {str(name): scored[name].tolist() for name in scored.columns}
    return Response(_predictions_body(columns, loaded, source), media_type="application/json")


def _html_predictions(
    request: Request, state: ServiceState, scored: pd.DataFrame, loaded: LoadedModel, source: str
) -> Response:
    """The predictions table page (rendered in a worker thread: large tables take a while)."""
    levels = scored["risk_level"].astype(str)
    riskiest = scored.groupby(levels)["phishing_probability"].max().sort_values(ascending=False)
    counts = levels.value_counts()
    columns = _ordered_columns(scored, state.schema)
    shown = scored[columns].copy()
    shown["phishing_probability"] = shown["phishing_probability"].map("{:.3f}".format)
    classes = {level: _risk_class(level) for level in riskiest.index}
    # the cells of a row as one escaped string: ~40,000 cells render 5x faster than cell by cell
    escape = html.escape
    rows = [
        (classes[level], level, Markup("".join(f"<td>{escape(cell)}</td>" for cell in cells)))
        for level, cells in zip(levels.tolist(), shown.astype(str).to_numpy().tolist(), strict=True)
    ]
    return TEMPLATES.TemplateResponse(
        request,
        "predictions.html",
        {
            "source": source,
            "model_version": loaded.model.version,
            "trained_at": loaded.model.trained_at,
            "row_count": len(scored),
            "columns": columns,
            "rows": rows,
            "risk_counts": [(level, classes[level], int(counts[level])) for level in classes],
            "upload_url": request.url_for("upload_form").path,
        },
        headers=HTML_HEADERS,
    )


# ------------------------------------------------------------------------------ routes

router = APIRouter()

PREDICT_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A UTF-8 CSV: a header row, then one row per site.",
                        }
                    },
                }
            },
            "application/json": {"schema": PredictRecords.model_json_schema()},
        },
    },
    "responses": {
        "200": {
            "description": "Predictions: an HTML table for an upload (JSON with "
            "`Accept: application/json`), JSON for records.",
            "content": {"text/html": {}, "application/json": {}},
        },
        "400": {"description": "Binary, non-UTF-8 or malformed input."},
        "413": {"description": "Too large: upload bytes, rows or columns over the limits."},
        "415": {"description": "Neither a multipart upload nor a JSON body."},
        "422": {"description": "Schema errors, naming the column and row."},
        "503": {"description": "No champion model yet."},
    },
}


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    """The OpenAPI documentation."""
    return RedirectResponse("/docs")


@router.get("/health", tags=["service"])
def health(request: Request) -> dict[str, Any]:
    """Liveness, and whether a model is loaded to serve predictions."""
    state = _state(request)
    loaded = state.champion.current()
    running = state.runner.running
    return {
        "status": "ok",
        "service_version": __version__,
        "model_loaded": loaded is not None,
        "model_version": loaded.model.version if loaded else None,
        "training_running": running is not None,
    }


@router.get("/model", tags=["service"], responses={503: error_response("No champion model yet.")})
def model_info(request: Request) -> dict[str, Any]:
    """The champion model: version, when it was trained, its test metrics and threshold."""
    state = _state(request)
    loaded = state.model()
    model = loaded.model
    return jsonable(
        {
            "version": model.version,
            "trained_at": model.trained_at,
            "loaded_at": loaded.loaded_at,
            "metrics": {name: float(value) for name, value in model.metrics.items()},
            "threshold": float(model.threshold),
            "phishing_label": model.phishing_label,
            "legitimate_label": model.legitimate_label,
            "feature_columns": list(model.feature_columns),
            "estimator": type(model.estimator).__name__,
            "params": model.params,
        }
    )


@router.get("/predict", response_class=HTMLResponse, name="upload_form", tags=["predict"])
def upload_form(request: Request) -> Response:
    """An HTML form to upload a CSV and see the predictions table."""
    state = _state(request)
    loaded = state.champion.current()
    return TEMPLATES.TemplateResponse(
        request,
        "upload.html",
        {
            "feature_count": len(feature_columns(state.schema)),
            "max_rows": state.settings.max_rows,
            "max_size": f"{state.settings.max_upload_bytes / 1024**2:.3g} MiB",
            "model_version": loaded.model.version if loaded else None,
            "predict_url": request.url_for("predict").path,
            "docs_url": "/docs",
        },
        headers=HTML_HEADERS,
    )


async def _read_upload(request: Request, settings: ServiceSettings) -> tuple[bytes, str]:
    """The bytes and file name of the multipart field ``file``, within the upload limit."""
    # the CSV may also come as the text of the field (curl -F 'file=<sites.csv'): the body
    # limit bounds it like a file
    async with request.form(
        max_files=1, max_fields=10, max_part_size=settings.max_upload_bytes
    ) as form:
        unknown = sorted({name for name in form if name != "file"})
        if unknown:
            shown = ", ".join(repr(name[:40]) for name in unknown[:5])
            raise RequestProblem(
                422,
                f"The upload has field(s) the service does not take ({shown}): send only the "
                "CSV, in the multipart field 'file'.",
                column=unknown[0][:100],
            )
        upload = form.get("file")
        if isinstance(upload, str):
            data = upload.encode("utf-8")
            if len(data) > settings.max_upload_bytes:
                raise RequestProblem(
                    413,
                    f"The CSV in the field 'file' is {len(data)} bytes; the service accepts at "
                    f"most {settings.max_upload_bytes} (NETWORK_SECURITY_MAX_UPLOAD_BYTES).",
                )
            return data, "the CSV in the field 'file'"
        if not isinstance(upload, UploadFile):
            raise RequestProblem(
                422,
                "The upload has no file in the multipart field 'file': send the CSV as "
                "file=@sites.csv (curl -F), or use the form at GET /predict.",
                column="file",
            )
        source = _filename(upload)
        if upload.size is not None and upload.size > settings.max_upload_bytes:
            raise RequestProblem(
                413,
                f"{source} is {upload.size} bytes; the service accepts at most "
                f"{settings.max_upload_bytes} (NETWORK_SECURITY_MAX_UPLOAD_BYTES).",
            )
        data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise RequestProblem(
            413,
            f"{source} is larger than {settings.max_upload_bytes} bytes, the most the service "
            "accepts (NETWORK_SECURITY_MAX_UPLOAD_BYTES).",
        )
    return data, source


@asynccontextmanager
async def _prediction_slot(state: ServiceState) -> AsyncIterator[None]:
    """One of the ``max_concurrent_predictions`` slots for reading and scoring a request.

    Requests beyond them wait (their bodies unread: the server stops reading a connection whose
    body is not consumed), so the memory that bodies and scoring take stays bounded whatever the
    number of clients; one that waits longer than ``prediction_wait_seconds`` gets a 503.
    """
    settings = state.settings
    try:
        async with asyncio.timeout(settings.prediction_wait_seconds):
            await state.slots.acquire()
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
        state.slots.release()


async def _read_body(request: Request, settings: ServiceSettings) -> bytes | bytearray:
    """The request body (within the body limit, which the middleware enforces as it arrives),
    read into one buffer of its declared length, within ``body_timeout_seconds``."""
    declared = request.headers.get("content-length", "")
    try:
        async with asyncio.timeout(settings.body_timeout_seconds):
            if not declared.isdigit():
                return await request.body()
            buffer = bytearray(int(declared))
            view = memoryview(buffer)
            filled = 0
            async for chunk in request.stream():
                end = filled + len(chunk)
                if end > len(buffer):
                    raise RequestProblem(400, "The request body is longer than its Content-Length.")
                view[filled:end] = chunk
                filled = end
    except TimeoutError:
        raise RequestProblem(
            408,
            f"The request body did not arrive within {settings.body_timeout_seconds:g} s "
            "(NETWORK_SECURITY_BODY_TIMEOUT_SECONDS).",
        ) from None
    if filled != len(buffer):
        raise RequestProblem(400, "The request body is shorter than its Content-Length.")
    return buffer


@router.post("/predict", name="predict", tags=["predict"], openapi_extra=PREDICT_OPENAPI)
async def predict(request: Request) -> Response:
    """Score a CSV upload (field ``file``) or JSON ``{"records": [...]}`` with the champion."""
    state = _state(request)
    settings = state.settings
    content_type = _media_type(request.headers.get("content-type"))
    if content_type == "multipart/form-data":
        request.state.html = not wants_json(request.headers.get("accept"))
        loaded = await run_in_threadpool(state.model)
        async with _prediction_slot(state):
            data, source = await _read_upload(request, settings)
            scored = await run_in_threadpool(_score_csv, state, loaded, data, source)
            del data
            if request.state.html:
                return await run_in_threadpool(
                    _html_predictions, request, state, scored, loaded, source
                )
            return _json_predictions(scored, loaded, source)
    if content_type == "application/json" or content_type.endswith("+json"):
        loaded = state.model()
        async with _prediction_slot(state):
            body = await _read_body(request, settings)
            if len(body) < 4096:  # a few records: scored at once (a thread hop costs more)
                answer = _score_records(state, loaded, body)
            else:
                answer = await run_in_threadpool(_score_records, state, loaded, body)
        return Response(answer, media_type="application/json")
    raise RequestProblem(
        415,
        f"POST /predict takes a CSV upload (multipart/form-data, field 'file') or a JSON body "
        f'(application/json) {{"records": [...]}}, not {content_type or "a body without type"}.',
    )


_BEARER = HTTPBearer(
    auto_error=False,
    description="The server's NETWORK_SECURITY_API_TOKEN (training over HTTP is off without it).",
)


def require_token(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> None:
    """``Authorization: Bearer <token>`` must match ``NETWORK_SECURITY_API_TOKEN``.

    (``_declared`` only puts the bearer scheme into the OpenAPI document; the header is read
    here, so that every malformed value gets the same 401.)"""
    expected = _state(request).settings.api_token
    secret = expected.get_secret_value().strip() if expected is not None else ""
    if len(secret) < MIN_API_TOKEN_LENGTH:  # unset; a short one never gets past the settings
        raise RequestProblem(
            403,
            f"Training over HTTP is disabled: {API_TOKEN_VARIABLE} is not set on the server "
            f"(or shorter than {MIN_API_TOKEN_LENGTH} characters). Set it and restart the "
            "service, or run `kedro run --pipeline training`.",
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not token.strip():
        raise RequestProblem(
            401, "Missing credentials: send `Authorization: Bearer <token>` to use /train."
        )
    if not hmac.compare_digest(token.strip().encode("utf-8"), secret.encode("utf-8")):
        raise RequestProblem(401, "Invalid token for /train.")


@router.post(
    "/train",
    status_code=202,
    tags=["train"],
    dependencies=[Depends(require_token)],
    responses={
        202: {
            "description": "The run started; poll its status_url.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["job_id", "status", "status_url"],
                        "properties": {
                            "job_id": {"type": "string"},
                            "status": {"type": "string"},
                            "status_url": {"type": "string"},
                        },
                    }
                }
            },
            "headers": {"Location": {"schema": {"type": "string"}}},
            "links": {
                "status": {
                    "operationId": "training_status_train__job_id__get",
                    "parameters": {"job_id": "$response.body#/job_id"},
                }
            },
        },
        **AUTH_RESPONSES,
        409: error_response(
            "A training run of this project is in progress (here or in another process).",
        ),
    },
)
def start_training(request: Request) -> JSONResponse:
    """Start the training pipeline in the background; one run at a time."""
    runner = _state(request).runner
    try:
        job = runner.start()
    except TrainingAlreadyRunning as busy:
        return JSONResponse({"detail": str(busy), "job_id": busy.job_id}, status_code=409)
    status_url = request.url_for("training_status", job_id=job.job_id).path
    return JSONResponse(
        {"job_id": job.job_id, "status": job.status, "status_url": status_url},
        status_code=202,
        headers={"Location": status_url},
    )


@router.get(
    "/train/{job_id}",
    name="training_status",
    tags=["train"],
    dependencies=[Depends(require_token)],
    responses={
        200: {"content": {"application/json": {"schema": JOB_SCHEMA}}},
        **AUTH_RESPONSES,
        404: error_response("No such job (jobs are forgotten when the service restarts)."),
    },
)
def training_status(request: Request, job_id: str) -> dict[str, Any]:
    """A training job's status; when done, whether it promoted a new champion, and metrics."""
    job = _state(request).runner.get(job_id)
    if job is None:
        raise RequestProblem(
            404,
            f"No training job {job_id[:64]!r} (jobs are kept in memory until the service "
            "restarts): start one with POST /train.",
        )
    return jsonable(job.to_dict())


# ------------------------------------------------------------------------------ app


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The FastAPI application for ``settings`` (default: from the environment)."""
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(ServiceState.start, settings)
        app.state.service = state
        logger.info(
            "Service ready: project %s, champion %s", settings.project_path,
            state.champion.current().model.version if state.champion.current() else "none",
        )  # fmt: skip
        try:
            yield
        finally:
            await run_in_threadpool(state.runner.shutdown)

    app = FastAPI(
        title="network_security",
        version=__version__,
        description="Phishing website detection: score sites with the champion model, "
        "and retrain it behind a token.",
        lifespan=lifespan,
    )
    app.include_router(router)

    @app.exception_handler(RequestProblem)
    async def _on_problem(request: Request, problem: RequestProblem) -> Response:
        return _problem_response(request, problem)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, error: StarletteHTTPException) -> Response:
        headers = dict(error.headers or {})
        if error.status_code == 405:  # every method of the path, not only one route's
            headers["Allow"] = ", ".join(_allowed_methods(request.app, request.scope))
        return JSONResponse(
            {"detail": error.detail}, status_code=error.status_code, headers=headers or None
        )

    install_openapi(app)

    app.add_middleware(BodySizeLimitMiddleware, max_upload_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
        )
    return app


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods some route of the app takes at the request's path (each method is tried
    against the routes, included routers too)."""
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]


_default_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """``app``: the application with settings from the environment, made on first access
    (``uvicorn network_security.service.app:app``), so importing this module has no effects."""
    global _default_app
    if name == "app":
        if _default_app is None:
            _default_app = create_app()
        return _default_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
