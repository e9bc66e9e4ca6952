"""Accessors for the one schema of the project (``schema`` in conf/base/parameters.yml).

Every pipeline, the inference checks and the service read column names and allowed values
through these functions, so the schema itself is written down in exactly one place.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def feature_columns(schema: Schema) -> list[str]:
    """The feature column names, in schema order."""
    return list(schema["features"])


def target_column(schema: Schema) -> str:
    """The name of the label column (``Result``)."""
    return schema["target"]["name"]


def record_key_column(schema: Schema) -> str:
    """The name of the deterministic record key column."""
    return schema["record_key"]


def target_values(schema: Schema) -> list[int]:
    """The allowed label values: phishing first, then legitimate."""
    return [int(schema["target"]["phishing"]), int(schema["target"]["legitimate"])]


def allowed_values(schema: Schema) -> dict[str, list[int]]:
    """Allowed values per feature column."""
    return {name: [int(v) for v in values] for name, values in schema["features"].items()}


def record_columns(schema: Schema) -> list[str]:
    """The columns of a labelled record, in storage order: features then the target."""
    return [*feature_columns(schema), target_column(schema)]
