"""A request's rows scored: the schema checks and scoring functions of the inference pipeline
(``network_security.scoring``) on an uploaded CSV or JSON records, and the JSON answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from network_security import scoring
from network_security.sanitize import dumps
from network_security.schema import feature_columns
from network_security.scoring import InputValidationError
from network_security.service.inputs import (
    RequestProblem,
    read_csv_upload,
    read_records,
    records_table,
)

if TYPE_CHECKING:
    from network_security.service.app import ServiceState
    from network_security.service.champion import LoadedModel


def checked_problem(error: InputValidationError) -> RequestProblem:
    """A schema problem as a 422 naming the column, row and value."""
    value = error.value
    if isinstance(value, str):
        value = value[:200].encode("utf-8", "backslashreplace").decode("utf-8")
    return RequestProblem(422, str(error), column=error.column, row=error.row, value=value)


def score_csv(state: ServiceState, loaded: LoadedModel, data: bytes, source: str) -> pd.DataFrame:
    settings = state.settings
    frame = read_csv_upload(data, source=source, max_rows=settings.max_rows,
                            max_columns=settings.max_columns)  # fmt: skip
    try:
        checked = scoring.check_inference_frame(frame, state.schema, source=source)
        return scoring.score_frame(loaded.model, checked, state.scoring)
    except InputValidationError as error:
        raise checked_problem(error) from None


def verdict_columns(verdicts: scoring.Verdicts) -> dict[str, list[Any]]:
    """The verdict columns as lists, in the order the inference pipeline writes them."""
    bands = verdicts.band.tolist()
    columns = {
        "prediction": verdicts.prediction.tolist(),
        "label": [verdicts.words[code] for code in verdicts.label_codes().tolist()],
        "phishing_probability": verdicts.phishing_probability.tolist(),
        "risk_level": [verdicts.levels[band] for band in bands],
        "recommended_action": [verdicts.actions[band] for band in bands],
        "model_version": [verdicts.model_version] * len(bands),
    }
    return {name: columns[name] for name in scoring.OUTPUT_COLUMNS}


def score_records(state: ServiceState, loaded: LoadedModel, body: bytes) -> bytes:
    """JSON records -> the JSON predictions, without a DataFrame: the values go straight into
    an integer matrix, checked and scored by the inference pipeline's functions."""
    settings, features = state.settings, feature_columns(state.schema)
    limits = {"max_rows": settings.max_rows, "max_columns": settings.max_columns}
    table = records_table(read_records(body, max_rows=settings.max_rows),
                          required_columns=features, **limits)  # fmt: skip
    if table.lossy:  # a huge integer read as a float: read again, exactly, to name it as sent
        exact = read_records(body, max_rows=settings.max_rows, exact=True)
        table = records_table(exact, required_columns=features, **limits)
    try:
        scoring.refuse_verdict_columns(table.columns)
        if table.features is not None:
            matrix = scoring.check_feature_matrix(table.features, state.schema, source="records")
        else:
            matrix = scoring.check_feature_columns(
                table.feature_cells, state.schema, source="records"
            )
        verdicts = scoring.score_features(loaded.model, matrix, state.scoring, columns=features)
    except InputValidationError as error:
        raise checked_problem(error) from None
    records = table.records
    if table.features is None:  # the checked integers
        for j, name in enumerate(features):
            for record, value in zip(records, matrix[:, j].tolist(), strict=True):
                record[name] = value
    for record in records:
        if len(record) != len(table.columns):  # a field another record has: null here
            for column in table.columns:
                record.setdefault(column, None)
    columns = verdict_columns(verdicts)
    for record, values in zip(records, zip(*columns.values(), strict=True), strict=True):
        record.update(zip(columns, values, strict=True))
    return predictions_body(records, loaded, "records")


def predictions_body(rows: list[dict[str, Any]], loaded: LoadedModel, source: str) -> bytes:
    body = {"model_version": loaded.model.version, "rows": len(rows), "source": source,
            "predictions": rows}  # fmt: skip
    return dumps(body)
