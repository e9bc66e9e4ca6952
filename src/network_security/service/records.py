"""JSON records (``{"records": [...]}``) read for scoring: validated by the one pydantic model
generated from the schema (``records_model``), which also documents them in OpenAPI; the record
and column limits enforced; every problem a ``RequestProblem`` naming the record, the field
and the value."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Annotated, Any, NotRequired

import numpy as np
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError, core_schema
from typing_extensions import TypedDict

from network_security.schema import allowed_values, feature_columns
from network_security.scoring import OUTPUT_COLUMNS, refuse_verdict_columns
from network_security.service.inputs import RequestProblem
from network_security.validator import Domain, InputValidationError

# a JSON string, or the rest of the body after an opening quote that is never closed; its
# repeats are possessive, so the scan never backtracks and each byte is read once (a string
# pattern that can fail retries from every later quote: quadratic on escaped quotes)
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_KINDS = {bool: "a boolean", type(None): "null", dict: "an object", list: "a list"}
_FEATURE = "a whole number such as -1, 0 or 1 (a JSON number, not text)"
_OTHER = "a single value (text or number)"
Scalar = str | int | float | bool | None
"""What a field other than a feature may hold."""


@dataclass(frozen=True)
class AllowedValues:
    """A feature of a JSON record: a JSON number (not text, not a boolean) whose whole value is
    one of ``values`` (``1.0`` is read as 1), checked by pydantic-core (no Python call per
    value); documented as an integer enum."""

    values: tuple[int, ...]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        allowed = core_schema.literal_schema(list(self.values))
        number = core_schema.float_schema(strict=True, allow_inf_nan=False)
        return core_schema.union_schema(
            [
                core_schema.chain_schema([core_schema.int_schema(strict=True), allowed]),
                core_schema.chain_schema([number, core_schema.int_schema(), allowed]),
            ],
            mode="left_to_right",
        )

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "integer", "enum": list(self.values)}


class _VerdictName:
    """A field named like a verdict column, which scoring adds: refused when present."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        def refuse(value: Any) -> Any:
            raise PydanticCustomError("verdict_column", "named like a verdict column")

        return core_schema.no_info_plain_validator_function(refuse)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {}  # not a property: the record's propertyNames exclude it


def records_model(schema: dict[str, Any], max_rows: int, max_columns: int) -> type[BaseModel]:
    """The JSON body ``{"records": [...]}``, generated from the schema: the one model that
    validates it (``read_records``) and documents it in OpenAPI. Each record has every feature
    (one of its allowed values) and other fields of single values, none named like a verdict
    column; records are validated into plain dicts (a TypedDict: no object per record)."""
    verdicts = {name: NotRequired[Annotated[Any, _VerdictName()]] for name in OUTPUT_COLUMNS}

    def document(record: dict[str, Any]) -> None:
        for name in OUTPUT_COLUMNS:
            record["properties"].pop(name, None)
        record["additionalProperties"] = {"type": ["string", "number", "boolean", "null"]}
        record["propertyNames"] = {"not": {"enum": list(OUTPUT_COLUMNS)}}

    record = TypedDict(
        "Record",
        {
            **{
                name: Annotated[int, AllowedValues(tuple(v))]
                for name, v in allowed_values(schema).items()
            },
            **verdicts,
        },
        extra_items=Scalar,
    )
    record.__doc__ = (
        f"One site: every feature, and at most {max_columns} fields in all (more is a 413); "
        "other fields (an id, a URL) come back unchanged with the verdict."
    )
    record.__pydantic_config__ = ConfigDict(json_schema_extra=document)

    def document_limits(body: dict[str, Any]) -> None:  # in words: past them is a 413
        body["properties"]["records"].pop("maxItems", None)

    return create_model(
        "PredictRecords",
        __config__=ConfigDict(extra="forbid", json_schema_extra=document_limits),
        records=(
            list[record],
            Field(
                min_length=1,
                max_length=max_rows,
                fail_fast=True,  # the first refused record ends the validation
                description=f"At most {max_rows} (413)",
            ),
        ),
    )


def _refuse_many_objects(body: bytes | bytearray, max_rows: int) -> None:
    """``max_rows`` records hold ``max_rows + 2`` objects and arrays with the body and the list:
    a body with more ``{`` and ``[`` outside strings is refused (413) before it is parsed, so
    a small body of many empty records cannot cost many times its size."""
    limit = max_rows + 2
    if body.count(b"{") + body.count(b"[") > limit:  # an upper bound: braces in strings count
        outside = _STRING.sub(b"", body)
        if outside.count(b"{") + outside.count(b"[") > limit:
            raise RequestProblem(
                413,
                f"records holds more than {max_rows} records (or values that are objects or "
                f"lists); the service scores at most {max_rows} per request "
                "(NETWORK_SECURITY_MAX_ROWS), each a flat object.",
            )


def read_records(
    body: bytes | bytearray, model: type[BaseModel], schema: dict[str, Any], *, max_rows: int
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The records of a JSON body ``{"records": [...]}`` as ``model`` (``records_model``)
    accepts them, and their features as an int64 matrix (schema order); the record limit is
    enforced first, on the bytes. A record is a dict of its fields, the features as whole
    numbers (the fields as sent, or, when the model had to convert a value, the features
    first).

    Raises ``RequestProblem``: 400 for invalid JSON, 413 past the limit, 422 for another
    shape or a value a field cannot hold, naming the record, the field and the value.
    """
    _refuse_many_objects(body, max_rows)
    features = feature_columns(schema)
    if (plain := _plain_records(body, features, Domain.of(schema), max_rows)) is not None:
        return plain
    try:
        records = model.model_validate_json(body).records
    except ValidationError as error:  # fail_fast: the errors of one record at most
        errors = error.errors(include_url=False)
        no_records = [e for e in errors if e["loc"] == ("records",) and e["type"] == "missing"]
        raise _refusal((no_records or errors)[0], max_rows) from None
    return records, feature_matrix(records, features)


# Validating every body with the model costs about 10 % more CPU than this on 1,000 records
# (pydantic-core builds each record anew; measured with benchmarks/bench_service.py), so a
# body whose records are plainly valid (objects with every feature an int among its allowed
# values, other fields single values, none named like a verdict column) is read by orjson
# and checked as one integer matrix. The model accepts all such bodies, and more (1.0 for 1):
# any other body goes to the model, which decides and words every refusal.
def _plain_records(
    body: bytes | bytearray, features: list[str], domain: Domain, max_rows: int
) -> tuple[list[dict[str, Any]], np.ndarray] | None:
    """The records and their feature matrix when every record is plainly valid, else None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    records = data.get("records") if type(data) is dict and len(data) == 1 else None
    if type(records) is not list or not 0 < len(records) <= max_rows:
        return None
    if set(map(type, records)) != {dict}:
        return None
    try:
        rows = list(map(itemgetter(*features), records))
    except KeyError:
        return None
    rows = rows if len(features) > 1 else [(value,) for value in rows]
    if set(map(type, chain.from_iterable(rows))) != {int}:
        return None
    try:
        matrix = np.array(rows, np.int64)
    except OverflowError:
        return None
    if domain.not_allowed(matrix).any():
        return None
    if max(map(len, records)) > len(features) and not _plain_other_fields(records, features):
        return None
    return records, matrix


def _plain_other_fields(records: list[dict[str, Any]], features: list[str]) -> bool:
    """Whether the fields other than the features hold single values, none named like a
    verdict column."""
    others = set(chain.from_iterable(records)).difference(features)
    if others.intersection(OUTPUT_COLUMNS):
        return False
    return not any(type(record.get(name)) in {dict, list} for name in others for record in records)


def _refusal(error: Any, max_rows: int) -> RequestProblem:
    """The ``RequestProblem`` for pydantic's first error about a JSON body."""
    kind, where, value = error["type"], error["loc"], error.get("input")
    if kind == "json_invalid":
        return RequestProblem(400, f"The request body is not valid JSON: {error['ctx']['error']}.")
    if where == ("records",) and kind == "too_long":
        return RequestProblem(
            413,
            f"records holds more than {max_rows} records; the service scores at most "
            f"{max_rows} per request (NETWORK_SECURITY_MAX_ROWS).",
        )
    if where == ("records",) and kind == "too_short":
        return RequestProblem(422, "records is empty: send at least one record to score.")
    if where == ("records",) and kind == "list_type":
        return RequestProblem(
            422, 'records must be a list of objects, one per site: {"records": [{...}, ...]}.'
        )
    if not where or where[0] != "records" or len(where) == 1:
        found = (
            f"an object with the keys {sorted(value)[:5]}" if isinstance(value, dict)
            else f"the key {where[0]!r}" if where else type(value).__name__
        )  # fmt: skip
        return RequestProblem(
            422,
            'The JSON body must be {"records": [{...}, ...]} with one object per site and no '
            f"other key; got {found}.",
        )
    return _record_refusal(kind, where[1] + 1, where[2] if len(where) > 2 else None, value)


def _record_refusal(kind: str, row: int, field: str | None, value: Any) -> RequestProblem:
    """The ``RequestProblem`` for a record (1-based ``row``) refused at ``field``."""
    if field is None:
        kind_text = _KINDS.get(type(value), f"a {type(value).__name__}")
        return RequestProblem(
            422,
            f"records: record {row} is {kind_text}, not an object: send one object per site "
            "with the feature fields.",
            row=row,
        )
    if kind == "missing":
        return RequestProblem(
            422,
            f"records: record {row} has no field '{field}'; every record needs all the "
            "feature fields.",
            column=field,
            row=row,
        )
    if kind == "verdict_column":
        try:
            refuse_verdict_columns([field])
        except InputValidationError as error:
            return RequestProblem(422, f"records: record {row}: {error}", column=field, row=row)
    if kind == "string_type":  # a field other than the features: not one of Scalar
        return _refuse(row, field, value, _OTHER)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or isinstance(value, float) and not math.isfinite(value):
        return _refuse(row, field, value, _FEATURE)
    whole = isinstance(value, int) or value.is_integer()
    text = str(value)
    return RequestProblem(
        422,
        f"records: record {row}, field '{field}': value {text!r} "
        f"{'is not an allowed value' if whole else 'is not an integer'}; send one of the values "
        "the schema allows (conf/base/parameters.yml).",
        column=field,
        row=row,
        value=text,
    )


def _refuse(row: int, column: str, value: Any, expected: str) -> RequestProblem:
    shown = value if isinstance(value, bool | int | str | None) else json.dumps(value)[:100]
    return RequestProblem(
        422,
        f"records: record {row}, field '{column}' is {_KINDS.get(type(value), repr(value))}; "
        f"expected {expected}.",
        column=column,
        row=row,
        value=shown[:200] if isinstance(shown, str) else shown,
    )


def record_fields(
    records: list[dict[str, Any]], features: list[str], max_columns: int
) -> list[str]:
    """Every field of the records, in first-seen order, once the records are within the
    column limit (413 past it)."""
    widest = max(map(len, records))
    if widest > max_columns:
        row = next(i for i, record in enumerate(records, start=1) if len(record) == widest)
        raise RequestProblem(
            413,
            f"records: record {row} has {widest} fields; the service accepts at most "
            f"{max_columns} (NETWORK_SECURITY_MAX_COLUMNS).",
            row=row,
        )
    if widest == len(features):  # features only, the same in every record
        return list(features)
    names = dict.fromkeys(chain.from_iterable(records))
    if len(names) > max_columns:
        raise RequestProblem(
            413,
            f"records use more than {max_columns} distinct fields, the most the service accepts "
            "(NETWORK_SECURITY_MAX_COLUMNS).",
        )
    return list(names)


def feature_matrix(records: list[dict[str, Any]], features: list[str]) -> np.ndarray:
    """The records' feature values (whole numbers, validated) as an int64 matrix."""
    getter = itemgetter(*features)
    values = (
        chain.from_iterable(map(getter, records)) if len(features) > 1 else map(getter, records)
    )
    count = len(records) * len(features)
    return np.fromiter(values, np.int64, count=count).reshape(len(records), len(features))
