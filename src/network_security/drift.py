"""Drift of the feature distributions: a reference, chi-square and PSI per feature, a gate.

The reference is the category frequencies of every feature in the records a model was fit on;
training stores it inside the model (``PhishingModel.drift_reference``), so the champion carries
the reference it was trained on and validation compares new records with it (the chi-square test
of homogeneity and the population stability index both suit categorical data). Before any
champion, validation uses the current records themselves. Shared by the validation pipeline
(``measure_drift``, ``plot_drift``, ``enforce_drift_gate``) and the training pipeline
(``build_drift_reference``, whose output ``drift_reference`` is the one dataset of that name:
training packs it into the model it registers), so neither imports the other's nodes.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.stats import chi2_contingency

from network_security.errors import ExpectedError
from network_security.model import PhishingModel
from network_security.schema import Schema, allowed_values, feature_columns
from network_security.validator import require_columns

logger = logging.getLogger(__name__)


class DataDriftError(ExpectedError, ValueError):
    """The feature distributions drifted from the reference and ``fail_on_drift`` is set."""


def _category_counts(values: pd.Series, categories: list[int]) -> dict[str, int]:
    """Count of each category (JSON keys are the category values as text)."""
    counts = values.value_counts()
    return {str(c): int(counts.get(c, 0)) for c in categories}


def build_drift_reference(
    train_frame: pd.DataFrame, schema: Schema, source: str = "training"
) -> dict[str, Any]:
    """The reference distribution: category counts and frequencies of every feature.

    The training pipeline builds it from the records the production model is fit on and stores
    it inside the model; validation compares later records against the champion's.

    Args:
        train_frame: Records with every feature column (in-domain integer values).
        schema: The project schema.
        source: Where the reference comes from (``training``, or ``validation`` when the first
            validation run creates it from its own records).
    """
    if train_frame.empty:
        raise ValueError("Cannot build a drift reference from an empty frame.")
    require_columns(train_frame.columns, feature_columns(schema), source, "feature columns")
    features: dict[str, Any] = {}
    for name, categories in allowed_values(schema).items():
        counts = _category_counts(train_frame[name], categories)
        total = sum(counts.values())
        features[name] = {
            "counts": counts,
            "frequencies": {k: round(v / total, 8) for k, v in counts.items()},
        }
    return {"source": source, "n_records": len(train_frame), "features": features}


def resolve_drift_reference(
    validated_records: pd.DataFrame, champion_model: PhishingModel | None, schema: Schema
) -> dict[str, Any]:
    """The reference to compare against: the champion's, or (no champion yet) these records'."""
    reference = getattr(champion_model, "drift_reference", None)
    if reference is not None:
        logger.info(
            "Drift reference: the records champion version %s was fit on (%d records)",
            champion_model.version,
            reference.get("n_records", 0),
        )
        return reference
    logger.warning(
        "No drift reference yet (no champion carries one): comparing the %d current validated "
        "records with themselves. Train a model to set the reference.",
        len(validated_records),
    )
    return build_drift_reference(validated_records, schema, source="validation")


def _psi(current: np.ndarray, reference: np.ndarray, epsilon: float) -> float:
    """Population stability index between two frequency vectors (floored at ``epsilon``)."""
    p = np.clip(current, epsilon, None)
    q = np.clip(reference, epsilon, None)
    return float(np.sum((p - q) * np.log(p / q)))


def _chi_square(current: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors: (statistic, p-value)."""
    table = np.vstack([current, reference])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    statistic, p_value, _, _ = chi2_contingency(table, correction=False)
    return float(statistic), float(p_value)


def _feature_drift(
    current_counts: dict[str, int], reference_counts: dict[str, int], limits: dict[str, float]
) -> dict[str, Any]:
    """One feature's frequencies now vs the reference, chi-square, PSI and verdict."""
    keys = sorted(set(current_counts) | set(reference_counts), key=int)
    cur = np.array([current_counts.get(k, 0) for k in keys], dtype=float)
    ref = np.array([reference_counts.get(k, 0) for k in keys], dtype=float)
    cur_freq = cur / cur.sum() if cur.sum() else cur
    ref_freq = ref / ref.sum() if ref.sum() else ref
    psi = _psi(cur_freq, ref_freq, limits["epsilon"])
    statistic, p_value = _chi_square(cur, ref)
    if psi >= limits["psi_threshold"] and p_value < limits["chi2_alpha"]:
        verdict = "drift"
    elif psi >= limits["psi_warning_threshold"]:
        verdict = "warning"
    else:
        verdict = "stable"
    return {
        "verdict": verdict,
        "psi": round(psi, 6),
        "chi2": round(statistic, 6),
        "chi2_p_value": p_value if math.isfinite(p_value) else 1.0,
        "current_frequencies": {k: round(float(f), 6) for k, f in zip(keys, cur_freq, strict=True)},
        "reference_frequencies": {
            k: round(float(f), 6) for k, f in zip(keys, ref_freq, strict=True)
        },
    }


def _reference_note(source: str) -> str:
    if source == "validation":
        return (
            "No champion carries a reference yet: the reference was created from the validated "
            "records themselves. Train a model to set it."
        )
    return "The records the champion in use was fit on."


def compute_drift_report(
    validated_records: pd.DataFrame,
    drift_reference: dict[str, Any],
    schema: Schema,
    drift_params: dict[str, Any],
) -> dict[str, Any]:
    """Per feature: frequencies now vs the reference, chi-square, PSI and a verdict.

    A feature ``drift``s when its PSI reaches ``psi_threshold`` and the chi-square p-value is
    below ``chi2_alpha`` (a shift both material and statistically significant); it is a
    ``warning`` when PSI reaches ``psi_warning_threshold`` otherwise; else ``stable``. The
    chi-square test alone is not used as a verdict: with thousands of records it flags shifts
    too small to matter. Overall drift: at least ``min_drifted_features`` features drift.
    """
    limits = {
        "psi_threshold": float(drift_params.get("psi_threshold", 0.2)),
        "psi_warning_threshold": float(drift_params.get("psi_warning_threshold", 0.1)),
        "chi2_alpha": float(drift_params.get("chi2_alpha", 0.01)),
        "epsilon": float(drift_params.get("epsilon", 1e-4)),
    }
    min_drifted = int(drift_params.get("min_drifted_features", 1))
    features: dict[str, Any] = {}
    for name, categories in allowed_values(schema).items():
        reference = drift_reference["features"].get(name)
        current_counts = _category_counts(validated_records[name], categories)
        features[name] = (
            {"verdict": "no_reference", "current_counts": current_counts}
            if reference is None
            else _feature_drift(current_counts, reference["counts"], limits)
        )
    drifted = [n for n, f in features.items() if f["verdict"] == "drift"]
    warnings = [n for n, f in features.items() if f["verdict"] == "warning"]
    source = drift_reference.get("source", "unknown")
    thresholds = {k: v for k, v in limits.items() if k != "epsilon"}
    report = {
        "drift_detected": len(drifted) >= min_drifted,
        "drifted_features": drifted,
        "warning_features": warnings,
        "reference": {
            "source": source,
            "n_records": drift_reference.get("n_records"),
            "note": _reference_note(source),
        },
        "current_records": len(validated_records),
        "thresholds": {**thresholds, "min_drifted_features": min_drifted},
        "features": features,
    }
    if drifted or warnings:
        logger.warning(
            "Drift vs the %s reference: drifted %s; warnings %s",
            source, drifted or "none", warnings or "none",
        )  # fmt: skip
    else:
        logger.info("No drift vs the %s reference (%d features stable).", source, len(features))
    return report


def measure_drift(
    validated_records: pd.DataFrame,
    champion_model: PhishingModel | None,
    schema: Schema,
    drift_params: dict[str, Any],
) -> dict[str, Any]:
    """The drift report of ``validated_records`` against the reference the champion carries.

    The validation pipeline's drift node: the reference is read from the champion (the one
    place it is stored), or built from these records when no champion carries one yet.
    """
    reference = resolve_drift_reference(validated_records, champion_model, schema)
    return compute_drift_report(validated_records, reference, schema, drift_params)


_VERDICT_COLOURS = {"stable": "#2ca02c", "warning": "#ff7f0e", "drift": "#d62728"}


def plot_drift(drift_report: dict[str, Any]) -> go.Figure:
    """Bar chart of PSI per feature coloured by verdict, with the two PSI thresholds."""
    scored = {n: f for n, f in drift_report["features"].items() if "psi" in f}
    names = sorted(scored, key=lambda n: scored[n]["psi"], reverse=True)
    figure = go.Figure(
        go.Bar(
            x=names,
            y=[scored[n]["psi"] for n in names],
            marker_color=[_VERDICT_COLOURS[scored[n]["verdict"]] for n in names],
            customdata=[[scored[n]["verdict"], scored[n]["chi2_p_value"]] for n in names],
            hovertemplate=(
                "%{x}<br>PSI %{y:.4f}<br>%{customdata[0]}<br>chi2 p=%{customdata[1]:.3g}"
                "<extra></extra>"
            ),
        )
    )
    thresholds = drift_report["thresholds"]
    figure.add_hline(
        y=thresholds["psi_threshold"],
        line_dash="dash",
        line_color="#d62728",
        annotation_text="drift",
    )
    figure.add_hline(
        y=thresholds["psi_warning_threshold"],
        line_dash="dot",
        line_color="#ff7f0e",
        annotation_text="warning",
    )
    reference = drift_report["reference"]
    figure.update_layout(
        title=(
            f"Feature drift (PSI) of {drift_report['current_records']} records vs the "
            f"{reference['source']} reference ({reference['n_records']} records)"
        ),
        xaxis_title="feature",
        yaxis_title="population stability index",
        xaxis_tickangle=-45,
        template="plotly_white",
    )
    return figure


def enforce_drift_gate(
    validated_records: pd.DataFrame, drift_report: dict[str, Any], drift_params: dict[str, Any]
) -> pd.DataFrame:
    """Pass the records on; stop the run on drift only when ``fail_on_drift`` is true.

    Raises:
        DataDriftError: If drift was detected and ``fail_on_drift`` is set.
    """
    if drift_report["drift_detected"]:
        details = ", ".join(
            f"{n} (PSI {drift_report['features'][n]['psi']:.3f})"
            for n in drift_report["drifted_features"]
        )
        if drift_params.get("fail_on_drift", False):
            raise DataDriftError(
                f"Feature drift against the {drift_report['reference']['source']} reference in "
                f"{len(drift_report['drifted_features'])} feature(s): {details}. See "
                "data/08_reporting/drift_report.json. Retrain on the new data, or set "
                "validation.drift.fail_on_drift: false in conf/base/parameters_validation.yml "
                "to record drift without stopping."
            )
        logger.warning("Feature drift recorded (not blocking): %s", details)
    return validated_records
