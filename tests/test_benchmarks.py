"""Every benchmark script runs at its small size (``--quick``) from a fresh clone and prints its
figures. The clone is a copy of the files git tracks (no data/mongo, no conf/local credentials,
no champion, no MLflow store) with the real data set beside it, as README lays them out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 900  # seconds per script at its small size (a loaded 2-core machine)


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def make_clone(parent: Path, with_real_data: bool) -> Path:
    """A copy of the checkout's git files in ``parent/clone``; the real data set (a link) at
    ``parent/shared/data`` when asked and available."""
    clone = parent / "clone"
    for name in _tracked_files():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    real = ROOT.parent / "shared" / "data" / "phishing_websites.csv"
    if with_real_data:
        if not real.exists():
            pytest.skip(f"the real data set is not at {real}")
        (parent / "shared" / "data").mkdir(parents=True)
        (parent / "shared" / "data" / real.name).symlink_to(real)
    return clone


def run_script(clone: Path, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if key != "MONGODB_URI"}
    env.pop("MLFLOW_TRACKING_URI", None)  # as on a fresh clone: the scripts choose their store
    env.update(KEDRO_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(clone / "src"), env.get("PYTHONPATH")) if p)
    result = subprocess.run(  # noqa: S603 - fixed command
        [sys.executable, *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{output[-5000:]}"
    return output


def number(pattern: str, output: str) -> float:
    match = re.search(pattern, output)
    assert match, f"no figure matching {pattern!r} in:\n{output[-3000:]}"
    return float(match.group(1).replace(",", ""))


@pytest.fixture
def clone(tmp_path: Path, real_data_path: Path) -> Path:
    """A fresh clone with the real data set beside it (these tests are marked ``realdata``)."""
    return make_clone(tmp_path, with_real_data=True)


def test_bench_ingestion_quick(clone):
    output = run_script(clone, "benchmarks/bench_ingestion.py", "--quick")
    assert number(r"rows in file:\s+(\d+)", output) == 1000
    assert number(r"documents stored by pipeline:\s+(\d+)", output) == 1000
    assert number(r"ingestion pipeline:\s+([\d,]+) documents/s", output) > 0
    assert number(r"bare insert_many:\s+([\d,]+) documents/s", output) > 0
    assert number(r"ratio pipeline / bare:\s+([\d.]+)", output) > 0


def test_bench_ingestion_quick_without_the_real_data_uses_the_synthetic_sample(tmp_path):
    clone = make_clone(tmp_path, with_real_data=False)
    output = run_script(clone, "benchmarks/bench_ingestion.py", "--quick")
    assert "phishing_sample.csv" in output
    assert number(r"documents stored by pipeline:\s+(\d+)", output) == 1000
    assert number(r"ratio pipeline / bare:\s+([\d.]+)", output) > 0


def test_bench_training_quick(clone):
    output = run_script(clone, "benchmarks/bench_training.py", "--quick")
    assert number(r"time ratio[^=\n]*=\s*([\d.]+)", output) > 0
    assert re.search(r"ROC-AUC|roc_auc", output), output[-3000:]


@pytest.mark.parametrize("size", [["--quick"], ["--rows", "20000"]], ids=["quick", "rows-20000"])
def test_bench_inference(clone, size):
    output = run_script(clone, "benchmarks/bench_inference.py", *size)
    assert number(r"([\d,]+) rows/s end to end", output) > 0
    assert number(r"pipeline/bare rows/s:\s*([\d.]+)", output) > 0


def test_bench_service_quick(clone):
    output = run_script(clone, "benchmarks/bench_service.py", "--quick")
    assert "p50 ms" in output and "p99 ms" in output
    # a case line: name, rows (1), p50, p99, mean (ms), rows/s
    assert number(r"(?m)^JSON records\D*\s1\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+\d+", output) > 0


def test_bench_load_quick(clone):
    output = run_script(clone, "benchmarks/bench_load.py", "--quick")
    assert "no error" in output
    assert number(r"load: 20 client\(s\), [\d.]+ s, (\d+) requests, 0 error", output) > 0
    for kind in ("json-1", "json-1000", "csv-1000"):
        assert number(rf"(?m)^{kind}\s+(\d+)\s+[\d.]+\s+[\d.]+", output) > 0
    assert number(r"throughput, load vs baseline: ([\d.]+)x", output) > 0


def test_bench_end_to_end_quick(clone):
    output = run_script(clone, "benchmarks/bench_end_to_end.py", "--quick", "--seed", "7", "3")
    assert re.findall(r"records (\d[\d,]*) rows", output) == ["3,000", "3,000"]
    champion = [
        float(x) for x in re.findall(r"champion \(kedro run inference\)\s+(\d\.\d+)", output)
    ]
    forest = [float(x) for x in re.findall(r"RandomForest\(500\)\s+(\d\.\d+)", output)]
    assert len(champion) == len(forest) == 3  # two splits, then their mean
    assert all(0.85 < a <= 1 for a in champion + forest)  # accuracies on unseen feature vectors
    assert "mean over 2 splits (seeds 7 3)" in output
    assert champion[2] == pytest.approx((champion[0] + champion[1]) / 2, abs=1e-4)
    assert forest[2] == pytest.approx((forest[0] + forest[1]) / 2, abs=1e-4)


def test_bench_holdout_quick_on_the_end_to_end_splits(clone):
    output = run_script(
        clone, "benchmarks/bench_holdout.py", "--quick", "--split", "random", "--first-seed", "3"
    )
    # --split random holds out what bench_end_to_end.py --seed 3 holds out (1,887 rows)
    assert number(r"seed 3: held out (\d+) rows \(984 distinct vectors\)", output) == 1887
    assert number(r"seed 4: held out (\d+) rows \(984 distinct vectors\)", output) == 1827
    for arm in ("selected, refit on all the rest", r"RandomForest\(500\), raw indicators"):
        accuracy = number(rf"(?m)^{arm}\s+(\d\.\d+)", output)
        assert 0.85 < accuracy <= 1  # mean held-out accuracy of the two splits
    assert "selected + refit vs the target figures" in output
