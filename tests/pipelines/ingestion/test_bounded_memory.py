"""`kedro run --pipeline ingestion` of 300,000 rows stays under 400 MiB and stores every row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic import frame_to_csv, sample_records  # scripts/synthetic.py (pytest pythonpath)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
LIMIT_MIB = 400


def peak_rss_mib(process: subprocess.Popen) -> float:
    """The process's own peak RSS (``VmHWM``), followed until it exits.

    Not ``wait4``'s ``ru_maxrss``: that also counts the memory of the forked test process
    before it became ``kedro run``.
    """
    status = Path(f"/proc/{process.pid}/status")
    peak = 0.0
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.2)
    return peak


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_ingesting_300000_rows_peaks_under_400_mib_and_stores_them_all(
    kedro_project, schema, mongo_uri, mongo_client, mongo_database, mlflow_tracking_uri, tmp_path
):
    profile = json.loads((PROJECT_ROOT / "conf/base/synthetic_profile.json").read_text())
    source = tmp_path / "records.csv"
    source.write_text(frame_to_csv(sample_records(profile, schema, 300_000, seed=11)))
    env = {
        **os.environ,
        "MONGODB_URI": mongo_uri,  # no embedded server: the kedro process alone is measured
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",
    }
    (kedro_project / "conf/local/credentials.yml").write_text(
        (kedro_project / "conf/local/credentials.yml.example").read_text()
    )
    log = tmp_path / "kedro.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "kedro", "run", "--pipeline", "ingestion", "--params",
             f"raw_data_path={source},mongo_database={mongo_database}"],
            cwd=kedro_project, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        peak = peak_rss_mib(process)
    assert process.wait() == 0, log.read_text()[-3000:]
    print(f"ingestion of 300,000 rows: peak RSS {peak:.0f} MiB (limit {LIMIT_MIB})")
    assert 0 < peak <= LIMIT_MIB, f"peak RSS {peak:.0f} MiB"
    assert mongo_client[mongo_database]["phishing_records"].count_documents({}) == 300_000


_INGEST_AND_LIST_IMPORTS = """
import json, sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

project, source, database = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
bootstrap_project(project)
params = {"raw_data_path": source, "mongo_database": database}
with KedroSession.create(project_path=project, runtime_params=params) as session:
    session.run(pipeline_names=["ingestion"])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_an_ingestion_run_imports_nothing_only_training_or_inference_use(
    kedro_project, mongo_uri, mongo_client, mongo_database, mlflow_tracking_uri
):
    env = {**os.environ, "MONGODB_URI": mongo_uri, "MLFLOW_TRACKING_URI": mlflow_tracking_uri}
    sample = kedro_project / "data" / "01_raw" / "phishing_sample.csv"
    result = subprocess.run(
        [sys.executable, "-c", _INGEST_AND_LIST_IMPORTS, str(kedro_project), str(sample),
         mongo_database],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    imported = set(json.loads(result.stdout.splitlines()[-1]))
    assert imported.isdisjoint({"sklearn", "plotly", "pandera", "numba"}), imported
    assert mongo_client[mongo_database]["phishing_records"].count_documents({}) == 3000
