"""Benchmark: streaming inference on a large CSV, against bare pandas + scikit-learn.

Generates a CSV of new sites (default 1,000,000 rows: feature vectors drawn uniformly within the
schema's allowed values, plus a ``url`` column) in a temporary directory, then measures, each in a
subprocess of its own:

1. the pipeline path: ``kedro run --pipeline inference`` in a temporary copy of the project
   (pyproject.toml, conf/base, conf/local as a fresh clone has it) with the champion model and
   an MLflow store (created beforehand, as training leaves it), reading and writing in chunks;
2. the bare path: ``pandas.read_csv`` of the whole file, ``predict_proba`` of the same model,
   ``to_csv`` of the input plus the probability;
3. the pipeline path again with the reasons per verdict (``scoring.reasons``, on in
   conf/base); path 1 runs with ``scoring.reasons.enabled=false``, as the bare path has none.

For each: wall time and rows/s end to end (interpreter, imports and, for Kedro, the session
start-up included), the time of the work itself (Kedro's own "pipeline execution" time; for the
bare path, from loading the model to the written file), and peak RSS (the largest process, from
``wait4``; the pipeline path also reports the sampled peak of its whole process tree, which
includes the embedded database a run starts when ``MONGODB_URI`` is unset).

The targets: the pipeline end to end at least 0.9x the rows/s of the bare path, with a peak RSS
of at most 1 GB; with reasons, at least 0.3x the rows/s of the pipeline without them; all are
checked at the end (they are meant for 1,000,000 rows: on a small file the fixed start-up of
``kedro run`` dominates).

Usage::

    python benchmarks/bench_inference.py                      # 1,000,000 rows
    python benchmarks/bench_inference.py --quick              # 20,000 rows, a quick check
    python benchmarks/bench_inference.py --rows 200000 --chunksize 50000
    python benchmarks/bench_inference.py --model data/06_models/champion.pkl --repeat 3

The model: ``--model`` if given, else the project's ``data/06_models/champion.pkl`` if it exists,
else a random forest (100 trees) fitted on the real data set at ``../shared/data``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import yaml

PROJECT = Path(__file__).resolve().parents[1]
REAL_DATA = PROJECT.parent / "shared" / "data" / "phishing_websites.csv"
THREADS = "2"

logger = logging.getLogger("bench_inference")


def load_schema() -> dict[str, Any]:
    return yaml.safe_load((PROJECT / "conf" / "base" / "parameters.yml").read_text())["schema"]


def generate_csv(path: Path, rows: int, schema: dict[str, Any], seed: int) -> None:
    """Write ``rows`` random sites (url + features within the schema domains), in blocks."""
    rng = np.random.default_rng(seed)
    block = 200_000
    for start in range(0, rows, block):
        n = min(block, rows - start)
        frame = pd.DataFrame(
            {
                name: rng.choice(np.asarray(values), size=n)
                for name, values in schema["features"].items()
            }
        )
        frame.insert(
            0, "url", [f"https://site-{i}.example.net/index.html" for i in range(start, start + n)]
        )
        frame.to_csv(path, mode="w" if start == 0 else "a", header=start == 0, index=False)


def obtain_model(model_path: Path | None, destination: Path, schema: dict[str, Any]) -> str:
    """Put the model to benchmark at ``destination``; return a description of it."""
    from network_security.champion import write_cache

    if model_path is None and (PROJECT / "data" / "06_models" / "champion.pkl").exists():
        model_path = PROJECT / "data" / "06_models" / "champion.pkl"
    destination.parent.mkdir(parents=True, exist_ok=True)
    if model_path is not None:
        write_cache(model_path.read_bytes(), destination)  # signed copy of the given model
        with destination.open("rb") as handle:
            model = pickle.load(handle)
        return f"{model_path} (version {model.version}, {type(model.estimator).__name__})"
    if not REAL_DATA.exists():
        raise SystemExit(f"No champion model and no real data set at {REAL_DATA}: pass --model.")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    from network_security.model import PhishingModel

    records = pd.read_csv(REAL_DATA)
    features = list(schema["features"])
    estimator = Pipeline(
        [("classifier", RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1))]
    ).fit(records[features], records[schema["target"]["name"]])
    model = PhishingModel(estimator, features, version="bench-rf-100")
    write_cache(model, destination)  # signed, as the champion path writes it
    return "random forest, 100 trees, fitted on the real data set (no champion.pkl found)"


def make_project(root: Path) -> Path:
    """A temporary copy of the project to run in (its data folders stay out of the checkout)."""
    project = root / "project"
    project.mkdir()
    shutil.copy(PROJECT / "pyproject.toml", project / "pyproject.toml")
    if (PROJECT / ".telemetry").exists():
        shutil.copy(PROJECT / ".telemetry", project / ".telemetry")
    shutil.copytree(PROJECT / "conf" / "base", project / "conf" / "base")
    # conf/local as a fresh clone has it: the credentials template (the run creates
    # credentials.yml from it, so the catalog resolves `mongo_credentials`)
    shutil.copytree(PROJECT / "conf" / "local", project / "conf" / "local")
    (project / "conf" / "local" / "credentials.yml").unlink(missing_ok=True)
    (project / "src").mkdir()  # kedro wants it; the package itself is installed (pip install -e .)
    return project


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``; return wall seconds, peak RSS (largest process, process tree), output."""
    tree_peak = 0
    done = threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True)
    reader.start()

    def sample() -> None:
        nonlocal tree_peak
        try:
            parent = psutil.Process(process.pid)
            while not done.is_set():
                try:
                    members = [parent, *parent.children(recursive=True)]
                    total = sum(m.memory_info().rss for m in members if m.is_running())
                except psutil.Error:
                    total = 0
                tree_peak = max(tree_peak, total)
                time.sleep(0.05)
        except psutil.Error:
            return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)  # rusage of this child (and its descendants)
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    text = b"".join(output).decode(errors="replace")
    if process.returncode != 0:
        sys.stderr.write(text[-5000:])
        raise SystemExit(f"{' '.join(command)} failed with exit code {process.returncode}")
    return {
        "seconds": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "tree_peak_rss_mb": tree_peak / 2**20,
        "output": text,
    }


BARE = textwrap.dedent(
    """
    import pickle, sys, time
    import pandas as pd
    source, target, model_path = sys.argv[1:4]
    started = time.perf_counter()  # like Kedro's execution time: from loading the model on
    with open(model_path, "rb") as handle:
        model = pickle.load(handle)
    frame = pd.read_csv(source)
    column = list(model.estimator.classes_).index(model.phishing_label)
    features = frame[model.feature_columns]
    frame["phishing_probability"] = model.estimator.predict_proba(features)[:, column]
    frame.to_csv(target, index=False)
    print(f"work seconds: {time.perf_counter() - started:.3f}")
    """
)

INIT_MLFLOW = "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()"

# Plain log lines for the kedro run, so the runner's own timing can be read from its output.
LOGGING = """\
version: 1
disable_existing_loggers: false
formatters:
  plain: {format: "%(asctime)s %(levelname)s %(name)s: %(message)s"}
handlers:
  console: {class: logging.StreamHandler, formatter: plain, stream: ext://sys.stdout}
root: {level: INFO, handlers: [console]}
"""
EXECUTION = re.compile(r"Pipeline execution completed successfully in ([\d.]+) sec")
WORK = re.compile(r"work seconds: ([\d.]+)")


def seconds_in(output: str, pattern: re.Pattern[str]) -> float:
    match = pattern.search(output)
    if not match:
        raise SystemExit(f"Could not find {pattern.pattern!r} in the output:\n{output[-3000:]}")
    return float(match.group(1))


def check_written(path: Path, rows: int, reasons: bool) -> None:
    """The pipeline wrote ``rows`` rows, with a ``reasons`` column exactly when ``reasons``."""
    with path.open() as handle:
        header = [name.strip('"') for name in handle.readline().rstrip("\n").split(",")]
        scored = sum(1 for _ in handle)
    if scored != rows:
        raise SystemExit(f"The pipeline wrote {scored} rows, not {rows}.")
    if ("reasons" in header) != reasons:
        raise SystemExit(f"The pipeline's reasons column: expected {reasons}, header {header}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 rows (unless --rows)")
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--model", type=Path, default=None, help="a pickled PhishingModel")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path (medians)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.quick and "--rows" not in sys.argv:
        args.rows = 20_000
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    schema = load_schema()
    root = Path(tempfile.mkdtemp(prefix="bench_inference_"))
    (root / "logging.yml").write_text(LOGGING)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": THREADS,
        "OPENBLAS_NUM_THREADS": THREADS,
        "MKL_NUM_THREADS": THREADS,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "KEDRO_LOGGING_CONFIG": str(root / "logging.yml"),
        "MLFLOW_TRACKING_URI": os.environ.get(
            "MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}"
        ),
    }
    try:
        project = make_project(root)
        # The MLflow store as a project has it once training has run (the champion comes from
        # training): created before the measured runs. A new store costs its first run about
        # 9 s of table creation, which is not scoring.
        subprocess.run(  # noqa: S603 - fixed command
            [sys.executable, "-c", INIT_MLFLOW, env["MLFLOW_TRACKING_URI"]], env=env, check=True
        )
        model_path = project / "data" / "06_models" / "champion.pkl"
        description = obtain_model(args.model, model_path, schema)
        source = root / "sites.csv"
        started = time.perf_counter()
        generate_csv(source, args.rows, schema, args.seed)
        logger.info(
            "Generated %s rows (%.0f MB) in %.1f s in %s",
            f"{args.rows:,}",
            source.stat().st_size / 2**20,
            time.perf_counter() - started,
            root,
        )
        params = (
            f"inference_input_path={source},inference_output_path={root / 'predictions.csv'},"
            f"inference_chunksize={args.chunksize}"
        )
        kedro = [sys.executable, "-m", "kedro", "run", "--pipeline", "inference"]
        bare_command = [sys.executable, "-c", BARE, str(source), str(root / "bare.csv")]
        rows = args.rows
        runs: list[dict[str, float]] = []
        for repeat in range(1, args.repeat + 1):  # alternate, so load changes hit both paths
            without = f"{params},scoring.reasons.enabled=false"
            pipeline = measure([*kedro, "--params", without], project, env)
            check_written(root / "predictions.csv", rows, reasons=False)
            bare = measure([*bare_command, str(model_path)], root, env)
            explained = measure([*kedro, "--params", params], project, env)
            check_written(root / "predictions.csv", rows, reasons=True)
            run = {
                "pipeline_wall": pipeline["seconds"],
                "pipeline_work": seconds_in(pipeline["output"], EXECUTION),
                "pipeline_rss": pipeline["peak_rss_mb"],
                "pipeline_tree_rss": pipeline["tree_peak_rss_mb"],
                "bare_wall": bare["seconds"],
                "bare_work": seconds_in(bare["output"], WORK),
                "bare_rss": bare["peak_rss_mb"],
                "reasons_wall": explained["seconds"],
                "reasons_work": seconds_in(explained["output"], EXECUTION),
                "reasons_rss": explained["peak_rss_mb"],
            }
            runs.append(run)
            logger.info(
                "run %d: pipeline %.1f s wall, %.1f s execution, %.0f MB | bare %.1f s wall, "
                "%.1f s work, %.0f MB | with reasons %.1f s wall, %.1f s execution, %.0f MB",
                repeat,
                run["pipeline_wall"],
                run["pipeline_work"],
                run["pipeline_rss"],
                run["bare_wall"],
                run["bare_work"],
                run["bare_rss"],
                run["reasons_wall"],
                run["reasons_work"],
                run["reasons_rss"],
            )

        m = {key: float(np.median([run[key] for run in runs])) for key in runs[0]}
        peak = {key: max(run[key] for run in runs) for key in runs[0] if key.endswith("rss")}
        report = [
            f"rows: {rows:,}   chunksize: {args.chunksize:,}   runs: {len(runs)} (median times, "
            f"max RSS)   model: {description}",
            f"pipeline  kedro run --pipeline inference: {m['pipeline_wall']:.1f} s wall = "
            f"{rows / m['pipeline_wall']:,.0f} rows/s end to end; Kedro's pipeline execution "
            f"{m['pipeline_work']:.1f} s = {rows / m['pipeline_work']:,.0f} rows/s; peak RSS "
            f"{peak['pipeline_rss']:.0f} MB (kedro process), {peak['pipeline_tree_rss']:.0f} MB "
            "(process tree incl. the embedded DB, sampled)",
            f"bare      read_csv + predict_proba + to_csv: {m['bare_wall']:.1f} s wall = "
            f"{rows / m['bare_wall']:,.0f} rows/s end to end; work {m['bare_work']:.1f} s = "
            f"{rows / m['bare_work']:,.0f} rows/s; peak RSS {peak['bare_rss']:.0f} MB",
            f"ratio     pipeline/bare rows/s: {m['bare_wall'] / m['pipeline_wall']:.2f} end to "
            f"end, {m['bare_work'] / m['pipeline_work']:.2f} work only; peak RSS pipeline/bare "
            f"{peak['pipeline_rss'] / peak['bare_rss']:.2f}",
        ]
        ratio = m["bare_wall"] / m["pipeline_wall"]
        report.append(
            f"target    end to end >= 0.90x the bare path: {ratio:.2f}x "
            f"{'met' if ratio >= 0.9 else 'NOT met'}; peak RSS <= 1 GB: "
            f"{peak['pipeline_rss']:.0f} MB {'met' if peak['pipeline_rss'] <= 1024 else 'NOT met'}"
            f" (load average {os.getloadavg()[0]:.1f})"
        )
        with_reasons = m["pipeline_wall"] / m["reasons_wall"]
        report += [
            f"reasons   with reasons (top 3): {m['reasons_wall']:.1f} s wall = "
            f"{rows / m['reasons_wall']:,.0f} rows/s end to end; execution "
            f"{m['reasons_work']:.1f} s = {rows / m['reasons_work']:,.0f} rows/s; peak RSS "
            f"{peak['reasons_rss']:.0f} MB; with/without rows/s {with_reasons:.2f}x end to end, "
            f"{m['pipeline_work'] / m['reasons_work']:.2f}x execution",
            f"target    with reasons >= 0.30x the rows/s without: {with_reasons:.2f}x "
            f"{'met' if with_reasons >= 0.3 else 'NOT met'}",
        ]
        for line in report:
            logger.info(line)
    finally:
        if args.keep:
            logger.info("Kept %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
