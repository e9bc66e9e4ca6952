"""What the service's OpenAPI document says, as pydantic models FastAPI turns into schemas.

The JSON request body is documented by the model that validates it, generated from the
project's schema (``records.records_model``: each feature an enum of its allowed values); the
multipart upload by a pattern of the simplest CSV the service scores. Both depend on the project,
so ``document_predict`` adds them to the document the app makes. Limits are stated in
descriptions and answered 413 (a body over them is well formed, only too large).
``tests/service/test_fuzzing.py`` fuzzes the document.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from network_security.schema import allowed_values
from network_security.scoring import OUTPUT_COLUMNS


class Problem(BaseModel):
    """An error: what is wrong and what to do, with the column, row and value when known."""

    detail: str
    column: str | None = None
    row: int | None = None
    value: Any = None
    job_id: str | None = None


class Health(BaseModel):
    status: Literal["ok"]
    service_version: str
    model_loaded: bool
    model_version: str | None
    training_running: bool


class OperatingPoints(BaseModel):
    """Where the recommended action changes: ``allow`` when P(phishing) < ``allow_below``,
    ``block`` when P(phishing) > ``block_above``, else ``review``. ``source`` ``training``:
    chosen within the error budget (``max_missed_phishing``, ``max_false_block``), with the
    rates expected on the training split's out-of-fold predictions; ``threshold``: a model
    trained without a budget, both points at its threshold."""

    allow_below: float
    block_above: float
    source: Literal["training", "threshold"]
    max_missed_phishing: float | None = None
    max_false_block: float | None = None
    expected_missed_phishing: float | None = None
    expected_false_block: float | None = None
    expected_review_share: float | None = None


class ModelInfo(BaseModel):
    version: str
    trained_at: str | None
    loaded_at: str
    metrics: dict[str, float | None]
    threshold: float
    phishing_label: int
    legitimate_label: int
    feature_columns: list[str]
    estimator: str
    params: dict[str, Any]
    operating_points: OperatingPoints


class TrainingStarted(BaseModel):
    job_id: str
    status: str
    status_url: str


class TrainingJob(BaseModel):
    """A training job as its MLflow run reports it (exit code, error and output: the starting
    service process only)."""

    job_id: str
    run_id: str
    pipeline: str | None
    status: Literal["queued", "running", "succeeded", "failed"]
    created_at: str | None
    finished_at: str | None
    exit_code: int | None
    promoted: bool | None
    reason: str | None
    previous_model_version: str | None
    model_version: str | None
    candidate_version: str | None
    metrics: dict[str, float | None]
    error: str | None
    log_tail: list[str]


def problems(statuses: dict[int, str], html: bool = False) -> dict[int | str, dict[str, Any]]:
    """Documented error answers: a ``Problem`` (or, with ``html``, the same as a page)."""
    extra = {"content": {"text/html": {"schema": {"type": "string"}}}} if html else {}
    return {
        code: {"model": Problem, "description": text, **extra} for code, text in statuses.items()
    }


_AUTH = problems(
    {
        401: "Missing or wrong bearer token.",
        403: "Training over HTTP is disabled (no token on the server).",
    }
)
_AUTH[401]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
_STARTED = {
    "description": "The run started; poll its status_url.",
    "headers": {"Location": {"schema": {"type": "string"}}},
    "links": {
        "status": {
            "operationId": "training_status_train__job_id__get",
            "parameters": {"job_id": "$response.body#/job_id"},
        }
    },
}
TRAIN_STARTED = {
    202: _STARTED,
    **_AUTH,
    **problems({409: "A training run of this project is in progress."}),
}
TRAIN_STATUS = {**_AUTH, **problems({404: "No such job."})}


_ANSWERS = {
    400: "Binary, non-UTF-8 or malformed input.",
    408: "The body did not arrive in time.",
    413: "Too large: bytes, rows or columns over the limits.",
    415: "Neither a multipart upload nor a JSON body.",
    422: "Schema errors, naming the column, row and value.",
    503: "No champion model yet, or busy (Retry-After).",
}


class Reason(BaseModel):
    """One indicator behind a verdict: setting it alone to its legitimate value (review, block)
    would lower P(phishing) by ``contribution`` (positive: toward phishing); setting it to its
    phishing value (allow) would raise P(phishing) by -``contribution`` (negative: toward
    legitimate)."""

    indicator: str
    value: int
    contribution: float


_PREDICTION = create_model(
    "Prediction",
    __config__=ConfigDict(extra="allow"),
    __doc__="A site as sent (its feature values as read), then its verdict.",
    **dict.fromkeys(OUTPUT_COLUMNS, (Any, ...)),
    reasons=(
        list[Reason] | str | None,
        Field(
            None,
            description="The strongest indicators first (at most scoring.reasons.top_k), when "
            "scoring.reasons is enabled: a list for JSON records, the text "
            "`SSLfinal_State=-1 (+0.31); URL_of_Anchor=-1 (+0.22)` (as in the CSV) for an upload.",
        ),
    ),
)
_PREDICTIONS = create_model(
    "Predictions",
    model_version=(str | int | None, ...),
    rows=(int, Field(ge=1)),
    source=(str, ...),
    predictions=(list[_PREDICTION], Field(min_length=1)),
)
PREDICT = {
    "responses": {
        200: {
            "model": _PREDICTIONS,
            "description": "Predictions: an HTML table for an upload (JSON with `Accept: "
            "application/json`), JSON for records.",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **problems(_ANSWERS, html=True),
    },
    # the bodies come from the project's schema: ``document_predict`` fills them in
    "openapi_extra": {"requestBody": {"required": True, "content": {}}},
}
"""The documentation of ``POST /predict`` that does not depend on the project."""


def document_predict(document: dict[str, Any], state: Any) -> None:
    """Put the two request bodies of ``POST /predict`` into the OpenAPI ``document``: the
    JSON records (the schema of the model that validates them) and the CSV upload."""
    settings, allowed = state.settings, allowed_values(state.schema)
    header = ",".join(allowed)
    row = ",".join("(?:" + "|".join(map(str, values)) + ")" for values in allowed.values())
    file = Field(
        pattern=f"^{re.escape(header)}(?:\\r?\\n{row})+(?:\\r?\\n)?$",
        json_schema_extra={"contentMediaType": "text/csv"},
        description=f"The CSV (a file, or the text): a header row, then one row per site, "
        f"UTF-8, at most {settings.max_upload_bytes} bytes; columns in any order, extra "
        "columns come back as sent.",
    )
    upload = create_model("Upload", __config__=ConfigDict(extra="forbid"), file=(str, file))
    records = state.records.model_json_schema()
    records["properties"]["records"]["items"] = records.pop("$defs")["Record"]  # used once
    example = {"url": "https://example.test/login", **{n: v[0] for n, v in allowed.items()}}
    first_row = ",".join(str(v[0]) for v in allowed.values())
    document["paths"]["/predict"]["post"]["requestBody"]["content"] = {
        "application/json": {"schema": records, "example": {"records": [example]}},
        "multipart/form-data": {
            "schema": upload.model_json_schema(),
            "encoding": {"file": {"contentType": "text/csv"}},
            "example": {"file": f"{header}\n{first_row}\n"},
        },
    }
