"""Ingestion throughput on the real data set versus a bare ``insert_many`` (not a test).

Usage::

    python benchmarks/bench_ingestion.py --repeat 5      # the real data set, best of 5
    python benchmarks/bench_ingestion.py --quick         # a quick check: 1,000 rows, once
    python benchmarks/bench_ingestion.py --data FILE.csv --rows 5000

Starts one SecantusDB server on a free port with a temporary data directory and, in the same
run, times (a) the ingestion pipeline (chunked CSV dataset -> type_records -> add_record_keys ->
MongoDataset with its idempotent insert, the catalog's batch size and write concern) into a
fresh database, and (b) a bare ``insert_many`` of
the same rows (already parsed, no key) into another fresh database. Prints documents/s for both,
best of ``--repeat`` runs, and their ratio.

The data: ``--data``, else the real data set beside the checkout
(``../shared/data/phishing_websites.csv``); with ``--quick`` and no real data set there, the
committed synthetic sample (``data/01_raw/phishing_sample.csv``), so it runs on a fresh clone.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from pymongo import MongoClient

from network_security.datasets import MongoDataset
from network_security.datasets.chunked_csv import ChunkedCSVDataset
from network_security.embedded_mongo import EmbeddedMongo
from network_security.pipelines.ingestion import create_pipeline

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "phishing_websites.csv"
SAMPLE = ROOT / "data" / "01_raw" / "phishing_sample.csv"
QUICK_ROWS = 1_000


def time_pipeline(data: Path, uri: str, database: str, schema: dict) -> float:
    config = yaml.safe_load((ROOT / "conf/base/catalog.yml").read_text())
    csv, records = config["raw_phishing_csv"], config["phishing_records"]
    catalog = DataCatalog(
        {  # the catalog's own settings: chunks, insert batches, write concern
            "raw_phishing_csv": ChunkedCSVDataset(
                filepath=str(data),
                chunksize=5_000,
                block_size=csv["block_size"],
                load_args=csv["load_args"],
            ),
            "phishing_records": MongoDataset(
                collection="phishing_records",
                database=database,
                credentials={"uri": uri},
                batch_size=records["batch_size"],
                write_concern=records["write_concern"],
            ),
            "params:schema": MemoryDataset(schema),
            "params:raw_data_path": MemoryDataset(str(data)),
        }
    )
    started = time.perf_counter()
    SequentialRunner().run(create_pipeline(), catalog)
    return time.perf_counter() - started


def time_bare_insert(data: Path, uri: str, database: str) -> float:
    documents = pd.read_csv(data).to_dict(orient="records")
    with MongoClient(uri) as client:
        started = time.perf_counter()
        client[database]["bare"].insert_many(documents)
        return time.perf_counter() - started


def choose_data(data: Path | None, quick: bool) -> Path:
    """The CSV to ingest; exits with a message saying what to pass when there is none."""
    if data is not None:
        if not data.is_file():
            sys.exit(f"No CSV at {data}: pass --data with the path of a CSV to ingest.")
        return data
    if REAL_DATA.is_file():
        return REAL_DATA
    if quick:
        return SAMPLE
    sys.exit(
        f"The real data set is not at {REAL_DATA}: pass --data PATH, or --quick to check the "
        f"script on the committed synthetic sample ({SAMPLE.relative_to(ROOT)})."
    )


def first_rows(data: Path, rows: int | None, folder: Path) -> Path:
    """``data``, or a copy of its header and first ``rows`` rows in ``folder``."""
    if rows is None:
        return data
    with data.open() as source:
        lines = [line for _, line in zip(range(rows + 1), source, strict=False)]
    subset = folder / f"first_{rows}_rows.csv"
    subset.write_text("".join(lines))
    return subset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=None, help=f"CSV to ingest (default: {REAL_DATA})"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path (best of)")
    parser.add_argument("--rows", type=int, default=None, help="only the first ROWS rows")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a quick check: {QUICK_ROWS:,} rows, one run (the committed synthetic sample "
        "when the real data set is not there)",
    )
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.rows = 1, args.rows or QUICK_ROWS
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kedro").setLevel(logging.WARNING)  # no runner chatter between figures
    schema = yaml.safe_load((ROOT / "conf/base/parameters.yml").read_text())["schema"]
    source = choose_data(args.data, args.quick)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedMongo(Path(tmp) / "db") as server:
        data = first_rows(source, args.rows, Path(tmp))
        rows = sum(1 for _ in data.open()) - 1
        pipeline_s, bare_s = [], []
        for i in range(args.repeat):  # interleaved, so both see the same machine load
            pipeline_s.append(time_pipeline(data, server.uri, f"bench_pipe_{i}", schema))
            bare_s.append(time_bare_insert(data, server.uri, f"bench_bare_{i}"))
        with MongoClient(server.uri) as client:
            stored = client["bench_pipe_0"]["phishing_records"].count_documents({})
    pipeline_rate, bare_rate = rows / min(pipeline_s), rows / min(bare_s)
    print(f"data:                         {source}")
    print(f"rows in file:                 {rows}")
    print(f"documents stored by pipeline: {stored}")
    print(
        f"ingestion pipeline:           {pipeline_rate:10,.0f} documents/s (best of {args.repeat})"
    )
    print(f"bare insert_many:             {bare_rate:10,.0f} documents/s (best of {args.repeat})")
    print(f"ratio pipeline / bare:        {pipeline_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
