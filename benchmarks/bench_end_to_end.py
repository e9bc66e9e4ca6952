"""Benchmark: the champion's verdicts on sites never seen before, end to end through Kedro.

Splits the real data set (``../shared/data/phishing_websites.csv``) by distinct feature vector:
a seeded 20 % of the vectors, with every row that has one, is held out (written outside the
project, its labels kept apart); the other rows are the records. Then, in a temporary project (this
checkout's configuration and code; the embedded database; an MLflow store in the project), as a
user would run it::

    kedro run --pipeline ingestion --params raw_data_path=<records.csv>
    kedro run --pipeline training
    kedro run --pipeline inference --params inference_input_path=<held-out features>,...

and scores the predictions file against the held-out labels: accuracy, ROC-AUC and F1 of the
phishing class. The baseline, measured in the same run on the same rows:
``RandomForestClassifier(500)`` fit on all the records (what the tutorial this project replaces
comes down to, without its leak). The target: accuracy >= 0.957, ROC-AUC >= 0.993,
F1 >= 0.950.

Usage::

    python benchmarks/bench_end_to_end.py              # seed 7, about 3 minutes
    python benchmarks/bench_end_to_end.py --seed 3
    python benchmarks/bench_end_to_end.py --seed 0 1 2 3 4 5 6 7 8 9   # ten splits, their mean
    python benchmarks/bench_end_to_end.py --quick      # 3,000 records, a smoke test
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import make_project  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
REAL_DATA = PROJECT.parent / "shared" / "data" / "phishing_websites.csv"
TARGETS = {"accuracy": 0.957, "roc_auc": 0.993, "f1": 0.950}

logger = logging.getLogger("bench_end_to_end")


def split_by_vector(
    data: pd.DataFrame, features: list[str], seed: int, fraction: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, held_out): ``fraction`` of the distinct feature vectors, all their rows."""
    vectors = data[features].astype(str).agg(",".join, axis=1)
    distinct = vectors.unique()
    rng = np.random.default_rng(seed)
    held = set(rng.choice(distinct, size=round(len(distinct) * fraction), replace=False))
    is_held = vectors.isin(held)
    return data[~is_held].reset_index(drop=True), data[is_held].reset_index(drop=True)


def kedro_run(project: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MLFLOW_TRACKING_URI")}
    source = os.pathsep.join(p for p in (str(PROJECT / "src"), env.get("PYTHONPATH")) if p)
    env.update(KEDRO_DISABLE_TELEMETRY="1", PYTHONPATH=source)
    env.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - fixed command
        [sys.executable, "-m", "kedro", "run", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"kedro run {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - started


def scores(labels: pd.Series, probability: np.ndarray, predicted: np.ndarray) -> dict:
    phishing = labels.to_numpy() == -1
    return {
        "accuracy": accuracy_score(phishing, predicted == -1),
        "roc_auc": roc_auc_score(phishing, probability),
        "f1": f1_score(phishing, predicted == -1),
    }


def one_seed(data: pd.DataFrame, schema: dict, seed: int, quick: bool) -> dict[str, dict]:
    """Held-out scores of the champion (through ``kedro run``) and of the baseline, one split."""
    features, target = list(schema["features"]), schema["target"]["name"]
    records, held_out = split_by_vector(data, features, seed)
    if quick:
        records = records.sample(n=min(3000, len(records)), random_state=seed)
    shared = set(map(tuple, records[features].to_numpy())) & set(
        map(tuple, held_out[features].to_numpy())
    )
    assert not shared, "a held-out feature vector is among the records"

    with tempfile.TemporaryDirectory(prefix="bench-end-to-end-") as tmp:
        tmp_path = Path(tmp)
        project = make_project(tmp_path)  # conf as a fresh clone has it; this checkout's code
        records_csv, held_csv = tmp_path / "records.csv", tmp_path / "held_out.csv"
        records.to_csv(records_csv, index=False)
        held_out[features].to_csv(held_csv, index=False)  # no labels: new sites
        out_csv = tmp_path / "predictions.csv"
        times = {
            "ingestion": kedro_run(
                project, "--pipeline", "ingestion", "--params", f"raw_data_path={records_csv}"
            ),
            "training": kedro_run(project, "--pipeline", "training"),
            "inference": kedro_run(
                project,
                "--pipeline",
                "inference",
                "--params",
                f"inference_input_path={held_csv},inference_output_path={out_csv}",
            ),  # fmt: skip
        }
        predictions = pd.read_csv(out_csv)
    assert len(predictions) == len(held_out)
    ours = scores(
        held_out[target], predictions["phishing_probability"].to_numpy(),
        predictions["prediction"].to_numpy(),
    )  # fmt: skip
    forest = RandomForestClassifier(n_estimators=500, random_state=0, n_jobs=1)
    forest.fit(records[features], records[target])
    column = list(forest.classes_).index(-1)
    probability = forest.predict_proba(held_out[features])[:, column]
    baseline = scores(held_out[target], probability, forest.predict(held_out[features]))

    print(
        f"\nrecords {len(records):,} rows; held out {len(held_out):,} rows of "
        f"{held_out[features].drop_duplicates().shape[0]:,} feature vectors never in the records "
        f"(seed {seed}); load average {os.getloadavg()[0]:.1f}"
    )
    print("kedro run times: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    report({"champion (kedro run inference)": ours, "RandomForest(500)": baseline})
    return {"champion": ours, "baseline": baseline}


def report(rows: dict[str, dict[str, float]]) -> None:
    print(f"{'':32s}{'accuracy':>10s}{'ROC-AUC':>10s}{'F1':>10s}")
    for name, figures in rows.items():
        print(f"{name:32s}" + "".join(f"{figures[k]:10.4f}" for k in ("accuracy", "roc_auc", "f1")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA, help="the real data set (CSV)")
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[7], help="seed(s) of the held-out vectors"
    )
    parser.add_argument("--quick", action="store_true", help="3,000 records: a smoke test")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    schema = yaml.safe_load((PROJECT / "conf/base/parameters.yml").read_text())["schema"]
    data = pd.read_csv(options.data)
    results = [one_seed(data, schema, seed, options.quick) for seed in options.seed]
    ours = {k: float(np.mean([r["champion"][k] for r in results])) for k in TARGETS}
    if len(results) > 1:
        print(f"\nmean over {len(results)} splits (seeds {' '.join(map(str, options.seed))}):")
        mean = {k: float(np.mean([r["baseline"][k] for r in results])) for k in TARGETS}
        report({"champion (kedro run inference)": ours, "RandomForest(500)": mean})
        spread = {k: float(np.std([r["champion"][k] for r in results], ddof=1)) for k in TARGETS}
        print(
            f"{'champion, std over the splits':32s}"
            + "".join(f"{spread[k]:10.4f}" for k in TARGETS)
        )
        ahead = sum(r["champion"]["accuracy"] >= r["baseline"]["accuracy"] for r in results)
        print(f"champion's accuracy >= the forest's on {ahead} of {len(results)} splits")
    met = all(ours[k] >= v for k, v in TARGETS.items())
    print(
        "targets accuracy >= 0.957, ROC-AUC >= 0.993, F1 >= 0.950"
        + (" (on the mean)" if len(results) > 1 else "")
        + ": "
        + ("met" if met else "NOT met")
        + (" (a --quick run trains on 3,000 records: not the benchmark)" if options.quick else "")
    )


if __name__ == "__main__":
    main()
