"""Load benchmark: many concurrent clients on ``POST /predict``, a mix of request kinds.

Starts ``network-security serve`` (uvicorn, one worker) on a free loopback port, then for
``--duration`` seconds ``--clients`` concurrent clients (each its own keep-alive connection)
send, in turn, the three kinds of request:

- ``json-1``: JSON records, 1 row;
- ``json-1000``: JSON records, 1,000 rows;
- ``csv-1000``: a CSV upload of 1,000 rows, answered as JSON.

Every answer is checked (HTTP 200 and one prediction per row); anything else counts as an error.
It prints, per kind, the number of requests, p50 / p99 / max latency, and the requests/s and
rows/s of the whole run. The baseline, measured in the same run on the same server: one client
sending the same mix for ``--baseline-duration`` seconds. The server's peak RSS is sampled.
Exits with status 1 if any request failed. The server is stopped by its handle at the end.

Usage::

    python benchmarks/bench_load.py             # 20 clients for 30 s (+ 10 s baseline)
    python benchmarks/bench_load.py --quick     # 20 clients for 5 s (+ 3 s baseline)
    python benchmarks/bench_load.py --clients 20 --duration 20

The model and the rows come as in ``bench_service.py``: ``--model``, else the production
configuration fitted on the real data set at ``../shared/data`` (read, never copied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import PROJECT, REAL_DATA, fit_model, start_server, stop_server  # noqa: E402

logger = logging.getLogger("bench_load")
ROWS = {"json-1": 1, "json-1000": 1000, "csv-1000": 1000}


@dataclass
class Results:
    """Latencies (ms) per kind, and the errors seen."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    @property
    def rows(self) -> int:
        return sum(ROWS[kind] * len(values) for kind, values in self.latencies.items())


def build_requests(data: pd.DataFrame, features: list[str]) -> dict[str, dict]:
    """The keyword arguments of ``client.post("/predict", ...)`` for each kind."""
    requests = {}
    for kind, rows in ROWS.items():
        sample = data.sample(rows, random_state=rows)[features].copy()
        sample.insert(0, "url", [f"https://site-{i}.example/" for i in range(rows)])
        if kind.startswith("json"):
            records = json.loads(sample.to_json(orient="records"))
            requests[kind] = {
                "content": json.dumps({"records": records}).encode(),
                "headers": {"Content-Type": "application/json"},
            }
        else:
            requests[kind] = {
                "files": {"file": ("sites.csv", sample.to_csv(index=False).encode(), "text/csv")},
                "headers": {"Accept": "application/json"},
            }
    return requests


async def client_loop(
    number: int, url: str, requests: dict[str, dict], deadline: float, results: Results
) -> None:
    """One client: the kinds in turn (each client starts at another), until the deadline."""
    kinds = list(ROWS)
    turn = number
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.monotonic() < deadline:
            kind = kinds[turn % len(kinds)]
            turn += 1
            started = time.perf_counter()
            try:
                response = await client.post("/predict", **requests[kind])
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    results.errors.append(
                        f"{kind}: HTTP {response.status_code} {response.text[:200]}"
                    )
                    continue
                answered = len(response.json()["predictions"])
                if answered != ROWS[kind]:
                    results.errors.append(f"{kind}: {answered} predictions for {ROWS[kind]} rows")
                    continue
            except (httpx.HTTPError, ValueError, KeyError) as error:
                results.errors.append(f"{kind}: {type(error).__name__}: {error}")
                continue
            results.latencies[kind].append(elapsed)


async def run_load(url: str, requests: dict[str, dict], clients: int, duration: float) -> Results:
    results = Results()
    started = time.monotonic()
    deadline = started + duration
    await asyncio.gather(
        *(client_loop(n, url, requests, deadline, results) for n in range(clients))
    )
    results.elapsed = time.monotonic() - started
    return results


class PeakRSS:
    """Samples a process's resident set size in a thread; ``peak`` in bytes."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def report(name: str, results: Results, clients: int) -> None:
    print(
        f"\n{name}: {clients} client(s), {results.elapsed:.1f} s, {results.requests} requests, "
        f"{len(results.errors)} error(s)"
    )
    print(f"{'kind':<10} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind in ROWS:
        values = np.asarray(results.latencies.get(kind, [float("nan")]))
        print(
            f"{kind:<10} {len(results.latencies.get(kind, [])):>9} "
            f"{np.percentile(values, 50):>8.1f} {np.percentile(values, 99):>8.1f} "
            f"{values.max():>8.1f}"
        )
    print(
        f"throughput: {results.requests / results.elapsed:.1f} requests/s, "
        f"{results.rows / results.elapsed:,.0f} rows/s"
    )
    for error in results.errors[:10]:
        print(f"  error: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (20)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (30)")
    parser.add_argument(
        "--baseline-duration", type=float, default=10.0, help="seconds of one client (10)"
    )
    parser.add_argument("--quick", action="store_true", help="5 s of load, 3 s of baseline")
    parser.add_argument("--model", type=Path, help="a pickled PhishingModel")
    parser.add_argument("--data", type=Path, default=REAL_DATA, help="the real data set")
    options = parser.parse_args()
    if options.quick:
        options.duration, options.baseline_duration = 5.0, 3.0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    sys.path.insert(0, str(PROJECT / "src"))
    schema = yaml.safe_load((PROJECT / "conf/base/parameters.yml").read_text())["schema"]
    features = list(schema["features"])
    data = pd.read_csv(options.data)
    requests = build_requests(data, features)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        tmp_path = Path(tmp)
        model_path = options.model
        if model_path is None:
            model_path = tmp_path / "champion.pkl"
            logger.info("Fitting the production configuration on %s", options.data)
            fit_model(data, schema, model_path)
        process, url = start_server(model_path, tmp_path / "service.log")
        try:
            info = httpx.get(f"{url}/model", timeout=30).json()
            idle_rss = psutil.Process(process.pid).memory_info().rss
            logger.info("Server %s, model %s (%s)", url, info["version"], info["estimator"])
            asyncio.run(run_load(url, requests, 1, 1.0))  # warm-up, not measured
            logger.info("Baseline: 1 client for %.0f s", options.baseline_duration)
            baseline = asyncio.run(run_load(url, requests, 1, options.baseline_duration))
            logger.info("Load: %d clients for %.0f s", options.clients, options.duration)
            with PeakRSS(process.pid) as rss:
                load = asyncio.run(run_load(url, requests, options.clients, options.duration))
        finally:
            stop_server(process)

    print(
        f"\nPOST /predict under load over loopback; model {info['version']} "
        f"({info['estimator']}); one uvicorn worker; {os.cpu_count()} CPU(s) shared with the "
        "clients"
    )
    report("baseline (same mix, one client)", baseline, 1)
    report("load", load, options.clients)
    ratio = (load.requests / load.elapsed) / (baseline.requests / baseline.elapsed)
    print(f"\nthroughput, load vs baseline: {ratio:.2f}x")
    for kind in ROWS:
        if baseline.latencies.get(kind) and load.latencies.get(kind):
            p50 = np.percentile(load.latencies[kind], 50) / np.percentile(
                baseline.latencies[kind], 50
            )
            print(f"p50 latency of {kind}, load vs baseline: {p50:.1f}x")
    print(
        f"server RSS: {idle_rss / 2**20:.0f} MiB idle, peak {rss.peak / 2**20:.0f} MiB under load"
    )
    failed = baseline.errors + load.errors
    if failed:
        print(f"\nFAILED: {len(failed)} request(s) did not get a correct answer")
        return 1
    print("\nno error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
