"""Nodes of the validation pipeline: schema checks, quarantine, reports, drift and the gates.

Every check comes from the one schema (``params:schema``) and runs as the one validator's pandera
schema (``network_security.validator.record_schema``: the same cell rule and allowed values as
the checks of inference and the service) in lazy mode, so every failing row and column is
reported, not just the first. Rows that fail any
check are quarantined with a reason; the run stops only when a required column is missing or
the rejected fraction exceeds ``max_invalid_fraction``.

Drift (``network_security.drift``) compares the category frequencies of each feature with the
reference the champion carries.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import pandera.pandas as pa

from network_security.errors import ExpectedError
from network_security.sanitize import jsonable
from network_security.schema import (
    Schema,
    allowed_values,
    record_columns,
    record_key_column,
    target_column,
    target_values,
)
from network_security.validator import record_schema

logger = logging.getLogger(__name__)

VIOLATION_COLUMNS = ["row", "record_key", "column", "check", "value"]
"""Columns of the schema-violations frame: one row per failed check of one record."""

_CHECK_ORDER = {
    "column_in_dataframe": 0,
    "not_nullable": 1,
    "integer_type": 2,
    "allowed_values": 3,
    "duplicate_record_key": 4,
}
"""Order of the reasons given for one cell: the most basic failure first."""

COLUMN_LEVEL_ROW = -1
"""``row`` of a violation that concerns a whole column (e.g. the column is missing)."""


class DataValidationError(ExpectedError, ValueError):
    """The records cannot be used: a required column is missing or too many rows failed."""


# ---------------------------------------------------------------------------- schema checks


def find_schema_violations(
    phishing_records: pd.DataFrame, schema: Schema, validation_params: dict[str, Any]
) -> pd.DataFrame:
    """Run every schema check (lazily) and return one row per failed check.

    Returns:
        A frame with ``VIOLATION_COLUMNS``: ``row`` (position in the loaded records, or -1 for
        a whole-column failure such as a missing column), ``record_key``, ``column``, ``check``
        (``not_nullable``, ``integer_type``, ``allowed_values``, ``duplicate_record_key``,
        ``column_in_dataframe``) and the failing ``value`` as text.

    Raises:
        DataValidationError: If there are no records at all (ingestion has not run).
    """
    if phishing_records.empty:
        raise DataValidationError(
            "No records to validate: the MongoDB collection behind `phishing_records` is empty "
            "(or holds no fields). Run `kedro run --pipeline ingestion` first to load the raw "
            "CSV into MongoDB, then run validation again."
        )
    records = phishing_records.reset_index(drop=True)
    pandera_schema = record_schema(schema, validation_params.get("duplicate_keys", "exclude_first"))
    try:
        pandera_schema.validate(records, lazy=True)
    except pa.errors.SchemaErrors as exc:
        violations = _to_violations(exc.failure_cases, records, schema)
    else:
        violations = pd.DataFrame({name: pd.Series(dtype=object) for name in VIOLATION_COLUMNS})
    logger.info(
        "Checked %d records against the schema: %d failed checks in %d rows",
        len(records),
        len(violations),
        violations.loc[violations["row"] >= 0, "row"].nunique(),
    )
    return violations


def _to_violations(
    failure_cases: pd.DataFrame, records: pd.DataFrame, schema: Schema
) -> pd.DataFrame:
    """Normalise pandera's failure cases into ``VIOLATION_COLUMNS``."""
    key = record_key_column(schema)
    cases = failure_cases.copy()
    is_row = cases["index"].notna()
    rows = pd.to_numeric(cases["index"].where(is_row, COLUMN_LEVEL_ROW)).astype("int64")
    checks = cases["check"].astype(str)
    checks = checks.mask(checks == "field_uniqueness", "duplicate_record_key")
    column = cases["column"].astype(object)
    # A missing column is reported by the DataFrameSchema with the column name as the value.
    missing = checks == "column_in_dataframe"
    column = column.mask(missing, cases["failure_case"])
    if key in records.columns:
        keys = records[key].astype(object)
        record_keys = [
            str(keys.iloc[row]) if row >= 0 and pd.notna(keys.iloc[row]) else None for row in rows
        ]
    else:
        record_keys = [None] * len(rows)
    violations = pd.DataFrame(
        {
            "row": rows.to_numpy(),
            "record_key": record_keys,
            "column": column.astype(str).to_numpy(),
            "check": checks.to_numpy(),
            "value": [None if pd.isna(v) else str(v) for v in cases["failure_case"]],
        }
    )
    rank = violations["check"].map(_CHECK_ORDER).fillna(len(_CHECK_ORDER))
    return (
        violations.assign(_rank=rank)
        .sort_values(["row", "column", "_rank"], kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def _describe_violation(
    column: str, check: str, value: str | None, domains: dict[str, list[int]]
) -> str:
    """One human-readable reason for one failed check."""
    if check == "not_nullable":
        return f"{column} is missing"
    if check == "integer_type":
        return f"{column}={value!r} is not an integer"
    if check == "allowed_values":
        return f"{column}={value} is not in {domains.get(column, 'the allowed values')}"
    if check == "duplicate_record_key":
        return f"{column} {value} repeats an earlier record"
    return f"{column} failed {check} (value {value})"


def _row_violations(violations: pd.DataFrame) -> pd.DataFrame:
    """Violations that concern a single row."""
    return violations[violations["row"] >= 0]


def quarantine_rejected_records(
    phishing_records: pd.DataFrame, schema_violations: pd.DataFrame, schema: Schema
) -> pd.DataFrame:
    """The records that failed at least one check, each with the reason(s) it was rejected.

    Returns:
        The failing rows as loaded (object columns as text so mixed values fit in Parquet),
        plus ``row`` (position in the loaded records), ``failed_columns`` and
        ``rejection_reason`` (``; ``-separated, one entry per failed check).
    """
    records = phishing_records.reset_index(drop=True)
    row_violations = _row_violations(schema_violations)
    domains = {**allowed_values(schema), target_column(schema): target_values(schema)}
    reasons = (
        row_violations.assign(
            reason=[
                _describe_violation(c, k, v, domains)
                for c, k, v in zip(
                    row_violations["column"],
                    row_violations["check"],
                    row_violations["value"],
                    strict=True,
                )
            ]
        )
        .groupby("row", sort=True)
        .agg(
            failed_columns=("column", lambda s: ", ".join(dict.fromkeys(s))),
            rejection_reason=("reason", "; ".join),
        )
    )
    expected = [record_key_column(schema), *record_columns(schema)]
    ordered = [c for c in expected if c in records.columns] + [
        c for c in records.columns if c not in expected
    ]
    rejected = records.loc[reasons.index, ordered].copy()
    for name in rejected.columns:
        if rejected[name].dtype == object:
            rejected[name] = rejected[name].map(lambda v: None if pd.isna(v) else str(v))
    rejected.insert(0, "row", reasons.index.to_numpy(dtype="int64"))
    rejected["failed_columns"] = reasons["failed_columns"].to_numpy()
    rejected["rejection_reason"] = reasons["rejection_reason"].to_numpy()
    rejected = rejected.reset_index(drop=True)
    if len(rejected):
        logger.warning(
            "Quarantined %d of %d records (see rejected_records); first reason: %s",
            len(rejected),
            len(records),
            rejected["rejection_reason"].iloc[0],
        )
    return rejected


def select_valid_records(
    phishing_records: pd.DataFrame, schema_violations: pd.DataFrame, schema: Schema
) -> pd.DataFrame:
    """The records that passed every check: record key, features and target, typed.

    Columns missing from the input are left out here; the validation gate stops the run.
    """
    records = phishing_records.reset_index(drop=True)
    failed_rows = set(_row_violations(schema_violations)["row"].tolist())
    keep = ~records.index.isin(sorted(failed_rows))
    key = record_key_column(schema)
    present = [c for c in [key, *record_columns(schema)] if c in records.columns]
    valid = records.loc[keep, present].reset_index(drop=True)
    return valid.astype(
        {c: "int64" for c in present if c != key} | ({key: str} if key in present else {})
    )


def _failures_by_column(row_violations: pd.DataFrame, n_examples: int) -> dict[str, Any]:
    """Per column (most failed rows first): rows failed, counts by check and by value, and up
    to ``n_examples`` example rows."""
    by_column: dict[str, Any] = {}
    for column, group in row_violations.groupby("column", sort=False):
        examples = group.drop_duplicates("row").head(n_examples)
        by_column[str(column)] = {
            "rows_failed": int(group["row"].nunique()),
            "by_check": {str(k): int(v) for k, v in group["check"].value_counts().items()},
            "failing_values": {
                str(k): int(v) for k, v in group["value"].value_counts(dropna=False).items()
            },
            "example_rows": [
                {"row": int(r), "record_key": k, "value": v}
                for r, k, v in examples[["row", "record_key", "value"]].itertuples(index=False)
            ],
        }
    return dict(sorted(by_column.items(), key=lambda item: -item[1]["rows_failed"]))


def build_validation_report(
    phishing_records: pd.DataFrame,
    schema_violations: pd.DataFrame,
    rejected_records: pd.DataFrame,
    schema: Schema,
    validation_params: dict[str, Any],
) -> dict[str, Any]:
    """Totals, per-column failure counts, example rows and the pass/fail verdict.

    The report is saved before the gate runs, so it is there to read when the run stops.
    """
    n_examples = int(validation_params.get("report_examples", 5))
    max_fraction = float(validation_params.get("max_invalid_fraction", 0.05))
    expected = [record_key_column(schema), *record_columns(schema)]
    column_level = schema_violations[schema_violations["row"] < 0]
    missing_columns = sorted(
        column_level.loc[column_level["check"] == "column_in_dataframe", "column"].unique()
    )
    other_column_failures = [
        {"column": c, "check": k, "value": v}
        for c, k, v in column_level.loc[
            column_level["check"] != "column_in_dataframe", ["column", "check", "value"]
        ].itertuples(index=False)
    ]
    row_violations = _row_violations(schema_violations)
    by_column = _failures_by_column(row_violations, n_examples)
    n_records = len(phishing_records)
    n_rejected = len(rejected_records)
    fraction = n_rejected / n_records if n_records else 0.0
    example_cols = [c for c in ("row", "record_key", "rejection_reason") if c in rejected_records]
    report = {
        "dataset": "phishing_records",
        "passed": not missing_columns and fraction <= max_fraction,
        "totals": {
            "records": n_records,
            "valid": n_records - n_rejected,
            "rejected": n_rejected,
            "rejected_fraction": round(fraction, 6),
            "max_invalid_fraction": max_fraction,
            "failed_checks": len(row_violations),
        },
        "missing_columns": missing_columns,
        "unexpected_columns": sorted(c for c in phishing_records.columns if c not in expected),
        "column_failures": other_column_failures,
        "failures_by_column": by_column,
        "failures_by_check": {
            str(k): int(v) for k, v in row_violations["check"].value_counts().items()
        },
        "example_rejected_rows": jsonable(
            _records_with_none(rejected_records[example_cols].head(n_examples))
        ),
    }
    logger.info(
        "Validation: %d records, %d rejected (%.2f%%, limit %.2f%%), columns failing: %s",
        n_records, n_rejected, 100 * fraction, 100 * max_fraction,
        ", ".join(f"{c} ({d['rows_failed']})" for c, d in by_column.items()) or "none",
    )  # fmt: skip
    return report


def _records_with_none(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, missing cells (NaN, NA) as ``None``."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def enforce_validation_gate(
    valid_records: pd.DataFrame, validation_report: dict[str, Any]
) -> pd.DataFrame:
    """Pass the valid records on, or stop the run naming the columns and counts at fault.

    Raises:
        DataValidationError: If a required column is missing, or the rejected fraction is
            above ``max_invalid_fraction``.
    """
    totals = validation_report["totals"]
    problems: list[str] = []
    if validation_report["missing_columns"]:
        problems.append(
            f"required column(s) missing from phishing_records: "
            f"{', '.join(validation_report['missing_columns'])}"
        )
    if totals["rejected_fraction"] > totals["max_invalid_fraction"]:
        per_column = ", ".join(
            f"{column}: {details['rows_failed']} rows ("
            + ", ".join(f"{k} {v}" for k, v in details["by_check"].items())
            + ")"
            for column, details in validation_report["failures_by_column"].items()
        )
        problems.append(
            f"{totals['rejected']} of {totals['records']} records rejected "
            f"({100 * totals['rejected_fraction']:.2f}%), above max_invalid_fraction "
            f"{100 * totals['max_invalid_fraction']:.2f}%. Failing columns: {per_column}"
        )
    if problems:
        raise DataValidationError(
            "Validation failed: "
            + "; ".join(problems)
            + ". The failing rows, their record_key and the reasons are in "
            "data/02_intermediate/rejected_records.parquet and "
            "data/08_reporting/validation_report.json. Fix the source file (or the schema in "
            "conf/base/parameters.yml), then remove those records from the MongoDB collection "
            "(or use a fresh database, --params mongo_database=<name>) and ingest again; or, to "
            "accept more invalid rows, raise validation.max_invalid_fraction in "
            "conf/base/parameters_validation.yml."
        )
    if totals["rejected"]:
        logger.warning(
            "%d records quarantined (%.2f%%, within the %.2f%% limit); continuing with %d.",
            totals["rejected"],
            100 * totals["rejected_fraction"],
            100 * totals["max_invalid_fraction"],
            len(valid_records),
        )
    return valid_records
