"""Unit tests of the validation nodes, on records built from the project's real schema."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from kedro_datasets.pandas import ParquetDataset

from network_security.drift import (
    DataDriftError,
    build_drift_reference,
    compute_drift_report,
    enforce_drift_gate,
    plot_drift,
    resolve_drift_reference,
)
from network_security.model import PhishingModel
from network_security.pipelines.validation.nodes import (
    DataValidationError,
    build_validation_report,
    enforce_validation_gate,
    find_schema_violations,
    quarantine_rejected_records,
    select_valid_records,
)
from network_security.schema import feature_columns, record_columns


def run_checks(records, schema, params):
    """The validation nodes up to the gate, as the pipeline chains them."""
    violations = find_schema_violations(records, schema, params)
    rejected = quarantine_rejected_records(records, violations, schema)
    valid = select_valid_records(records, violations, schema)
    report = build_validation_report(records, violations, rejected, schema, params)
    return violations, rejected, valid, report


# ---------------------------------------------------------------------------- schema checks
def test_clean_records_pass_unchanged(make_records, schema, validation_params):
    records = make_records(200)
    violations, rejected, valid, report = run_checks(records, schema, validation_params)

    assert violations.empty
    assert rejected.empty
    assert report["passed"] is True
    assert report["totals"] == {
        "records": 200,
        "valid": 200,
        "rejected": 0,
        "rejected_fraction": 0.0,
        "max_invalid_fraction": 0.05,
        "failed_checks": 0,
    }
    passed = enforce_validation_gate(valid, report)
    pd.testing.assert_frame_equal(passed, records[["record_key", *record_columns(schema)]])
    assert all(passed[c].dtype == "int64" for c in record_columns(schema))


def test_empty_collection_says_to_run_ingestion(schema, validation_params):
    with pytest.raises(DataValidationError, match=r"kedro run --pipeline ingestion"):
        find_schema_violations(pd.DataFrame(), schema, validation_params)


def test_missing_column_is_a_hard_failure_naming_it(make_records, schema, validation_params):
    records = make_records(50).drop(columns=["SSLfinal_State", "Result"])
    violations, rejected, valid, report = run_checks(records, schema, validation_params)

    assert report["missing_columns"] == ["Result", "SSLfinal_State"]
    assert report["passed"] is False
    assert rejected.empty  # a missing column is not blamed on the rows
    assert "SSLfinal_State" not in valid.columns
    with pytest.raises(DataValidationError, match=r"missing .*: Result, SSLfinal_State"):
        enforce_validation_gate(valid, report)


def test_out_of_domain_values_below_threshold_are_quarantined(
    make_records, schema, validation_params
):
    records = make_records(200)
    records.loc[[3, 50, 150], "SSLfinal_State"] = 7  # 1.5% < 5%
    records.loc[10, "Redirect"] = -1  # a value the schema does not allow for this column
    violations, rejected, valid, report = run_checks(records, schema, validation_params)

    assert set(rejected["row"]) == {3, 10, 50, 150}
    reasons = dict(zip(rejected["row"], rejected["rejection_reason"], strict=True))
    assert reasons[3] == "SSLfinal_State=7 is not in [-1, 0, 1]"
    assert reasons[10] == "Redirect=-1 is not in [0, 1]"
    assert rejected.loc[rejected["row"] == 3, "record_key"].item() == records.loc[3, "record_key"]
    assert report["failures_by_column"]["SSLfinal_State"]["rows_failed"] == 3
    assert report["failures_by_column"]["SSLfinal_State"]["failing_values"] == {"7": 3}
    example = report["failures_by_column"]["SSLfinal_State"]["example_rows"][0]
    assert example == {"row": 3, "record_key": records.loc[3, "record_key"], "value": "7"}
    assert report["totals"]["rejected"] == 4
    assert report["passed"] is True

    passed = enforce_validation_gate(valid, report)
    assert len(passed) == 196
    assert not passed["record_key"].isin(records.loc[[3, 10, 50, 150], "record_key"]).any()
    assert passed["SSLfinal_State"].isin([-1, 0, 1]).all()


def test_out_of_domain_values_above_threshold_stop_the_run(make_records, schema, validation_params):
    records = make_records(100)
    records.loc[:29, "SSLfinal_State"] = 7  # 30%
    records.loc[0, "URL_Length"] = -3
    _, rejected, valid, report = run_checks(records, schema, validation_params)

    assert len(rejected) == 30
    assert report["passed"] is False
    with pytest.raises(DataValidationError) as excinfo:
        enforce_validation_gate(valid, report)
    message = str(excinfo.value)
    assert "30 of 100 records rejected (30.00%)" in message
    assert "SSLfinal_State: 30 rows (allowed_values 30)" in message
    assert "URL_Length: 1 rows" in message
    assert "max_invalid_fraction" in message


def test_threshold_comes_from_parameters(make_records, schema, validation_params):
    records = make_records(100)
    records.loc[:29, "SSLfinal_State"] = 7
    validation_params["max_invalid_fraction"] = 0.5
    _, _, valid, report = run_checks(records, schema, validation_params)
    assert len(enforce_validation_gate(valid, report)) == 70


def test_missing_and_non_integer_values_are_rejected(make_records, schema, validation_params):
    records = make_records(100).astype({"Favicon": object, "port": "float64"})
    records.loc[5, "Favicon"] = "abc"
    records.loc[6, "Favicon"] = None
    records.loc[7, "port"] = 0.5
    records.loc[8, "port"] = np.nan
    records.loc[9, "Result"] = 0
    _, rejected, valid, report = run_checks(records, schema, validation_params)

    reasons = dict(zip(rejected["row"], rejected["rejection_reason"], strict=True))
    assert reasons[5] == "Favicon='abc' is not an integer; Favicon=abc is not in [-1, 1]"
    assert reasons[6] == "Favicon is missing"
    assert reasons[7] == "port='0.5' is not an integer; port=0.5 is not in [-1, 1]"
    assert reasons[8] == "port is missing"
    assert reasons[9] == "Result=0 is not in [-1, 1]"
    assert report["failures_by_check"] == {
        "integer_type": 2,
        "allowed_values": 3,
        "not_nullable": 2,
    }
    assert len(valid) == 95
    assert valid["Favicon"].dtype == "int64" and valid["port"].dtype == "int64"


def test_nullable_integer_columns_from_mongo_are_accepted(make_records, schema, validation_params):
    records = make_records(20)
    records["Iframe"] = records["Iframe"].astype("Int64")
    records.loc[4, "Iframe"] = pd.NA
    _, rejected, valid, _ = run_checks(records, schema, validation_params)
    assert rejected["rejection_reason"].tolist() == ["Iframe is missing"]
    assert valid["Iframe"].dtype == "int64" and len(valid) == 19


def test_duplicate_record_keys_keep_the_first(make_records, schema, validation_params):
    records = make_records(100)
    records.loc[40, "record_key"] = records.loc[2, "record_key"]
    _, rejected, valid, report = run_checks(records, schema, validation_params)
    assert rejected["row"].tolist() == [40]
    assert rejected["rejection_reason"].item() == (
        f"record_key {records.loc[2, 'record_key']} repeats an earlier record"
    )
    assert report["failures_by_check"] == {"duplicate_record_key": 1}
    assert valid["record_key"].is_unique and len(valid) == 99


def test_duplicate_record_keys_all_rejected_when_configured(
    make_records, schema, validation_params
):
    records = make_records(100)
    records.loc[40, "record_key"] = records.loc[2, "record_key"]
    validation_params["duplicate_keys"] = "all"
    _, rejected, _, _ = run_checks(records, schema, validation_params)
    assert sorted(rejected["row"]) == [2, 40]


def test_all_duplicate_input_stops_the_run(make_records, schema, validation_params):
    records = pd.concat([make_records(1)] * 40, ignore_index=True)
    _, rejected, valid, report = run_checks(records, schema, validation_params)
    assert len(rejected) == 39 and len(valid) == 1
    with pytest.raises(DataValidationError, match=r"39 of 40 records rejected.*record_key: 39"):
        enforce_validation_gate(valid, report)


def test_rejected_records_and_report_survive_their_datasets(
    make_records, schema, validation_params, tmp_path
):
    records = make_records(30).astype({"Favicon": object})
    records.loc[1, "Favicon"] = "abc"
    records.loc[2, "Favicon"] = 1
    records.loc[3, "SSLfinal_State"] = 9
    records["unexpected"] = "x"
    _, rejected, _, report = run_checks(records, schema, validation_params)

    dataset = ParquetDataset(filepath=str(tmp_path / "rejected.parquet"))
    dataset.save(rejected)
    reloaded = dataset.load()
    assert reloaded["rejection_reason"].tolist() == rejected["rejection_reason"].tolist()
    assert reloaded["Favicon"].tolist() == ["abc", "1"]
    assert reloaded.columns[:2].tolist() == ["row", "record_key"]

    assert json.loads(json.dumps(report)) == report
    assert report["unexpected_columns"] == ["unexpected"]


# ---------------------------------------------------------------------------- drift
@pytest.fixture
def drift_params(validation_params):
    return validation_params["drift"]


def test_build_drift_reference_counts_every_category(make_records, schema):
    records = make_records(300)
    reference = build_drift_reference(records, schema)
    assert reference["source"] == "training" and reference["n_records"] == 300
    assert set(reference["features"]) == set(feature_columns(schema))
    ssl = reference["features"]["SSLfinal_State"]
    assert ssl["counts"] == {
        str(v): int((records["SSLfinal_State"] == v).sum()) for v in (-1, 0, 1)
    }
    assert sum(ssl["frequencies"].values()) == pytest.approx(1.0)
    assert list(reference["features"]["Redirect"]["counts"]) == ["0", "1"]
    assert json.loads(json.dumps(reference)) == reference


def test_the_reference_is_the_champions_or_the_records_before_any_champion(make_records, schema):
    records = make_records(100)
    created = resolve_drift_reference(records, None, schema)
    assert created["source"] == "validation" and created["n_records"] == 100
    saved = build_drift_reference(make_records(50, seed=3), schema)
    champion = PhishingModel(estimator=None, feature_columns=[], drift_reference=saved)
    assert resolve_drift_reference(records, champion, schema) is saved
    older = PhishingModel(estimator=None, feature_columns=[])  # a model without a reference
    assert resolve_drift_reference(records, older, schema)["source"] == "validation"


def test_same_distribution_is_stable(make_records, schema, drift_params):
    reference = build_drift_reference(make_records(3000, seed=1), schema)
    report = compute_drift_report(make_records(3000, seed=2), reference, schema, drift_params)
    assert report["drift_detected"] is False
    assert report["drifted_features"] == [] and report["warning_features"] == []
    assert {f["verdict"] for f in report["features"].values()} == {"stable"}
    assert report["features"]["SSLfinal_State"]["psi"] < 0.01
    assert report["reference"]["source"] == "training"


def test_shifted_feature_drifts_and_is_named(make_records, schema, drift_params):
    reference = build_drift_reference(make_records(3000, seed=1), schema)
    current = make_records(3000, seed=2)
    current.loc[: int(0.8 * len(current)), "SSLfinal_State"] = 1  # ~87% legitimate vs ~33%
    report = compute_drift_report(current, reference, schema, drift_params)

    ssl = report["features"]["SSLfinal_State"]
    assert ssl["verdict"] == "drift"
    assert ssl["psi"] > 0.2 and ssl["chi2_p_value"] < 0.01
    assert ssl["current_frequencies"]["1"] > 0.85
    assert report["drift_detected"] is True
    assert report["drifted_features"] == ["SSLfinal_State"]

    assert enforce_drift_gate(current, report, drift_params) is current
    with pytest.raises(DataDriftError, match=r"SSLfinal_State \(PSI"):
        enforce_drift_gate(current, report, {**drift_params, "fail_on_drift": True})


def test_large_shift_in_a_small_sample_is_only_a_warning(make_records, schema, drift_params):
    reference = build_drift_reference(make_records(3000, seed=1), schema)
    current = make_records(12, seed=5)
    current["Redirect"] = [0] * 9 + [1] * 3  # PSI high, but 12 rows cannot be significant
    report = compute_drift_report(current, reference, schema, drift_params)
    redirect = report["features"]["Redirect"]
    assert redirect["psi"] >= 0.2 and redirect["chi2_p_value"] >= 0.01
    assert redirect["verdict"] == "warning"


def test_first_run_report_says_the_reference_was_created(make_records, schema, drift_params):
    records = make_records(500)
    reference = resolve_drift_reference(records, None, schema)
    report = compute_drift_report(records, reference, schema, drift_params)
    assert report["drift_detected"] is False
    assert report["reference"]["source"] == "validation"
    assert "created from the validated records" in report["reference"]["note"]
    assert "Train a model" in report["reference"]["note"]
    assert all(f["psi"] == 0 for f in report["features"].values())


def test_drift_chart_plots_psi_per_feature(make_records, schema, drift_params):
    reference = build_drift_reference(make_records(3000, seed=1), schema)
    current = make_records(3000, seed=2)
    current["SSLfinal_State"] = 1
    figure = plot_drift(compute_drift_report(current, reference, schema, drift_params))
    assert isinstance(figure, go.Figure)
    bar = figure.data[0]
    assert len(bar.x) == 30 and bar.x[0] == "SSLfinal_State"
    assert bar.marker.color[0] == "#d62728"
    assert sorted(shape.y0 for shape in figure.layout.shapes) == [0.1, 0.2]
