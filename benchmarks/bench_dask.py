"""Benchmark: the Dask inference engine against the pandas engine, and chunked ingestion.

Generates, in a temporary directory, new sites to score (feature vectors drawn uniformly within
the schema's allowed values, plus a ``url`` column) as ten CSV files, and labelled records to
ingest (the committed synthetic profile, so about half the rows repeat another, as in the real
data). Then measures, each ``kedro run`` in a subprocess of its own in a temporary copy of the
project, against one SecantusDB server started here (``MONGODB_URI``):

1. the pandas engine: ``kedro run --pipeline inference`` on the same rows as one CSV file;
2. the Dask engine: ``--params inference_engine=dask,dask_workers=2`` (a LocalCluster of two
   worker processes) on the glob of the ten files, writing Parquet parts;
3. ingestion: ``kedro run --pipeline ingestion`` of two sizes (a third and all of the rows), to
   show that peak memory stays flat as files grow.

For each: wall time and rows/s end to end (interpreter, imports, Kedro start-up and, for Dask,
the cluster's start included), Kedro's own "pipeline execution" time, and the peak RSS of each
process (its high-water mark, followed every 0.1 s: the ``kedro run`` process, each Dask worker
process). The machine
may be shared: compare the ratios of one run, not absolute figures across runs.

The model is a random forest (100 trees) fitted on the committed synthetic sample, so the
benchmark runs from a fresh clone (``pip install -e ".[dev]"``)::

    python benchmarks/bench_dask.py            # 10,000,000 rows to score, 1,000,000 to ingest
    python benchmarks/bench_dask.py --quick    # 200,000 rows to score, 60,000 to ingest
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "scripts"))

from synthetic import frame_to_csv, sample_records  # noqa: E402  (scripts/synthetic.py)

logger = logging.getLogger("bench_dask")
THREADS = "1"
EXECUTION = re.compile(r"Pipeline execution completed successfully in ([\d.]+) sec")
LOGGING = """\
version: 1
disable_existing_loggers: false
formatters:
  plain: {format: "%(asctime)s %(levelname)s %(name)s: %(message)s"}
handlers:
  console: {class: logging.StreamHandler, formatter: plain, stream: ext://sys.stdout}
root: {level: INFO, handlers: [console]}
"""


def load_schema() -> dict[str, Any]:
    return yaml.safe_load((PROJECT / "conf" / "base" / "parameters.yml").read_text())["schema"]


def write_sites(path: Path, rows: int, schema: dict[str, Any], seed: int, first_id: int) -> None:
    """``rows`` random sites (url + features within the schema domains), written in blocks."""
    rng = np.random.default_rng(seed)
    block = 250_000
    for start in range(0, rows, block):
        n = min(block, rows - start)
        frame = pd.DataFrame(
            {name: rng.choice(np.asarray(v), size=n) for name, v in schema["features"].items()}
        )
        ids = range(first_id + start, first_id + start + n)
        frame.insert(0, "url", [f"https://site-{i}.example.net/index.html" for i in ids])
        frame.to_csv(path, mode="w" if start == 0 else "a", header=start == 0, index=False)


def write_records(path: Path, rows: int, schema: dict[str, Any], seed: int) -> None:
    """``rows`` labelled synthetic records from the committed profile, written in blocks."""
    profile = json.loads((PROJECT / "conf" / "base" / "synthetic_profile.json").read_text())
    block = 250_000
    with path.open("w", encoding="utf-8") as handle:
        for number, start in enumerate(range(0, rows, block)):
            frame = sample_records(profile, schema, min(block, rows - start), seed + number)
            text = frame_to_csv(frame)
            handle.write(text if number == 0 else text.split("\n", 1)[1])


def fit_model(destination: Path, schema: dict[str, Any]) -> str:
    """A random forest on the committed synthetic sample, pickled as the champion."""
    from sklearn.ensemble import RandomForestClassifier

    from network_security.champion import write_cache
    from network_security.model import PhishingModel

    sample = pd.read_csv(PROJECT / "data" / "01_raw" / "phishing_sample.csv")
    features = list(schema["features"])
    estimator = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
    estimator.fit(sample[features], sample[schema["target"]["name"]])
    destination.parent.mkdir(parents=True, exist_ok=True)
    model = PhishingModel(estimator, features, version="bench-rf-100")
    write_cache(model, destination)  # signed, as the champion path writes it
    return "random forest, 100 trees, fitted on the committed synthetic sample"


def make_project(root: Path) -> Path:
    """A temporary copy of the project to run in (its data folders stay out of the checkout)."""
    project = root / "project"
    project.mkdir()
    shutil.copy(PROJECT / "pyproject.toml", project / "pyproject.toml")
    if (PROJECT / ".telemetry").exists():
        shutil.copy(PROJECT / ".telemetry", project / ".telemetry")
    shutil.copytree(PROJECT / "conf" / "base", project / "conf" / "base")
    (project / "conf" / "local").mkdir()
    template = PROJECT / "conf" / "local" / "credentials.yml.example"
    shutil.copy(template, project / "conf" / "local" / "credentials.yml")  # MONGODB_URI from env
    (project / "src").mkdir()  # kedro wants it; the package itself is installed
    return project


def role(process: psutil.Process, root_pid: int) -> str:
    if process.pid == root_pid:
        return "kedro run"
    command = " ".join(process.cmdline())
    if "resource_tracker" in command:
        return "resource tracker"
    if "spawn_main" in command or "dask" in command:
        return "dask worker"
    return "other"


def high_water_mib(process: psutil.Process) -> float:
    """Peak RSS so far (Linux ``VmHWM``: spikes between samples count), else the current RSS.

    Not ``wait4``'s ``ru_maxrss``, which also counts the forked parent's memory before exec.
    """
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return process.memory_info().rss / 2**20


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``; wall seconds, Kedro's execution seconds, peak RSS per process (MiB)."""
    peaks: dict[int, tuple[str, float]] = {}
    done = threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True)
    reader.start()

    def sample() -> None:
        try:
            parent = psutil.Process(process.pid)
        except psutil.Error:
            return
        while not done.is_set():
            try:
                members = [parent, *parent.children(recursive=True)]
            except psutil.Error:
                members = []
            for member in members:
                try:
                    rss = high_water_mib(member)
                    name = peaks.get(member.pid, (role(member, process.pid), 0.0))[0]
                except psutil.Error:
                    continue
                peaks[member.pid] = (name, max(rss, peaks.get(member.pid, (name, 0.0))[1]))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    returncode = process.wait()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    reader.join()
    text = b"".join(output).decode(errors="replace")
    if returncode != 0:
        sys.stderr.write(text[-5000:])
        raise SystemExit(f"{' '.join(command)} failed with exit code {returncode}")
    match = EXECUTION.search(text)
    by_role: dict[str, list[float]] = {}
    for name, peak in peaks.values():
        by_role.setdefault(name, []).append(round(peak))
    return {
        "seconds": wall,
        "execution": float(match.group(1)) if match else float("nan"),
        "peak_rss_mib": {name: sorted(values, reverse=True) for name, values in by_role.items()},
        "output": text,
    }


def count_parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("part.*.parquet"))


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (about two minutes)")
    parser.add_argument("--rows", type=int, help="rows to score in all (default 10,000,000)")
    parser.add_argument("--files", type=int, default=10, help="CSV files to score (default 10)")
    parser.add_argument("--ingest-rows", type=int, help="rows to ingest (default 1,000,000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = args.rows or (200_000 if args.quick else 10_000_000)
    ingest_rows = args.ingest_rows or (60_000 if args.quick else 1_000_000)
    per_file = rows // args.files
    rows = per_file * args.files

    from network_security.embedded_mongo import EmbeddedMongo

    schema = load_schema()
    root = Path(tempfile.mkdtemp(prefix="bench_dask_"))
    (root / "logging.yml").write_text(LOGGING)
    results: dict[str, Any] = {"rows": rows, "files": args.files, "ingest_rows": ingest_rows}
    try:
        with EmbeddedMongo(root / "mongo") as server:
            env = {
                **os.environ,
                "OMP_NUM_THREADS": THREADS,
                "OPENBLAS_NUM_THREADS": THREADS,
                "MKL_NUM_THREADS": THREADS,
                "KEDRO_DISABLE_TELEMETRY": "1",
                "KEDRO_LOGGING_CONFIG": str(root / "logging.yml"),
                "MONGODB_URI": server.uri,
                "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            }
            project = make_project(root)
            results["model"] = fit_model(project / "data" / "06_models" / "champion.pkl", schema)
            started = time.perf_counter()
            batches = root / "batches"
            batches.mkdir()
            for i in range(args.files):
                write_sites(batches / f"sites-{i:02d}.csv", per_file, schema, i, i * per_file)
            together = root / "sites.csv"
            with together.open("wb") as out:
                for i, path in enumerate(sorted(batches.glob("*.csv"))):
                    with path.open("rb") as handle:
                        if i:
                            handle.readline()
                        shutil.copyfileobj(handle, out)
            records = root / "records.csv"
            write_records(records, ingest_rows, schema, seed=7)
            logger.info(
                "Generated %s rows in %d files (%.0f MB) and %s records in %.0f s in %s",
                f"{rows:,}",
                args.files,
                together.stat().st_size / 2**20,
                f"{ingest_rows:,}",
                time.perf_counter() - started,
                root,
            )
            kedro = [sys.executable, "-m", "kedro", "run", "--pipeline"]

            pandas_out = root / "predictions.csv"
            pandas_run = measure(
                [*kedro, "inference", "--params",
                 f"inference_input_path={together},inference_output_path={pandas_out}"],
                project, env,
            )  # fmt: skip
            with pandas_out.open("rb") as handle:
                scored = sum(1 for _ in handle) - 1
            assert scored == rows, f"the pandas engine wrote {scored} rows, not {rows}"
            logger.info("pandas engine: %.1f s", pandas_run["seconds"])

            dask_out = root / "predictions_parquet"
            dask_run = measure(
                [*kedro, "inference", "--params",
                 f"inference_engine=dask,dask_workers=2,inference_input_path={batches}/*.csv,"
                 f"inference_output_path={dask_out}"],
                project, env,
            )  # fmt: skip
            scored = count_parquet_rows(dask_out)
            assert scored == rows, f"the Dask engine wrote {scored} rows, not {rows}"
            logger.info("Dask engine: %.1f s", dask_run["seconds"])

            ingestion: dict[int, dict[str, Any]] = {}
            for size in (ingest_rows // 3, ingest_rows):
                source = root / f"records-{size}.csv"
                with records.open("rb") as handle, source.open("wb") as out:
                    for _ in range(size + 1):
                        out.write(handle.readline())
                ingestion[size] = measure(
                    [*kedro, "ingestion", "--params",
                     f"raw_data_path={source},mongo_database=bench_{size}"],
                    project, env,
                )  # fmt: skip
                from pymongo import MongoClient

                with MongoClient(server.uri) as client:
                    stored = client[f"bench_{size}"]["phishing_records"].count_documents({})
                assert stored == size, f"ingestion stored {stored} of {size} records"
                logger.info("ingestion of %s rows: %.1f s", f"{size:,}", ingestion[size]["seconds"])

        def summary(run: dict[str, Any], n: int) -> dict[str, Any]:
            return {
                "wall_s": round(run["seconds"], 1),
                "execution_s": round(run["execution"], 1),
                "rows_per_s_end_to_end": round(n / run["seconds"]),
                "rows_per_s_execution": round(n / run["execution"]),
                "peak_rss_mib": run["peak_rss_mib"],
            }

        results["pandas_engine"] = summary(pandas_run, rows)
        results["dask_engine_local_2_workers"] = summary(dask_run, rows)
        results["ingestion"] = {f"{n}": summary(run, n) for n, run in ingestion.items()}
        small, large = (ingestion[n]["peak_rss_mib"]["kedro run"][0] for n in sorted(ingestion))
        results["ratios"] = {
            "dask_vs_pandas_rows_per_s_end_to_end": round(
                pandas_run["seconds"] / dask_run["seconds"], 2
            ),
            "dask_vs_pandas_rows_per_s_execution": round(
                pandas_run["execution"] / dask_run["execution"], 2
            ),
            "ingestion_peak_rss_large_vs_small": round(large / small, 3),
        }
        logger.info("%s", json.dumps(results, indent=2))
    finally:
        if args.keep:
            logger.info("Kept %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
