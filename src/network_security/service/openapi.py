"""What the service's OpenAPI document says, as pydantic models FastAPI turns into schemas.

The JSON request model is generated from the project's schema (``records_model``), each feature
an enum of its allowed values; the multipart upload is documented by a pattern of the simplest
CSV the service scores. Limits are stated in descriptions and answered 413 (a body over them is
well formed, only too large). ``tests/service/test_fuzzing.py`` fuzzes the document.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from network_security.schema import allowed_values, feature_columns
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


def _check_extra_fields(record: BaseModel) -> BaseModel:
    """Other fields hold one value each and are not named like a verdict column."""
    for name, value in (record.model_extra or {}).items():
        if name in OUTPUT_COLUMNS or isinstance(value, dict | list):
            raise ValueError(f"{name}: a single value, not named like a verdict column")
    return record


def records_model(schema: dict[str, Any], max_rows: int, max_columns: int) -> type[BaseModel]:
    """The JSON body ``{"records": [...]}``, generated from the schema."""
    extra = {
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        "propertyNames": {"not": {"enum": list(OUTPUT_COLUMNS)}},
    }
    record = create_model(
        "Record",
        __validators__={"extras": model_validator(mode="after")(_check_extra_fields)},
        __config__=ConfigDict(extra="allow", json_schema_extra=extra),
        __doc__=f"One site: every feature, and at most {max_columns} fields in all (more is a "
        "413); other fields (an id, a URL) come back unchanged with the verdict.",
        **{name: (Literal[tuple(v)], ...) for name, v in allowed_values(schema).items()},
    )
    return create_model(
        "PredictRecords",
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, description=f"At most {max_rows} (413)")),
    )


def predict(state: Any, settings: Any) -> dict[str, Any]:
    """The documentation of ``POST /predict``: its two request bodies and its answers."""
    allowed = allowed_values(state.schema)
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
    records = records_model(
        state.schema, settings.max_rows, settings.max_columns
    ).model_json_schema()
    records["properties"]["records"]["items"] = records.pop("$defs")["Record"]  # used once
    example = {"url": "https://example.test/login", **{n: v[0] for n, v in allowed.items()}}
    prediction = create_model(
        "Prediction",
        __config__=ConfigDict(extra="allow"),
        **dict.fromkeys([*feature_columns(state.schema), *OUTPUT_COLUMNS], (Any, ...)),
    )
    predictions = create_model(
        "Predictions",
        model_version=(str | int | None, ...),
        rows=(int, Field(ge=1)),
        source=(str, ...),
        predictions=(list[prediction], Field(min_length=1)),
    )
    content = {
        "application/json": {"schema": records, "example": {"records": [example]}},
        "multipart/form-data": {
            "schema": upload.model_json_schema(),
            "encoding": {"file": {"contentType": "text/csv"}},
            "example": {
                "file": header + "\n" + ",".join(str(v[0]) for v in allowed.values()) + "\n"
            },
        },
    }
    answers = {
        400: "Binary, non-UTF-8 or malformed input.",
        408: "The body did not arrive in time.",
        413: "Too large: bytes, rows or columns over the limits.",
        415: "Neither a multipart upload nor a JSON body.",
        422: "Schema errors, naming the column, row and value.",
        503: "No champion model yet, or busy (Retry-After).",
    }
    ok = {
        "model": predictions,
        "description": "Predictions: an HTML table for an upload (JSON with `Accept: "
        "application/json`), JSON for records.",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    return {
        "responses": {200: ok, **problems(answers, html=True)},
        "openapi_extra": {"requestBody": {"required": True, "content": content}},
    }
