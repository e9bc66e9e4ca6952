"""The Dask cluster's life belongs to the run on the Dask engine only: a run on the pandas engine
(``kedro run --pipeline inference``, in a process of its own) never imports Dask; without a
scheduler, a local cluster is started for the run, computes it, and is stopped."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SRC = Path(__file__).resolve().parents[3] / "src"

RUN = """
import json, sys
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
project, params = sys.argv[1], json.loads(sys.argv[2])
bootstrap_project(project)
with KedroSession.create(project_path=project, runtime_params=params) as session:
    session.run(pipeline_name="inference")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {"dask", "distributed"})))
"""


def test_a_run_on_the_pandas_engine_never_imports_dask(
    kedro_project, write_champion, new_sites, mlflow_tracking_uri, tmp_path
):
    write_champion(kedro_project)
    source = tmp_path / "sites.csv"
    new_sites(40).to_csv(source, index=False)
    target = tmp_path / "predictions.csv"
    params = {"inference_input_path": str(source), "inference_output_path": str(target)}
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
        "KEDRO_DISABLE_TELEMETRY": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(kedro_project), json.dumps(params)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert len(pd.read_csv(target)) == 40


def test_without_a_scheduler_the_run_computes_on_a_local_cluster_it_then_stops(
    tmp_path, new_sites, caplog
):
    from distributed import default_client

    from network_security.dask_cluster import connect
    from network_security.datasets.dask_datasets import DaskParquetPartsDataset, DaskTableDataset

    source = tmp_path / "sites.csv"
    new_sites(1_000, seed=2).to_csv(source, index=False)
    local = {"n_workers": 2, "threads_per_worker": 1, "processes": False}  # in this process
    with caplog.at_level(logging.INFO), connect({"scheduler": "", "local_cluster": local}):
        assert len(default_client().nthreads()) == 2
        frame = DaskTableDataset(str(source), blocksize="16KiB").load()
        DaskParquetPartsDataset(str(tmp_path / "out")).save(frame)
    with pytest.raises(ValueError, match="No clients found"):
        default_client()
    assert "Started a local Dask cluster: 2 worker(s), 2 thread(s) in all" in caplog.messages
    assert f"Wrote 1,000 rows, {frame.npartitions}/{frame.npartitions} parts" in caplog.text
    assert any(m.startswith("Parts per worker: {") for m in caplog.messages)
    assert len(pd.read_parquet(tmp_path / "out")) == 1_000
