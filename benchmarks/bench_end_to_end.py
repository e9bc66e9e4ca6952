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
comes down to, without its leak). The bar: accuracy >= 0.957, ROC-AUC >= 0.993, F1 >= 0.950.

It also scores the decisions (``recommended_action``) against the error budget of
``training.decisions``: the share of held-out phishing rows allowed (``missed``, budget
``max_missed_phishing``), of held-out legitimate rows blocked (``false_block``, budget
``max_false_block``) and of all rows reviewed; next to them the share of phishing among the
allowed rows and of legitimate among the blocked ones; and the share of blocked rows whose first
reason is faithful (setting that indicator to its best other value lowers P(phishing) for the
served model; at least 90 %). Targets with the default budgets of 1 %: missed <= 1.5 %, false
block <= 1.5 %, review <= 20 %.

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
DECISION_TARGETS = {"missed": 0.015, "false_block": 0.015, "review": 0.20}
"""Upper bounds on the held-out decision rates (see ``decision_rates``)."""
FAITHFUL_TARGET = 0.90
"""Lower bound on the share of blocked rows whose first reason is faithful."""

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


def decision_rates(labels: pd.Series, action: pd.Series) -> dict[str, float]:
    """The held-out decision rates: phishing rows allowed (``missed``), legitimate rows blocked
    (``false_block``), rows reviewed; and phishing among the allowed, legitimate among the
    blocked (NaN when no row got that action)."""
    phishing = labels.to_numpy() == -1
    allowed, blocked = action.eq("allow").to_numpy(), action.eq("block").to_numpy()
    return {
        "missed": float(allowed[phishing].mean()),
        "false_block": float(blocked[~phishing].mean()),
        "review": float(action.eq("review").mean()),
        "phishing_given_allow": float(phishing[allowed].mean()) if allowed.any() else np.nan,
        "legitimate_given_block": float((~phishing)[blocked].mean()) if blocked.any() else np.nan,
    }


def first_reason_faithful(
    model_path: Path, features: pd.DataFrame, predictions: pd.DataFrame, allowed: dict
) -> float:
    """The share of ``block`` rows whose first reason is faithful: setting that indicator to its
    best other allowed value and scoring again with the served model lowers P(phishing) (a
    ``block`` row without a reason counts as not faithful)."""
    sys.path.insert(0, str(PROJECT / "src"))
    from network_security.champion import read_cache

    model = read_cache(model_path)
    blocked = np.flatnonzero(predictions["recommended_action"].eq("block").to_numpy())
    first = predictions["reasons"].fillna("").str.extract(r"^([A-Za-z_]+)=")[0]
    changed, owner = [], []
    for row in blocked:
        name = first.iloc[row]
        if isinstance(name, str):
            for value in (v for v in allowed[name] if v != features.iloc[row][name]):
                changed.append(features.iloc[row].to_dict() | {name: value})
                owner.append(row)
    if not blocked.size:
        return np.nan
    if not changed:
        return 0.0
    scored = model.phishing_probability(pd.DataFrame(changed)[model.feature_columns])
    best = pd.Series(scored).groupby(np.asarray(owner)).min()
    before = predictions["phishing_probability"].to_numpy()[best.index]
    return float((best.to_numpy() < before).sum() / blocked.size)


def report_decisions(rows: list[dict[str, float]], seeds: list[int]) -> None:
    """Per split and, over several, mean ± std (SE) of each decision rate, in percent."""
    keys = list(rows[0])
    print("\n" + f"{'decisions (held out, %)':24s}" + "".join(f"{k:>24s}" for k in keys))
    for seed, row in zip(seeds, rows, strict=True):
        print(f"{f'seed {seed}':24s}" + "".join(f"{100 * row[k]:24.2f}" for k in keys))
    if len(rows) > 1:
        frame = pd.DataFrame(rows)
        mean, std = frame.mean(), frame.std(ddof=1)
        error = std / np.sqrt(frame.count())
        cells = [f"{100 * mean[k]:.2f} ± {100 * std[k]:.2f} ({100 * error[k]:.2f})" for k in keys]
        print(f"{'mean ± std (SE)':24s}" + "".join(f"{c:>24s}" for c in cells))
    mean = pd.DataFrame(rows).mean()
    met = all(mean[k] <= v for k, v in DECISION_TARGETS.items())
    met = met and mean.get("block_reason_faithful", 1.0) >= FAITHFUL_TARGET
    print(
        "targets missed <= 1.5 %, false block <= 1.5 %, review <= 20 %, block first reason "
        "faithful >= 90 %"
        + (" (on the mean)" if len(rows) > 1 else "")
        + (": met" if met else ": NOT met")
    )


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
        allowed = {name: list(values) for name, values in schema["features"].items()}
        faithful = first_reason_faithful(
            project / "data" / "06_models" / "champion.pkl",
            held_out[features],
            predictions,
            allowed,
        )
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
    decided = decision_rates(held_out[target], predictions["recommended_action"])
    decided["block_reason_faithful"] = faithful
    report_decisions([decided], [seed])
    return {"champion": ours, "baseline": baseline, "decisions": decided}


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
        report_decisions([r["decisions"] for r in results], options.seed)
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
