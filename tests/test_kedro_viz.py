"""`kedro viz build` on a project with data: layers, and previews of records, reports and charts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_kedro_viz_build_has_layers_and_previews(
    kedro_project, run_kedro, mongo_uri, mongo_client, mlflow_tracking_uri
):
    database = "network_security"  # kedro viz takes no runtime parameters: the default name
    mongo_client.drop_database(database)
    try:
        run_kedro(kedro_project, "ingestion", {"mongo_database": database})
        run_kedro(kedro_project, "validation", {"mongo_database": database})
        env = {
            **os.environ,
            "MONGODB_URI": mongo_uri,
            "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
            "KEDRO_DISABLE_TELEMETRY": "1",
        }
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kedro",
                "viz",
                "build",
                "--include-hooks",
                "--include-previews",
            ],
            cwd=kedro_project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        mongo_client.drop_database(database)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    api = kedro_project / "build" / "api"
    main = json.loads((api / "main").read_text())
    assert main["layers"][:3] == ["raw", "primary", "intermediate"]
    assert {"model_input", "models", "reporting"} <= set(main["layers"])
    nodes = {node["name"]: node for node in main["nodes"]}
    assert nodes["phishing_records"]["layer"] == "primary"

    def details(name: str) -> dict:
        return json.loads((api / "nodes" / nodes[name]["id"]).read_text())

    records = details("phishing_records")
    assert records["preview_type"] == "TablePreview"
    assert len(records["preview"]["data"]) == 5
    assert records["preview"]["columns"][0] == "record_key"
    chart = details("drift_chart")
    assert chart["preview_type"] == "PlotlyPreview" and chart["preview"]["data"]
    assert details("validation_report")["preview_type"] == "JSONPreview"
