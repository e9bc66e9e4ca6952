"""`kedro viz build`: the five pipelines as collapsible modular pipelines; on a project with
data, layers and previews of records, reports and charts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MODULAR_PIPELINES = {
    "ingestion": {"type_records", "add_record_keys"},
    "validation": {"find_schema_violations", "enforce_validation_gate", "measure_drift"},
    "feature_engineering": {"split_train_test", "summarize_split"},
    "training": {"search_candidates", "register_model", "decide_promotion"},
    "inference": {"check_inference_batch", "score_inference_batch"},
}
"""Each pipeline's namespace, and some of the nodes kedro-viz must draw inside its group."""


def _viz_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", **extra}


def assert_modular_pipelines(main: dict) -> None:
    """The built graph groups each pipeline's nodes under its own collapsible namespace."""
    groups = main["modular_pipelines"]
    assert set(MODULAR_PIPELINES) <= set(groups), sorted(groups)
    collapsible = {n["id"] for n in main["nodes"] if n["type"] == "modularPipeline"}
    assert set(MODULAR_PIPELINES) <= collapsible
    tasks = {n["id"]: n for n in main["nodes"] if n["type"] == "task"}
    for namespace, expected in MODULAR_PIPELINES.items():
        inside = {
            tasks[child["id"]]["name"]
            for child in groups[namespace]["children"]
            if child["type"] == "task"
        }
        assert expected <= inside, (namespace, sorted(inside))
        assert all(tasks[t]["modular_pipelines"] == [namespace] for t in tasks if
                   tasks[t]["name"] in expected)  # fmt: skip
    # the top level shows the five groups, not the 33 nodes of a flat graph
    top_level_tasks = [c for c in groups["__root__"]["children"] if c["type"] == "task"]
    assert top_level_tasks == []


def test_kedro_viz_build_shows_the_five_pipelines_as_modular_pipelines(kedro_project):
    """Without hooks nothing starts (no database, no MLflow run): the graph alone."""
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        cwd=kedro_project,
        env=_viz_env(MLFLOW_TRACKING_URI=(kedro_project / "mlruns").as_uri()),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert_modular_pipelines(json.loads((kedro_project / "build" / "api" / "main").read_text()))


@pytest.mark.slow
def test_kedro_viz_build_has_layers_and_previews(
    kedro_project, run_kedro, mongo_uri, mongo_client, mlflow_tracking_uri
):
    database = "network_security"  # kedro viz takes no runtime parameters: the default name
    mongo_client.drop_database(database)
    try:
        run_kedro(kedro_project, "ingestion", {"mongo_database": database})
        run_kedro(kedro_project, "validation", {"mongo_database": database})
        env = _viz_env(MONGODB_URI=mongo_uri, MLFLOW_TRACKING_URI=mlflow_tracking_uri)
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
    assert_modular_pipelines(main)
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
