"""The exploration notebook runs top to bottom through `%load_ext kedro.ipython`."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "exploration.ipynb"


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_exploration_notebook_runs_on_a_trained_project(
    kedro_project, run_kedro, mongo_uri, mongo_client, mlflow_tracking_uri, monkeypatch
):
    # the notebook opens the project as a user would, on the default database name
    database = "network_security"
    mongo_client.drop_database(database)
    run_kedro(kedro_project, "__default__", {"mongo_database": database})
    notebook_dir = kedro_project / "notebooks"
    notebook_dir.mkdir()
    shutil.copy(NOTEBOOK, notebook_dir / NOTEBOOK.name)
    # the kernel is another process: it reads the test server and database from the environment
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    notebook = nbformat.read(notebook_dir / NOTEBOOK.name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook_dir)}},
    )
    try:
        client.execute()  # raises CellExecutionError on the first failing cell
    finally:
        mongo_client.drop_database(database)
    text = "\n".join(_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "3,000 records, 30 features" in text
    assert "legitimate" in text and "phishing" in text
    assert "distinct feature vectors:" in text
    assert "validation_report {" in text
    charts = next(line for line in text.splitlines() if line.startswith("charts:"))
    assert "drift_chart" in charts
    assert "roc" in charts
