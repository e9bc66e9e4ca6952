"""Acceptance checks of validation on the real data set (read from ../shared; never copied here).

CSV -> ingestion -> MongoDB (test server) -> validation -> feature_engineering, through Kedro
sessions. The modified CSVs are written to the test's temporary directory only.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from network_security.pipelines.validation.nodes import DataValidationError
from network_security.schema import allowed_values, feature_columns

pytestmark = pytest.mark.slow


def test_real_data_with_90_bad_rows_validates_and_splits_cleanly(
    kedro_project, run_kedro, real_data_path, tmp_path, schema
):
    real = pd.read_csv(real_data_path)
    extra = real.sample(90, random_state=3).assign(SSLfinal_State=7)
    raw = tmp_path / "real_plus_90.csv"
    pd.concat([real, extra]).to_csv(raw, index=False)

    run_kedro(kedro_project, "ingestion", {"raw_data_path": str(raw)})
    run_kedro(kedro_project, "validation")
    run_kedro(kedro_project, "feature_engineering")

    reporting = kedro_project / "data" / "08_reporting"
    report = json.loads((reporting / "validation_report.json").read_text())
    assert report["passed"] is True
    assert report["totals"]["records"] == len(real) + 90
    assert report["totals"]["rejected"] == 90
    assert report["failures_by_column"]["SSLfinal_State"]["failing_values"] == {"7": 90}
    drift = json.loads((reporting / "drift_report.json").read_text())
    assert drift["drift_detected"] is False and drift["reference"]["source"] == "validation"

    model_input = kedro_project / "data" / "05_model_input"
    train = pd.read_parquet(model_input / "train.parquet")
    test = pd.read_parquet(model_input / "test.parquet")
    features = feature_columns(schema)
    assert len(train) + len(test) == len(real)
    assert set(map(tuple, train[features].to_numpy())).isdisjoint(
        map(tuple, test[features].to_numpy())
    )
    for name, values in allowed_values(schema).items():
        assert train[name].isin(values).all() and test[name].isin(values).all(), name


def test_real_data_with_30_percent_bad_values_stops_naming_the_column(
    kedro_project, run_kedro, real_data_path, tmp_path
):
    real = pd.read_csv(real_data_path)
    bad = real.sample(frac=0.3, random_state=4).index
    real.loc[bad, "SSLfinal_State"] = 7
    raw = tmp_path / "real_30_percent_bad.csv"
    real.to_csv(raw, index=False)

    run_kedro(kedro_project, "ingestion", {"raw_data_path": str(raw)})
    with pytest.raises(DataValidationError) as excinfo:
        run_kedro(kedro_project, "validation")
    message = str(excinfo.value)
    assert f"{len(bad)} of {len(real)} records rejected (30.00%)" in message
    assert f"Failing columns: SSLfinal_State: {len(bad)} rows" in message
