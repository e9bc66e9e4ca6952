"""The validation pipeline's wiring, in memory: records -> validated records, quarantine, reports
and drift against the champion's reference (no database, no MLflow)."""

from __future__ import annotations

import pytest

from network_security.drift import DataDriftError, build_drift_reference
from network_security.model import PhishingModel
from network_security.pipelines.validation import create_pipeline


@pytest.fixture
def keyed_records(synthetic_records, schema):
    """400 synthetic records with record keys, two of them out of the schema's domain."""
    records = synthetic_records(400, seed=11)
    records.insert(0, schema["record_key"], [f"r{i:04d}" for i in range(len(records))])
    records.loc[[3, 7], "SSLfinal_State"] = 7
    return records


def test_validation_quarantines_reports_and_measures_drift(run_in_memory, keyed_records, schema):
    pipeline = create_pipeline()
    assert {n.namespace for n in pipeline.nodes} == {"validation"}
    assert {"phishing_records", "champion_model"} == {
        name for name in pipeline.inputs() if not name.startswith("params:")
    }

    outputs = run_in_memory(pipeline, {"phishing_records": keyed_records, "champion_model": None})

    assert set(outputs) == {
        "validation.schema_violations",
        "validation.valid_records",
        "validation.quality_checked_records",
        "rejected_records",
        "validation_report",
        "drift_report",
        "drift_chart",
        "validated_records",
    }
    key = schema["record_key"]
    assert sorted(outputs["rejected_records"][key]) == ["r0003", "r0007"]
    validated = outputs["validated_records"]
    assert len(validated) == len(keyed_records) - 2
    assert not validated[key].isin(["r0003", "r0007"]).any()
    totals = outputs["validation_report"]["totals"]
    assert (totals["records"], totals["rejected"]) == (len(keyed_records), 2)
    # no champion yet: the records are compared with themselves
    drift = outputs["drift_report"]
    assert drift["reference"]["source"] == "validation"
    assert drift["drift_detected"] is False
    assert outputs["drift_chart"].data  # a plotly figure with its bars


def test_validation_compares_with_the_reference_the_champion_carries(
    run_in_memory, project_config, keyed_records, synthetic_records, schema
):
    reference_records = synthetic_records(900, seed=5)
    champion = PhishingModel(
        estimator=None,
        feature_columns=[],
        version="7",
        drift_reference=build_drift_reference(reference_records, schema),
    )
    outputs = run_in_memory(
        create_pipeline(), {"phishing_records": keyed_records, "champion_model": champion}
    )
    reference = outputs["drift_report"]["reference"]
    assert reference["source"] == "training" and reference["n_records"] == 900

    # a shifted batch drifts, and `fail_on_drift` stops the run at the gate
    shifted = keyed_records.copy()
    shifted["SSLfinal_State"] = -1
    drift_params = {**project_config["parameters"]["validation"]["drift"], "fail_on_drift": True}
    with pytest.raises(DataDriftError, match="SSLfinal_State"):
        run_in_memory(
            create_pipeline(),
            {"phishing_records": shifted, "champion_model": champion},
            {"params:validation.drift": drift_params},
        )
