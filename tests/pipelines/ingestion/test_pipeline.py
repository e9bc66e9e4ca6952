"""The ingestion pipeline end to end through a KedroSession against the test server."""

from __future__ import annotations

import shutil

import psutil
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from network_security.validator import InputValidationError


def test_ingesting_the_real_data_set_twice_stores_each_row_once(
    kedro_project, run_kedro, real_data_path, mongo_client, mongo_database
):
    collection = mongo_client[mongo_database]["phishing_records"]
    run_kedro(kedro_project, "ingestion", {"raw_data_path": str(real_data_path)})
    assert collection.count_documents({}) == 9366
    run_kedro(kedro_project, "ingestion", {"raw_data_path": str(real_data_path)})
    assert collection.count_documents({}) == 9366


def test_a_text_cell_stops_the_run_and_stores_nothing_of_the_file(
    kedro_project, run_kedro, sample_data_path, mongo_client, mongo_database, tmp_path
):
    good = tmp_path / "good.csv"
    lines = sample_data_path.read_text().splitlines()
    good.write_text("\n".join(lines[:101]) + "\n")
    run_kedro(kedro_project, "ingestion", {"raw_data_path": str(good)})
    collection = mongo_client[mongo_database]["phishing_records"]
    before = sorted(collection.distinct("_id"))

    header, rows = lines[0].split(","), [line.split(",") for line in lines[101:301]]
    rows[57][header.index("URL_Length")] = "abc"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    with pytest.raises(InputValidationError) as error:
        run_kedro(kedro_project, "ingestion", {"raw_data_path": str(bad)})
    assert "URL_Length" in str(error.value)
    assert "row 58" in str(error.value)
    assert str(bad) in str(error.value)
    assert sorted(collection.distinct("_id")) == before


def test_without_mongodb_uri_the_run_uses_an_embedded_server_and_stops_it(
    kedro_project, monkeypatch, mlflow_tracking_uri
):
    sample = kedro_project / "data" / "01_raw" / "phishing_sample.csv"
    if not sample.exists():
        pytest.skip("the committed synthetic sample is not there yet")
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    bootstrap_project(kedro_project)
    with KedroSession.create(project_path=kedro_project) as session:
        session.run(pipeline_name="ingestion")
    storage = kedro_project / "data" / "mongo"
    assert storage.is_dir() and any(storage.iterdir())
    # the git-ignored local credentials were created from their committed template
    local = kedro_project / "conf" / "local"
    assert (local / "credentials.yml").read_text() == (
        local / "credentials.yml.example"
    ).read_text()
    import os

    assert "MONGODB_URI" not in os.environ
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if p.info["cmdline"] and str(storage) in " ".join(p.info["cmdline"])
    ]
    assert leftovers == []
    shutil.rmtree(storage)
