"""Ingestion throughput on the real data set versus a bare ``insert_many`` (not a test).

Usage: python benchmarks/bench_ingestion.py [--data PATH_TO_CSV] [--repeat 3]

Starts one SecantusDB server on a free port with a temporary data directory and, in the same
run, times (a) the ingestion pipeline (CSV dataset -> type_records -> add_record_keys ->
MongoDataset with its unique index and idempotent insert) into a fresh database, and (b) a bare
``insert_many`` of the same rows (already parsed, no index, no key) into another fresh database.
Prints documents/s for both, best of ``--repeat`` runs, and their ratio.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset
from pymongo import MongoClient

from network_security.datasets import MongoDataset
from network_security.embedded_mongo import EmbeddedMongo
from network_security.pipelines.ingestion import create_pipeline

ROOT = Path(__file__).resolve().parents[1]


def time_pipeline(data: Path, uri: str, database: str, schema: dict) -> float:
    catalog = DataCatalog(
        {
            "raw_phishing_csv": CSVDataset(
                filepath=str(data), load_args={"dtype": str, "keep_default_na": False}
            ),
            "phishing_records": MongoDataset(
                collection="phishing_records", database=database, credentials={"uri": uri}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/phishing_websites.csv"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    schema = yaml.safe_load((ROOT / "conf/base/parameters.yml").read_text())["schema"]
    rows = sum(1 for _ in args.data.open()) - 1
    with tempfile.TemporaryDirectory() as tmp, EmbeddedMongo(Path(tmp) / "db") as server:
        pipeline_s, bare_s = [], []
        for i in range(args.repeat):  # interleaved, so both see the same machine load
            pipeline_s.append(time_pipeline(args.data, server.uri, f"bench_pipe_{i}", schema))
            bare_s.append(time_bare_insert(args.data, server.uri, f"bench_bare_{i}"))
        with MongoClient(server.uri) as client:
            stored = client["bench_pipe_0"]["phishing_records"].count_documents({})
    pipeline_rate, bare_rate = rows / min(pipeline_s), rows / min(bare_s)
    print(f"rows in file:                 {rows}")
    print(f"documents stored by pipeline: {stored}")
    print(
        f"ingestion pipeline:           {pipeline_rate:10,.0f} documents/s (best of {args.repeat})"
    )
    print(f"bare insert_many:             {bare_rate:10,.0f} documents/s (best of {args.repeat})")
    print(f"ratio pipeline / bare:        {pipeline_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
