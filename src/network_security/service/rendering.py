"""Answers in the form the client asked for (``Accept``): JSON bodies, or HTML pages (the
upload form, the predictions table, errors) with their security headers."""

from __future__ import annotations

import html
import re
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.requests import Request
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from network_security.reasons import REASONS_COLUMN
from network_security.sanitize import dumps
from network_security.scoring import OUTPUT_COLUMNS, operating_points_of
from network_security.service.inputs import RequestProblem

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def risk_class(level: Any) -> str:
    """A risk level as a CSS class suffix (``High risk`` -> ``high-risk``)."""
    return re.sub(r"[^a-z0-9]+", "-", str(level).lower()).strip("-") or "unknown"


TEMPLATES.env.filters["risk_class"] = risk_class


class JSONBody(Response):
    """A JSON answer written by the project's one JSON sanitiser."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else dumps(content)


def wants_json(accept: str | None) -> bool:
    """True when ``Accept`` prefers JSON to HTML (HTML is the default)."""
    choices = ["text/html", "application/json"]
    return parse_accept_header(accept, MIMEAccept).best_match(choices) == "application/json"


def problem_response(request: Request, problem: RequestProblem) -> Response:
    """The error as JSON ``{"detail", "column", "row", "value"}``, or as a page for a browser."""
    headers = {"WWW-Authenticate": "Bearer"} if problem.status_code == 401 else {}
    headers |= problem.headers or {}
    if not getattr(request.state, "html", False):
        body = {"detail": problem.message, **problem.details()}
        return JSONBody(body, status_code=problem.status_code, headers=headers)
    context = {
        "status_code": problem.status_code,
        "message": problem.message,
        "reason": HTTPStatus(problem.status_code).phrase,
        "details": problem.details(),
        "upload_url": request.url_for("upload_form").path,
    }
    headers = HTML_HEADERS | headers
    return TEMPLATES.TemplateResponse(request, "error.html", context, problem.status_code, headers)


def predictions_page(
    request: Request, scored: pd.DataFrame, features: list[str], loaded: Any, source: str
) -> Response:
    """The predictions table: the caller's own columns, the verdict (with its reasons when
    scoring adds them), then the features."""
    verdict = ["label", "phishing_probability", "risk_level", "recommended_action"]
    verdict += [REASONS_COLUMN] * (REASONS_COLUMN in scored.columns) + ["prediction"]
    added = {*OUTPUT_COLUMNS, REASONS_COLUMN}
    own = [c for c in scored.columns if c not in features and c not in added]
    columns = [*own, *verdict, *[c for c in features if c in scored.columns]]
    levels = scored["risk_level"].astype(str)
    riskiest = scored.groupby(levels)["phishing_probability"].max().sort_values(ascending=False)
    classes = {level: risk_class(level) for level in riskiest.index}
    counts = levels.value_counts()
    shown = scored[columns].copy()
    shown["phishing_probability"] = shown["phishing_probability"].map("{:.3f}".format)
    # the cells of a row as one escaped string: ~40,000 cells render 5x faster than cell by cell
    cells = shown.astype(str).to_numpy().tolist()
    rows = [
        (classes[level], level, Markup("".join(f"<td>{html.escape(c)}</td>" for c in row)))
        for level, row in zip(levels.tolist(), cells, strict=True)
    ]
    context = {
        "source": source,
        "model_version": loaded.version,
        "trained_at": loaded.model.trained_at,
        "budget": operating_points_of(loaded.model),
        "row_count": len(scored),
        "columns": columns,
        "rows": rows,
        "risk_counts": [(level, classes[level], int(counts[level])) for level in classes],
        "upload_url": request.url_for("upload_form").path,
    }
    return TEMPLATES.TemplateResponse(request, "predictions.html", context, headers=HTML_HEADERS)
