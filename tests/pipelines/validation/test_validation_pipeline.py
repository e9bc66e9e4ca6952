"""The validation pipeline end to end: records in MongoDB (the test server) -> validation."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from kedro_datasets.plotly import JSONDataset as PlotlyJSONDataset

from network_security.champion import write_cache
from network_security.datasets import MongoDataset
from network_security.drift import DataDriftError, build_drift_reference
from network_security.model import PhishingModel
from network_security.pipelines.validation.nodes import DataValidationError
from network_security.schema import record_columns


@pytest.fixture
def store_records(mongo_uri, mongo_database):
    """Save records into the test database's ``phishing_records`` collection, as ingestion does."""

    def store(records: pd.DataFrame) -> None:
        dataset = MongoDataset(
            collection="phishing_records",
            database=mongo_database,
            credentials={"uri": mongo_uri},
        )
        dataset.save(records)
        dataset.release()

    return store


def read_json(path):
    return json.loads(path.read_text())


def test_validation_quarantines_reports_and_creates_the_reference(
    kedro_project, run_kedro, store_records, make_records, schema, caplog
):
    records = make_records(400, seed=11)
    records.loc[[5, 99, 250], "SSLfinal_State"] = 7  # 0.75%: quarantined, run continues
    store_records(records)

    with caplog.at_level(logging.INFO, logger="network_security.datasets.mongo_dataset"):
        run_kedro(kedro_project, "validation")
    # four nodes take phishing_records: the collection is read once, one snapshot for all
    loads = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Loaded 400")]
    assert len(loads) == 4
    assert sum("this run's snapshot" in message for message in loads) == 3

    data = kedro_project / "data"
    validated = pd.read_parquet(data / "02_intermediate" / "validated_records.parquet")
    rejected = pd.read_parquet(data / "02_intermediate" / "rejected_records.parquet")
    report = read_json(data / "08_reporting" / "validation_report.json")
    drift = read_json(data / "08_reporting" / "drift_report.json")

    assert len(validated) == 397 and validated["SSLfinal_State"].isin([-1, 0, 1]).all()
    assert list(validated.columns) == ["record_key", *record_columns(schema)]
    assert len(rejected) == 3
    assert set(rejected["rejection_reason"]) == {"SSLfinal_State=7 is not in [-1, 0, 1]"}
    assert report["passed"] is True
    assert report["totals"]["rejected"] == 3 and report["totals"]["records"] == 400
    assert report["failures_by_column"]["SSLfinal_State"]["rows_failed"] == 3
    assert drift["reference"]["source"] == "validation"  # no champion: the records themselves
    assert drift["reference"]["n_records"] == 397
    assert not (data / "06_models" / "drift_reference.json").exists()  # nothing left behind
    assert drift["drift_detected"] is False
    chart = PlotlyJSONDataset(filepath=str(data / "08_reporting" / "drift_chart.json")).load()
    assert len(chart.data[0].x) == len(schema["features"])


def test_validation_against_a_training_reference_reports_and_can_block_drift(
    kedro_project, run_kedro, store_records, make_records, schema
):
    records = make_records(600, seed=12)
    store_records(records)
    # A champion trained on records in which SSLfinal_State is always 1 (the local cache; the
    # session's registry has no champion alias).
    training = make_records(600, seed=13).assign(SSLfinal_State=1)
    champion = PhishingModel(
        estimator=None, feature_columns=[], drift_reference=build_drift_reference(training, schema)
    )
    write_cache(champion, kedro_project / "data" / "06_models" / "champion.pkl")

    run_kedro(kedro_project, "validation")
    drift = read_json(kedro_project / "data" / "08_reporting" / "drift_report.json")
    assert drift["reference"]["source"] == "training"
    assert drift["drifted_features"] == ["SSLfinal_State"]

    with pytest.raises(DataDriftError, match="SSLfinal_State"):
        run_kedro(kedro_project, "validation", {"validation": {"drift": {"fail_on_drift": True}}})


def test_validation_stops_when_too_many_records_are_invalid(
    kedro_project, run_kedro, store_records, make_records, schema
):
    records = make_records(200, seed=14)
    records.loc[:59, "SSLfinal_State"] = 7  # 30%
    store_records(records)

    with pytest.raises(DataValidationError, match=r"60 of 200 records rejected.*SSLfinal_State"):
        run_kedro(kedro_project, "validation")

    data = kedro_project / "data"
    report = read_json(data / "08_reporting" / "validation_report.json")
    assert report["passed"] is False
    assert list(report["failures_by_column"]) == ["SSLfinal_State"]
    assert len(pd.read_parquet(data / "02_intermediate" / "rejected_records.parquet")) == 60
    assert not (data / "02_intermediate" / "validated_records.parquet").exists()
    assert not (data / "06_models" / "drift_reference.json").exists()


def test_validation_of_an_empty_collection_says_to_run_ingestion(kedro_project, run_kedro):
    with pytest.raises(DataValidationError, match=r"Run `kedro run --pipeline ingestion` first"):
        run_kedro(kedro_project, "validation")
