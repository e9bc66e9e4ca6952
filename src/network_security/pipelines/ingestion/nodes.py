"""Ingestion nodes: raw CSV text -> typed records with a deterministic record key."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd

from network_security.schema import Schema, record_columns, record_key_column

logger = logging.getLogger(__name__)


class IngestionError(ValueError):
    """A raw file that cannot be ingested; the message names file, row, column and value."""


def type_records(raw: pd.DataFrame, schema: Schema, source: str) -> pd.DataFrame:
    """Keep the schema's columns in schema order and parse every cell as an integer.

    The raw CSV is loaded as text, so a cell that is not an integer (``abc``, ``1.5``) is caught
    here, before anything is written: the whole file is refused and nothing of it is stored.
    Empty cells become missing values, which validation quarantines. Domain checks (is 7 an
    allowed value?) are validation's job, not ingestion's.

    Args:
        raw: The CSV as loaded with every cell as a string.
        schema: The project schema (``params:schema``).
        source: The file's path, for error messages.
    """
    columns = record_columns(schema)
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise IngestionError(
            f"{source}: missing required column(s) {missing}. The header must name the 30 "
            f"features and the label: {columns}."
        )
    extra = [c for c in raw.columns if c not in columns]
    if extra:
        logger.warning("%s: ignoring columns that are not in the schema: %s", source, extra)
    try:  # the fast path: every cell is an integer
        return raw[columns].astype("int64").reset_index(drop=True)
    except (TypeError, ValueError):
        pass  # find out what is wrong, and where
    text = raw[columns].apply(lambda column: column.str.strip())
    numbers = text.apply(pd.to_numeric, errors="coerce")
    bad = text.ne("") & (numbers.isna() | numbers.ne(numbers.round()))
    if bad.to_numpy().any():
        column_counts = bad.sum()
        first_column = column_counts[column_counts > 0].index[0]
        first_row = int(bad[first_column].to_numpy().argmax())
        bad_columns = list(column_counts[column_counts > 0].index)
        value = text[first_column].iloc[first_row]
        raise IngestionError(
            f"{source}: row {first_row + 1} (line {first_row + 2} of the file), column "
            f"'{first_column}': {value!r} is not an integer. {int(bad.to_numpy().sum())} cell(s) "
            f"in total are not integers, in columns {bad_columns}. "
            "Fix or remove those rows and run the ingestion again; nothing of this file was stored."
        )
    typed = numbers.astype("Int64")
    if not typed.isna().to_numpy().any():
        typed = typed.astype("int64")
    logger.info("%s: %d rows typed", source, len(typed))
    return typed.reset_index(drop=True)


def add_record_keys(records: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Prepend a deterministic record key: a hash of the row's values and its occurrence number.

    Identical rows of one file stay separate records (the n-th copy of a row gets occurrence n),
    and ingesting the same file again yields the same keys, so nothing is stored twice.
    """
    columns = record_columns(schema)
    rows = records[columns].astype(object).to_numpy().tolist()
    seen: dict[str, int] = {}
    keys = []
    for row in rows:
        content = ",".join("" if value is pd.NA else str(value) for value in row)
        occurrence = seen.get(content, 0)
        seen[content] = occurrence + 1
        keys.append(hashlib.sha256(f"{content}#{occurrence}".encode()).hexdigest()[:32])
    keyed = records[columns].copy()
    keyed.insert(0, record_key_column(schema), keys)
    return keyed
