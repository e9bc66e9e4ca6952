"""A request's rows checked and scored by the inference pipeline's functions
(``network_security.scoring``), and the JSON answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from network_security import scoring
from network_security.reasons import REASONS_COLUMN, with_allowed_values
from network_security.sanitize import dumps
from network_security.schema import feature_columns
from network_security.scoring import InputValidationError
from network_security.service.inputs import RequestProblem, read_csv_upload
from network_security.service.records import read_records, record_fields

if TYPE_CHECKING:
    from network_security.service.champion import LoadedModel
    from network_security.service.state import ServiceState


def score_csv(state: ServiceState, loaded: LoadedModel, data: bytes, source: str) -> pd.DataFrame:
    """An uploaded CSV, read, checked and scored as the inference pipeline scores a file."""
    limits = {"max_rows": state.settings.max_rows, "max_columns": state.settings.max_columns}
    frame = read_csv_upload(data, source=source, **limits)
    try:
        checked = scoring.check_inference_frame(frame, state.schema, source=source)
        parameters = with_allowed_values(state.scoring, state.schema)
        return scoring.score_frame(loaded.model, checked, parameters)
    except InputValidationError as error:
        raise RequestProblem.of(error) from None


def score_records(
    state: ServiceState, loaded: LoadedModel, body: bytes | bytearray, reasons: bool = False
) -> bytes:
    """JSON records -> the JSON predictions, without a DataFrame: the records validated by the
    schema's model, their features scored as an integer matrix, the verdicts added to each
    (with their reasons when ``reasons`` and ``scoring.reasons`` is enabled)."""
    settings, features = state.settings, feature_columns(state.schema)
    records, matrix = read_records(body, state.records, state.schema, max_rows=settings.max_rows)
    names = record_fields(records, features, settings.max_columns)
    # every value is one of its feature's allowed values: the model, made from the schema,
    # (or the plain reading it stands for) checked them as it read them
    parameters = with_allowed_values(state.scoring, state.schema)
    if not reasons:  # about 5x the work of the verdicts alone: only when the client asks
        parameters = {**parameters, "reasons": {"enabled": False}}
    try:
        verdicts = scoring.score_features(loaded.model, matrix, parameters, columns=features)
    except InputValidationError as error:
        raise RequestProblem.of(error) from None
    positions = [features.index(name) for name in loaded.model.feature_columns]
    reasons = scoring.verdict_reasons(loaded.model, matrix[:, positions], verdicts, parameters)
    for record in records if len(names) > len(features) else ():
        for name in names if len(record) != len(names) else ():
            record.setdefault(name, None)  # a field another record has: null here
    bands = verdicts.band.tolist()
    added = {
        "prediction": verdicts.prediction.tolist(),
        "label": [verdicts.words[code] for code in verdicts.label_codes().tolist()],
        "phishing_probability": verdicts.phishing_probability.tolist(),
        "risk_level": [verdicts.levels[band] for band in bands],
        "recommended_action": [verdicts.actions[band] for band in bands],
        "model_version": [verdicts.model_version] * len(bands),
    }
    if reasons is not None:  # structured: [{"indicator", "value", "contribution"}, ...]
        added[REASONS_COLUMN] = reasons.records()
    for record, values in zip(records, zip(*added.values(), strict=True), strict=True):
        record.update(zip(added, values, strict=True))
    return predictions_body(records, loaded, "records")


def predictions_body(rows: list[dict[str, Any]], loaded: LoadedModel, source: str) -> bytes:
    """The JSON answer: the model version, the row count, the source and the rows."""
    body = {"model_version": loaded.model.version, "rows": len(rows), "source": source}
    return dumps(body | {"predictions": rows})


def frame_body(scored: pd.DataFrame, loaded: LoadedModel, source: str) -> bytes:
    """A scored frame as the JSON answer, one object per row (the reasons text as it is in the
    CSV: structured reasons are for JSON records)."""
    columns = {str(name): scored[name].tolist() for name in scored.columns}
    rows = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    return predictions_body(rows, loaded, source)
