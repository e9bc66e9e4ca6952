"""Answers in the form the client asked for (``Accept``): JSON bodies, or HTML pages (the
upload form, the predictions table, errors) with their security headers."""

from __future__ import annotations

import base64
import html
import re
import secrets
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.requests import Request
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from network_security.datasets.safe_csv import LINE_TERMINATOR, neutralise_formulas
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
ACTION_ORDER = ("review", "block", "allow")
"""The order of the predictions table: what needs an analyst first, then blocks, then allows."""
HISTOGRAM_BINS = 20


def with_script_nonce(headers: dict[str, str], nonce: str) -> dict[str, str]:
    """``headers`` whose Content-Security-Policy also runs the inline scripts marked ``nonce``
    (and no other script: no 'unsafe-inline', no 'unsafe-eval')."""
    policy = f"{headers['Content-Security-Policy']}; script-src 'nonce-{nonce}'"
    return headers | {"Content-Security-Policy": policy}


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


def review_first(scored: pd.DataFrame) -> np.ndarray:
    """The positions of the rows in table order: review, then block, then allow (any other
    action last); within an action by P(phishing), highest first; ties in upload order."""
    rank = {action: position for position, action in enumerate(ACTION_ORDER)}
    actions = scored["recommended_action"].astype(str).map(rank).fillna(len(rank))
    probability = scored["phishing_probability"].to_numpy(dtype=float)
    return np.lexsort((-probability, actions.to_numpy()))  # stable: last key sorts first


def probability_histogram(probability: np.ndarray, points: dict[str, Any]) -> Markup:
    """An inline SVG of the P(phishing) counts in ``HISTOGRAM_BINS`` bins over [0, 1], with
    the operating points ``allow_below`` and ``block_above`` as labelled vertical lines.

    Hand-written SVG: a score of rectangles and two lines; a plotting library would add a
    dependency and an image the page's Content-Security-Policy would have to allow."""
    counts, edges = np.histogram(probability, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    width, height, left, top, bottom = 600, 170, 40, 30, 20
    plot_w, plot_h = width - left - 10, height - top - bottom
    tallest = max(int(counts.max(initial=0)), 1)
    x = lambda p: left + plot_w * float(p)  # noqa: E731
    parts = [
        f'<svg id="histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Histogram of P(phishing) of the {len(probability)} scored rows">',
        f'<text x="{left}" y="{top - 18}" font-size="11">rows per P(phishing) bin '
        f"(highest bin {tallest})</text>",
    ]
    for count, start, end in zip(counts.tolist(), edges[:-1], edges[1:], strict=True):
        bar = plot_h * count / tallest
        parts.append(
            f'<rect class="bin" x="{x(start) + 0.5:.1f}" y="{top + plot_h - bar:.1f}" '
            f'width="{x(end) - x(start) - 1:.1f}" height="{bar:.1f}" fill="#7a9cc6" '
            f'data-count="{count}"><title>{start:.2f}-{end:.2f}: {count}</title></rect>'
        )
    axis = top + plot_h
    parts.append(f'<line x1="{left}" y1="{axis}" x2="{x(1)}" y2="{axis}" stroke="#333"/>')
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{axis + 14}" font-size="10" '
            f'text-anchor="middle">{tick:g}</text>'
        )
    for row, (name, label, colour) in enumerate(
        (("allow_below", "allow below", "#2e7d32"), ("block_above", "block above", "#c0392b"))
    ):
        at = x(points[name])
        parts.append(
            f'<line class="operating-point" data-point="{name}" x1="{at:.1f}" y1="{top - 4}" '
            f'x2="{at:.1f}" y2="{axis}" stroke="{colour}" stroke-width="2" '
            f'stroke-dasharray="4 2"/>'
            f'<text x="{at + 3:.1f}" y="{top + 8 + 12 * row}" font-size="11" '
            f'fill="{colour}">{label} {points[name]:.4f}</text>'
        )
    return Markup("".join([*parts, "</svg>"]))


def scored_csv_link(scored: pd.DataFrame) -> str:
    """The scored rows as a ``data:text/csv`` URL: the columns and order the inference pipeline
    writes, formula-like text cells neutralised for spreadsheets (``safe_csv``), CRLF lines."""
    text = neutralise_formulas(scored).to_csv(index=False, lineterminator=LINE_TERMINATOR)
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f"data:text/csv;charset=utf-8;base64,{encoded}"


def table_rows(
    scored: pd.DataFrame, columns: list[str], classes: dict[str, str]
) -> list[tuple[str, str, str, int, Markup]]:
    """The table's rows review first (``review_first``): risk class, risk level, action, place
    in the upload (from 1) and the row's cells, escaped, as one string."""
    order = review_first(scored)
    shown = scored[columns].iloc[order].copy()
    shown["phishing_probability"] = shown["phishing_probability"].map("{:.3f}".format)
    # the cells of a row as one escaped string: ~40,000 cells render 5x faster than cell by cell
    cells = shown.astype(str).to_numpy().tolist()
    levels = scored["risk_level"].astype(str).to_numpy()[order].tolist()
    actions = scored["recommended_action"].astype(str).to_numpy()[order].tolist()
    return [
        (classes[level], level, action, position + 1, Markup("".join(map(_cell, row))))
        for level, action, position, row in zip(levels, actions, order.tolist(), cells, strict=True)
    ]


def _cell(text: str) -> str:
    return f"<td>{html.escape(text)}</td>"


def predictions_page(
    request: Request, scored: pd.DataFrame, features: list[str], loaded: Any, source: str
) -> Response:
    """The predictions table, review first: the row's place in the upload, the caller's own
    columns, the verdict (with its reasons when scoring adds them), then the features; above
    it the histogram of P(phishing) with the operating points and the scored CSV to download."""
    verdict = ["label", "phishing_probability", "risk_level", "recommended_action"]
    verdict += [REASONS_COLUMN] * (REASONS_COLUMN in scored.columns) + ["prediction"]
    added = {*OUTPUT_COLUMNS, REASONS_COLUMN}
    own = [c for c in scored.columns if c not in features and c not in added]
    columns = [*own, *verdict, *[c for c in features if c in scored.columns]]
    levels = scored["risk_level"].astype(str)
    riskiest = scored.groupby(levels)["phishing_probability"].max().sort_values(ascending=False)
    classes = {level: risk_class(level) for level in riskiest.index}
    counts = levels.value_counts()
    rows = table_rows(scored, columns, classes)
    budget = operating_points_of(loaded.model)
    nonce = secrets.token_urlsafe(16)
    context = {
        "source": source,
        "model_version": loaded.version,
        "trained_at": loaded.model.trained_at,
        "budget": budget,
        "row_count": len(scored),
        "columns": columns,
        "rows": rows,
        "actions": [(a, int((scored["recommended_action"] == a).sum())) for a in ACTION_ORDER],
        "risk_counts": [(level, classes[level], int(counts[level])) for level in classes],
        "histogram": probability_histogram(scored["phishing_probability"].to_numpy(float), budget),
        "csv_url": scored_csv_link(scored),
        "csv_name": f"{Path(source).stem or 'upload'}-predictions.csv",
        "histogram_bins": HISTOGRAM_BINS,
        "nonce": nonce,
        "upload_url": request.url_for("upload_form").path,
    }
    headers = with_script_nonce(HTML_HEADERS, nonce)
    return TEMPLATES.TemplateResponse(request, "predictions.html", context, headers=headers)
