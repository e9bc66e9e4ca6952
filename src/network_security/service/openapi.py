"""The OpenAPI document of the service: request bodies generated from the one schema.

FastAPI documents the routes; what a ``POST /predict`` body may hold depends on the project's
schema (conf/base/parameters.yml: the features and their allowed values) and on the service's
limits, which are known once the service has started. ``install_openapi`` completes the document
then, so that it states exactly what the service accepts:

- JSON ``{"records": [...]}``: at least one record, each with every feature as an integer among
  its allowed values; other fields (an id, a URL) hold one JSON value each (not an object or a
  list) and may not take a name the verdict uses.

The limits (``MAX_ROWS``, ``MAX_COLUMNS``, ``MAX_UPLOAD_BYTES``) are stated in the descriptions
and answered with 413 (Content Too Large), not written as ``maxItems``/``maxProperties``: a body
over them is well formed, only too large.
- a multipart upload whose field ``file`` is the CSV: a file, or the CSV text itself. Its
  documented form is the simplest one (the features in schema order, then one row per site);
  columns in any order and extra columns are accepted as well.

Schemathesis (tests/service/test_fuzzing.py) checks every operation against this document.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from network_security.schema import allowed_values, feature_columns
from network_security.scoring import OUTPUT_COLUMNS

_ERROR = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What is wrong and what to do."},
        "column": {"type": "string"},
        "row": {"type": "integer"},
        "value": {},
    },
}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def error_response(description: str, html: bool = False, **extra: Any) -> dict[str, Any]:
    """A documented error response: JSON ``{"detail": ...}`` (or the same as an HTML page)."""
    content: dict[str, Any] = {"application/json": {"schema": _ERROR}}
    if html:
        content.update(_HTML)
    return {"description": description, "content": content, **extra}


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: error_response(
        "Missing or wrong bearer token.",
        headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    403: error_response("Training over HTTP is disabled: no token is configured on the server."),
}

JOB_SCHEMA = {
    "type": "object",
    "required": ["job_id", "pipeline", "status", "created_at"],
    "properties": {
        "job_id": {"type": "string"},
        "pipeline": {"type": "string"},
        "status": {"enum": ["queued", "running", "succeeded", "failed"]},
        "created_at": {"type": "string"},
        "started_at": {"type": ["string", "null"]},
        "finished_at": {"type": ["string", "null"]},
        "duration_seconds": {"type": ["number", "null"]},
        "exit_code": {"type": ["integer", "null"]},
        "promoted": {"type": ["boolean", "null"]},
        "reason": {"type": ["string", "null"]},
        "previous_model_version": {"type": ["string", "null"]},
        "model_version": {"type": ["string", "null"]},
        "candidate_version": {"type": ["string", "null"]},
        "metrics": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
        "error": {"type": ["string", "null"]},
        "log_tail": {"type": "array", "items": {"type": "string"}},
    },
}


def record_schema(schema: dict[str, Any], max_columns: int) -> dict[str, Any]:
    """One JSON record: every feature an allowed integer; other fields single JSON values."""
    allowed = allowed_values(schema)
    return {
        "type": "object",
        "required": feature_columns(schema),
        "properties": {
            name: {
                "type": "integer",
                "enum": values,
                "description": f"{name}: one of {', '.join(map(str, values))}.",
            }
            for name, values in allowed.items()
        },
        "additionalProperties": {
            "type": ["string", "number", "boolean", "null"],
            "description": "Other fields (an id, a URL) come back unchanged with the verdict.",
        },
        "propertyNames": {"not": {"enum": list(OUTPUT_COLUMNS)}},
        "description": f"One site: every feature field, and at most {max_columns} fields in all "
        "(more is a 413).",
    }


def example_record(schema: dict[str, Any]) -> dict[str, Any]:
    """A valid record: a URL, then each feature at its first allowed value."""
    return {
        "url": "https://example.test/login",
        **{name: values[0] for name, values in allowed_values(schema).items()},
    }


def records_body_schema(schema: dict[str, Any], max_rows: int, max_columns: int) -> dict[str, Any]:
    """The JSON body ``{"records": [...]}``."""
    return {
        "type": "object",
        "required": ["records"],
        "properties": {
            "records": {
                "type": "array",
                "items": record_schema(schema, max_columns),
                "minItems": 1,
                "description": f"One object per site; at most {max_rows} (more is a 413).",
            }
        },
        "additionalProperties": False,
    }


def csv_pattern(schema: dict[str, Any]) -> str:
    """A regular expression of the simplest CSV the service scores: the header with the features
    in schema order, then rows of allowed values (LF or CRLF line ends)."""
    allowed = allowed_values(schema)
    header = ",".join(re.escape(name) for name in allowed)
    row = ",".join(
        "(?:" + "|".join(re.escape(str(v)) for v in values) + ")" for values in allowed.values()
    )
    return f"^{header}(?:\\r?\\n{row})+(?:\\r?\\n)?$"


def example_csv(schema: dict[str, Any]) -> str:
    allowed = allowed_values(schema)
    header = ",".join(allowed)
    return header + "\n" + ",".join(str(values[0]) for values in allowed.values()) + "\n"


def upload_body_schema(schema: dict[str, Any], max_upload_bytes: int) -> dict[str, Any]:
    """The multipart body: the field ``file`` with the CSV (a file, or the CSV text)."""
    return {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {
                "type": "string",
                "contentMediaType": "text/csv",
                "pattern": csv_pattern(schema),
                "description": "The CSV, as a file (curl -F file=@sites.csv) or as text: a header "
                "row naming the feature columns, then one row per site, UTF-8, at most "
                f"{max_upload_bytes} bytes. The pattern gives the simplest form; the columns may "
                "come in any order, and extra columns (an id, a URL) come back with the verdict.",
            }
        },
        "additionalProperties": False,
    }


def predictions_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON answer of ``POST /predict``."""
    return {
        "type": "object",
        "required": ["model_version", "rows", "source", "predictions"],
        "properties": {
            "model_version": {"type": ["string", "integer", "null"]},
            "rows": {"type": "integer", "minimum": 1},
            "source": {"type": "string"},
            "predictions": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": [*feature_columns(schema), *OUTPUT_COLUMNS],
                    "properties": {
                        "prediction": {"type": "integer"},
                        "label": {"type": "string"},
                        "phishing_probability": {"type": "number", "minimum": 0, "maximum": 1},
                        "risk_level": {"type": "string"},
                        "recommended_action": {"type": "string"},
                    },
                },
            },
        },
    }


def complete_predict_operation(
    operation: dict[str, Any], schema: dict[str, Any], settings: Any
) -> None:
    """Put the schema-derived request bodies and responses into the ``POST /predict`` entry."""
    operation["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": records_body_schema(schema, settings.max_rows, settings.max_columns),
                "example": {"records": [example_record(schema)]},
            },
            "multipart/form-data": {
                "schema": upload_body_schema(schema, settings.max_upload_bytes),
                "encoding": {"file": {"contentType": "text/csv"}},
                "example": {"file": example_csv(schema)},
            },
        },
    }
    operation["responses"] = {
        "200": {
            "description": "Predictions: an HTML table for an upload (JSON with "
            "`Accept: application/json`), JSON for records.",
            "content": {
                "application/json": {"schema": predictions_schema(schema)},
                **_HTML,
            },
        },
        "400": error_response("Binary, non-UTF-8 or malformed input.", html=True),
        "413": error_response("Too large: bytes, rows or columns over the limits.", html=True),
        "415": error_response("Neither a multipart upload nor a JSON body.", html=True),
        "422": error_response("Schema errors, naming the column, row and value.", html=True),
        "503": error_response("No champion model yet.", html=True),
    }


def install_openapi(app: FastAPI) -> None:
    """Complete the app's OpenAPI document with the schema-derived parts once the service has
    started (before that, FastAPI's document is served, and not cached)."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = default()
        state = getattr(app.state, "service", None)
        if state is None:
            app.openapi_schema = None  # complete it once the service has started
            return document
        operation = document.get("paths", {}).get("/predict", {}).get("post")
        if operation is not None:
            complete_predict_operation(operation, state.schema, state.settings)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
