"""What the service's OpenAPI document says, as pydantic models FastAPI turns into schemas.

The JSON request model is generated from the project's schema (``records_model``): every
feature a required field whose values are an enum of its allowed values, other fields single
JSON values not named like a verdict column. The limits (``MAX_ROWS``, ``MAX_COLUMNS``,
``MAX_UPLOAD_BYTES``) are stated in descriptions and answered 413, not written as
``maxItems``: a body over them is well formed, only too large. The multipart upload is
documented by a pattern of the simplest CSV the service scores (columns in any order and extra
columns are accepted too). ``tests/service/test_fuzzing.py`` checks every operation with
Schemathesis against this document.
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


def _check_extra_fields(record: BaseModel) -> BaseModel:
    """Other fields hold one value each and are not named like a verdict column."""
    for name, value in (record.model_extra or {}).items():
        if name in OUTPUT_COLUMNS or isinstance(value, dict | list):
            raise ValueError(f"{name}: a single value, not named like a verdict column")
    return record


def records_model(schema: dict[str, Any], max_rows: int, max_columns: int) -> type[BaseModel]:
    """The JSON body ``{"records": [...]}``, generated from the schema."""
    allowed = allowed_values(schema)
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
        **{name: (Literal[tuple(values)], ...) for name, values in allowed.items()},
    )
    return create_model(
        "PredictRecords",
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, description=f"At most {max_rows} (413)")),
    )


def _inline(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its definitions inlined (they are used once each)."""
    document = model.model_json_schema()
    document["properties"]["records"]["items"] = document.pop("$defs")["Record"]
    return document


def predict_operation(schema: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The request bodies and the 200 answer of ``POST /predict``."""
    allowed = allowed_values(schema)
    header = ",".join(allowed)
    row = ",".join("(?:" + "|".join(map(str, values)) + ")" for values in allowed.values())
    example_row = ",".join(str(values[0]) for values in allowed.values())
    record = {"url": "https://example.test/login", **{n: v[0] for n, v in allowed.items()}}
    prediction = {"type": "object", "required": [*feature_columns(schema), *OUTPUT_COLUMNS]}
    return {
        "requestBody": {"required": True, "content": {
            "application/json": {
                "schema": _inline(records_model(schema, settings.max_rows, settings.max_columns)),
                "example": {"records": [record]},
            },
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"], "additionalProperties": False,
                           "properties": {"file": {
                               "type": "string", "contentMediaType": "text/csv",
                               "pattern": f"^{re.escape(header)}(?:\\r?\\n{row})+(?:\\r?\\n)?$",
                               "description": "The CSV (a file, or the text): a header row, then "
                               f"one row per site, UTF-8, at most {settings.max_upload_bytes} "
                               "bytes; columns in any order, extra columns come back as sent."}}},
                "encoding": {"file": {"contentType": "text/csv"}},
                "example": {"file": f"{header}\n{example_row}\n"},
            },
        }},
        "responses": {"200": {
            "description": "Predictions: an HTML table for an upload (JSON with "
            "`Accept: application/json`), JSON for records.",
            "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {
                "schema": {"type": "object",
                           "required": ["model_version", "rows", "source", "predictions"],
                           "properties": {"model_version": {"type": ["string", "integer", "null"]},
                                          "rows": {"type": "integer", "minimum": 1},
                                          "source": {"type": "string"},
                                          "predictions": {"type": "array", "minItems": 1,
                                                          "items": prediction}}}}},
        }},
    }  # fmt: skip
