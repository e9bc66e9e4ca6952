"""Benchmark: latency of ``POST /predict`` over loopback HTTP, 1 row and 1,000 rows.

Starts ``network-security serve`` (uvicorn) on a free loopback port as a child process, sends
``--requests`` sequential requests per case over one keep-alive connection after a warm-up, and
prints p50 / p99 / mean latency per case; stops the server by its handle at the end.

Cases: JSON records (``{"records": [...]}``), and a CSV upload answered as JSON
(``Accept: application/json``) and as the HTML table, each with 1 row and with 1,000 rows of
the real data set (read from its path, never copied). Each case runs twice: with the reasons
per verdict (``scoring.reasons`` of conf/base, on) and without them (a temporary copy of the
project's configuration with ``scoring.reasons.enabled: false``), one server after the other.

Baselines measured in the same run (the machine may be shared and busy; compare ratios):
``GET /health`` over the same connection (the HTTP round trip every request pays), and the
model's own scikit-learn ``predict_proba`` on the same rows in this process (the model call
alone, without HTTP, parsing, checks or verdicts). The server's CPU time per request (all its
threads) is printed too: unlike latency, it hardly depends on what else the machine runs. The
JSON cases are checked against the targets: without reasons, 1 row: p50 <= 5 ms, p99 <= 10 ms;
1,000 rows: p50 <= 30 ms, p99 <= 60 ms; with reasons, 1 row: p50 <= 5 ms; 1,000 rows: p50 <= 250
ms.

Usage::

    python benchmarks/bench_service.py                    # 200 requests per case
    python benchmarks/bench_service.py --quick            # 30 requests, JSON cases only
    python benchmarks/bench_service.py --requests 500 --model data/06_models/champion.pkl

The model: ``--model`` if given, else the production configuration of
conf/base/parameters_training.yml (the soft vote of categorical gradient boosting and extra
trees) fitted on the real data set at ``../shared/data``, saved in a temporary directory. The
server gets an empty temporary MLflow store, so it serves that file (the champion path falls
back to its local copy when the registry has no champion). The server runs with this
process's environment, as ``network-security serve`` does: with ``OMP_NUM_THREADS`` unset, the
compiled predictor uses every CPU (a vote's members in parallel threads for batches of 256 rows
or more); ``OMP_NUM_THREADS=1 python benchmarks/bench_service.py`` measures one thread.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psutil
import yaml

PROJECT = Path(__file__).resolve().parents[1]
REAL_DATA = PROJECT.parent / "shared" / "data" / "phishing_websites.csv"

logger = logging.getLogger("bench_service")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_estimator(features: list[str]) -> Any:
    """The unfitted model of the production configuration (conf/base/parameters_training.yml):
    its first ensemble (the soft vote), else its first candidate, each member with the first
    configuration of its search grid (one configuration each, as configured)."""
    from sklearn.model_selection import ParameterGrid

    from network_security.pipelines.training.search import build_selected_model

    conf = yaml.safe_load((PROJECT / "conf/base/parameters_training.yml").read_text())
    training = conf["training"]

    def first(name: str) -> dict[str, Any]:
        return ParameterGrid(dict(training["candidates"][name].get("search") or {}))[0]

    ensembles = training.get("ensembles") or {}
    if ensembles:
        name, spec = next(iter(ensembles.items()))
        params: dict[str, Any] = {member: first(member) for member in spec["members"]}
    else:
        name = next(iter(training["candidates"]))
        params = first(name)
    return build_selected_model({"candidate": name, "params": params}, training, features)


def fit_model(data: pd.DataFrame, schema: dict, path: Path) -> None:
    """The production configuration fitted on the real data set, pickled like training does."""
    from network_security.champion import write_cache
    from network_security.model import PhishingModel

    features = list(schema["features"])
    target = schema["target"]["name"]
    estimator = production_estimator(features)
    estimator.fit(data[features], data[target])
    model = PhishingModel(
        estimator=estimator,
        feature_columns=features,
        version="bench-production-configuration",
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    if model.compiled is None:
        logger.warning("The model has no compiled predictor: predict_proba serves it")
    write_cache(model, path)  # signed, as the champion path writes it


def project_without_reasons(root: Path) -> Path:
    """A copy of the project's configuration with ``scoring.reasons.enabled: false``."""
    import shutil

    project = root / "project-without-reasons"
    (project / "src").mkdir(parents=True)
    shutil.copy(PROJECT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(PROJECT / "conf" / "base", project / "conf" / "base")
    (project / "conf" / "local").mkdir()
    shutil.copy(PROJECT / "conf/local/credentials.yml.example", project / "conf/local")
    inference = project / "conf" / "base" / "parameters_inference.yml"
    params = yaml.safe_load(inference.read_text())
    params["scoring"]["reasons"] = {**params["scoring"].get("reasons", {}), "enabled": False}
    inference.write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def start_server(
    model_path: Path, log_path: Path, project: Path = PROJECT
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETWORK_SECURITY_")}
    env.update(
        {
            "NETWORK_SECURITY_PROJECT_PATH": str(project),
            "NETWORK_SECURITY_MODEL_PATH": str(model_path),
            "MLFLOW_TRACKING_URI": f"sqlite:///{log_path.parent / 'mlflow.db'}",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(PROJECT / "src"), env.get("PYTHONPATH")) if p
            ),
        }
    )
    command = [
        sys.executable, "-m", "network_security", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    log = log_path.open("wb")
    process = subprocess.Popen(  # noqa: S603 - fixed command
        command, env=env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited on start; see {log_path}")
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("model_loaded"):
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the service did not start within 60 s; see {log_path}")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads, in seconds."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def check_reasons(response: httpx.Response, expected: bool) -> None:
    """A JSON answer carries the reasons exactly when they are measured."""
    if not response.headers["content-type"].startswith("application/json"):
        return
    present = "reasons" in response.json()["predictions"][0]
    if present != expected:
        raise RuntimeError(f"reasons in the answer: {present}, expected {expected}")


def measure(client: httpx.Client, send, expected_rows: int, requests: int, warmup: int) -> list:
    """Latencies in milliseconds of ``requests`` calls of ``send`` (after ``warmup`` calls)."""
    latencies = []
    for i in range(warmup + requests):
        started = time.perf_counter()
        response = send(client)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        is_json = response.headers["content-type"].startswith("application/json")
        if i == 0 and expected_rows and is_json:
            assert len(response.json()["predictions"]) == expected_rows
        if i >= warmup:
            latencies.append(elapsed)
    return latencies


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


TARGETS = {
    "without reasons": {1: (5.0, 10.0), 1000: (30.0, 60.0)},
    "with reasons": {1: (5.0, float("inf")), 1000: (250.0, float("inf"))},
}
"""Reasons -> rows -> (p50, p99) targets in milliseconds for the JSON records case."""


def sklearn_baseline(model_path: Path, sample: pd.DataFrame, repeats: int) -> list[float]:
    """Latencies (ms) of the model's own ``predict_proba`` on ``sample``, in this process."""
    import pickle

    with model_path.open("rb") as handle:
        model = pickle.load(handle)  # noqa: S301 - the benchmark's own model file
    estimator, features = model.estimator, list(model.feature_columns)
    latencies = []
    for i in range(repeats + 3):
        started = time.perf_counter()
        estimator.predict_proba(sample[features])
        if i >= 3:
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per case")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests per case")
    parser.add_argument("--model", type=Path, help="a pickled PhishingModel (default: see doc)")
    parser.add_argument("--data", type=Path, default=REAL_DATA, help="the real data set")
    parser.add_argument(
        "--quick", action="store_true", help="30 requests per case, the JSON cases only"
    )
    options = parser.parse_args()
    if options.quick:
        options.requests, options.warmup = min(options.requests, 30), min(options.warmup, 5)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    sys.path.insert(0, str(PROJECT / "src"))
    schema = yaml.safe_load((PROJECT / "conf/base/parameters.yml").read_text())["schema"]
    features = list(schema["features"])
    data = pd.read_csv(options.data)
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        tmp_path = Path(tmp)
        model_path = options.model
        if model_path is None:
            model_path = tmp_path / "champion.pkl"
            logger.info("Fitting the production configuration on %s", options.data)
            fit_model(data, schema, model_path)
        projects = {"with reasons": PROJECT, "without reasons": project_without_reasons(tmp_path)}
        results, baselines = [], {}
        for mode, project in projects.items():
            log = tmp_path / f"service-{mode.replace(' ', '-')}.log"
            process, url = start_server(model_path, log, project)
            try:
                with httpx.Client(base_url=url, timeout=60) as client:
                    info = client.get("/model").json()
                    logger.info("Server %s, model %s (%s)", url, info["version"], info["estimator"])
                    before = cpu_seconds(process.pid)
                    health = measure(
                        client, lambda c: c.get("/health"), 0, options.requests, options.warmup
                    )
                    health_cpu = (cpu_seconds(process.pid) - before) / (
                        options.requests + options.warmup
                    )
                    for rows in (1, 1000):
                        sample = data.sample(rows, random_state=rows)[features]
                        if rows not in baselines:
                            baselines[rows] = sklearn_baseline(model_path, sample, options.requests)
                        records = json.loads(sample.to_json(orient="records"))
                        body = json.dumps({"records": records}).encode()
                        # JSON records carry reasons only when asked
                        path = "/predict?reasons=true" if mode == "with reasons" else "/predict"
                        csv = sample.to_csv(index=False).encode()
                        cases = {
                            "JSON records -> JSON": lambda c, b=body, p=path: c.post(
                                p, content=b, headers={"Content-Type": "application/json"}
                            ),
                            "CSV upload -> JSON": lambda c, f=csv: c.post(
                                "/predict",
                                files={"file": ("batch.csv", f, "text/csv")},
                                headers={"Accept": "application/json"},
                            ),
                            "CSV upload -> HTML": lambda c, f=csv: c.post(
                                "/predict", files={"file": ("batch.csv", f, "text/csv")}
                            ),
                        }
                        if options.quick:
                            cases = {"JSON records -> JSON": cases["JSON records -> JSON"]}
                        for name, send in cases.items():
                            logger.info("%s, %d row(s): %d requests", name, rows, options.requests)
                            measure(client, send, rows, 0, options.warmup)
                            check_reasons(send(client), mode == "with reasons")
                            before = cpu_seconds(process.pid)
                            latencies = measure(client, send, rows, options.requests, 0)
                            cpu = (cpu_seconds(process.pid) - before) / options.requests * 1000
                            results.append((name, mode, rows, latencies, cpu))
            finally:
                stop_server(process)

    p50 = {"health": percentile(health, 50)}
    print(f"\nPOST /predict latency over loopback, {options.requests} sequential requests per "
          f"case after {options.warmup} warm-up; model {info['version']} ({info['estimator']}); "
          f"{os.cpu_count()} CPU(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(
        f"baseline GET /health: p50 {p50['health']:.2f} ms, p99 {percentile(health, 99):.2f} ms, "
        f"server CPU {health_cpu * 1000:.2f} ms; "
        + "; ".join(
            f"scikit-learn predict_proba in-process, {rows} row(s): p50 "
            f"{percentile(values, 50):.2f} ms, p99 {percentile(values, 99):.2f} ms"
            for rows, values in baselines.items()
        )
    )
    print(
        f"{'case':<22} {'reasons':<16} {'rows':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
        f"{'rows/s':>9} "
        f"{'p50/health':>11} {'p50/sklearn':>12} {'server CPU ms':>14}"
    )
    verdicts = []
    p50_of = {}
    for name, mode, rows, latencies, cpu in results:
        mean = statistics.fmean(latencies)
        median, p99 = percentile(latencies, 50), percentile(latencies, 99)
        sklearn_p50 = percentile(baselines[rows], 50)
        print(
            f"{name:<22} {mode:<16} {rows:>5} {median:>8.2f} {p99:>8.2f} {mean:>8.2f} "
            f"{rows / mean * 1000:>9.0f} {median / p50['health']:>10.1f}x "
            f"{median / sklearn_p50:>11.2f}x {cpu:>14.2f}"
        )
        p50_of[name, mode, rows] = median
        if name.startswith("JSON") and rows in TARGETS[mode]:
            target_p50, target_p99 = TARGETS[mode][rows]
            ok = median <= target_p50 and p99 <= target_p99
            bound = f" and p99 {p99:.1f} <= {target_p99:g} ms" if target_p99 < float("inf") else ""
            verdicts.append(
                f"target JSON {rows} row(s) {mode}: p50 {median:.1f} <= {target_p50:g} ms{bound}: "
                f"{'met' if ok else 'NOT met'}"
            )
    for (name, mode, rows), median in p50_of.items():
        if mode == "with reasons" and (name, "without reasons", rows) in p50_of:
            print(
                f"reasons cost {name}, {rows} row(s): p50 with/without "
                f"{median / p50_of[name, 'without reasons', rows]:.2f}x"
            )
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
