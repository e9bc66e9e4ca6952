"""Benchmark: the production refit's verdicts on feature vectors it has never seen (real data).

The acceptance check scores the champion, refit on ALL validated records, on a held-out
set of sites whose feature vectors never occur in the training data (kept outside the project).
This script simulates it on the real data set (``../shared/data/phishing_websites.csv``), for
several seeds:

1. hold out ~20% of the DISTINCT feature vectors, with all their rows (``grouped_folds``, 5
   folds, the seed's first fold; ``--split random``: a random 20 % of the vectors, as
   ``bench_end_to_end.py`` draws them): "the rest" is what the project would have in MongoDB;
2. on the rest, the project's own selection as ``kedro run --pipeline training`` runs it: the
   feature_engineering split, grouped CV of the candidates of ``conf/base/parameters_training.yml``
   on its training side, ``select_best_candidate``, ``choose_threshold``;
3. refit the winning configuration, with its threshold, on ALL of the rest (the production
   refit), and score the held-out rows: accuracy, ROC-AUC, F1 of the phishing class;
4. beside it, the same winner fit on the training side only (no production refit), and the
   baseline: a plain ``RandomForestClassifier(500)`` on the raw indicators, fit on all the rest.

Printed: each seed's winner and scores, then mean and standard deviation over the seeds, and the
paired difference to the baseline (mean and its standard error; the seeds share the data, so the
differences are much less noisy than the scores). The targets are >= 0.957 / 0.993 / 0.950 on
the hidden set; the hidden set is not this one, so the figures here are evidence, not the check.

``--explore`` also scores a broad list of candidates (``BROAD_CANDIDATES``: forests of 100-500
trees, extra trees of 100-300 with other ``max_features``, gradient boosting with 15-63 leaves
and 100-400 iterations, the ordinal / one-hot / categorical encodings, logistic regression,
nearest neighbours on Hamming distance) and soft votes of pairs and triples
(``BROAD_VOTES``), each refit on all of the rest with no selection: how good each would be if it
won. That table is how the production list was chosen.

Usage::

    python benchmarks/bench_holdout.py                  # 10 seeds, production candidates, ~5 min
    python benchmarks/bench_holdout.py --quick          # 2 seeds, ~1 min
    python benchmarks/bench_holdout.py --explore        # plus the broad comparison, ~25 min
    python benchmarks/bench_holdout.py --select-from broad   # select among the broad list
    python benchmarks/bench_holdout.py --split random --explore   # bench_end_to_end.py's splits

Threads: ``--jobs`` worker processes (default 2, the machine's cores), one OpenMP thread each.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
REAL_DATA = PROJECT.parent / "shared" / "data" / "phishing_websites.csv"
TARGETS = {"accuracy": 0.957, "roc_auc": 0.993, "f1": 0.950}
"""The target figures for the hidden held-out set."""

logger = logging.getLogger("bench_holdout")

HGB = "sklearn.ensemble.HistGradientBoostingClassifier"
HGB_FIXED = {"max_iter": 200, "learning_rate": 0.1, "early_stopping": False}
RF = "sklearn.ensemble.RandomForestClassifier"
ET = "sklearn.ensemble.ExtraTreesClassifier"

BROAD_CANDIDATES: dict[str, dict[str, Any]] = {
    "logistic_regression_one_hot": {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "encoding": "one_hot",
        "params": {"max_iter": 2000, "C": 1.0},
    },
    "random_forest_100": {"estimator": RF, "params": {"n_estimators": 100}},
    "random_forest_500": {"estimator": RF, "params": {"n_estimators": 500}},
    "random_forest_300_mf0.3": {
        "estimator": RF,
        "params": {"n_estimators": 300, "max_features": 0.3},
    },
    "random_forest_300_one_hot": {
        "estimator": RF,
        "encoding": "one_hot",
        "params": {"n_estimators": 300},
    },
    "extra_trees_100": {"estimator": ET, "params": {"n_estimators": 100}},
    "extra_trees_150": {"estimator": ET, "params": {"n_estimators": 150}},
    "extra_trees_300": {"estimator": ET, "params": {"n_estimators": 300}},
    "extra_trees_150_entropy": {
        "estimator": ET,
        "params": {"n_estimators": 150, "criterion": "entropy"},
    },
    "extra_trees_150_mf3": {"estimator": ET, "params": {"n_estimators": 150, "max_features": 3}},
    "extra_trees_300_mf0.3": {
        "estimator": ET,
        "params": {"n_estimators": 300, "max_features": 0.3},
    },
    "extra_trees_300_one_hot": {
        "estimator": ET,
        "encoding": "one_hot",
        "params": {"n_estimators": 300},
    },
    "hgb_ordinal_15": {"estimator": HGB, "params": {**HGB_FIXED, "max_leaf_nodes": 15}},
    "hgb_ordinal_31": {"estimator": HGB, "params": {**HGB_FIXED, "max_leaf_nodes": 31}},
    "hgb_one_hot_31": {
        "estimator": HGB,
        "encoding": "one_hot",
        "params": {**HGB_FIXED, "max_leaf_nodes": 31},
    },
    "hgb_categorical_15": {
        "estimator": HGB,
        "encoding": "categorical",
        "params": {**HGB_FIXED, "max_leaf_nodes": 15},
    },
    "hgb_categorical_31": {
        "estimator": HGB,
        "encoding": "categorical",
        "params": {**HGB_FIXED, "max_leaf_nodes": 31},
    },
    "hgb_categorical_63": {
        "estimator": HGB,
        "encoding": "categorical",
        "params": {**HGB_FIXED, "max_leaf_nodes": 63},
    },
    "hgb_categorical_31_100it": {
        "estimator": HGB,
        "encoding": "categorical",
        "params": {**HGB_FIXED, "max_leaf_nodes": 31, "max_iter": 100},
    },
    "hgb_categorical_31_300it": {
        "estimator": HGB,
        "encoding": "categorical",
        "params": {**HGB_FIXED, "max_leaf_nodes": 31, "max_iter": 300},
    },
    "hgb_categorical_31_l2": {
        "estimator": HGB,
        "encoding": "categorical",
        "params": {**HGB_FIXED, "max_leaf_nodes": 31, "l2_regularization": 1.0},
    },
    "hgb_categorical_31_leaf5": {
        "estimator": HGB,
        "encoding": "categorical",
        "params": {**HGB_FIXED, "max_leaf_nodes": 31, "min_samples_leaf": 5},
    },
    "knn_10_hamming": {
        "estimator": "sklearn.neighbors.KNeighborsClassifier",
        "params": {
            "n_neighbors": 10,
            "weights": "distance",
            "metric": "hamming",
            "algorithm": "brute",
        },
    },
}
"""One configuration each, in the schema of ``training.candidates``."""

BROAD_VOTES: dict[str, list[str]] = {
    "vote_hgb_ordinal_31+random_forest_100": ["hgb_ordinal_31", "random_forest_100"],
    "vote_hgb_ordinal_31+extra_trees_150": ["hgb_ordinal_31", "extra_trees_150"],
    "vote_hgb_categorical_31+extra_trees_100": ["hgb_categorical_31", "extra_trees_100"],
    "vote_hgb_categorical_31+extra_trees_150": ["hgb_categorical_31", "extra_trees_150"],
    "vote_hgb_categorical_31+extra_trees_300": ["hgb_categorical_31", "extra_trees_300"],
    "vote_hgb_categorical_31+extra_trees_150_entropy": [
        "hgb_categorical_31",
        "extra_trees_150_entropy",
    ],
    "vote_hgb_categorical_31+random_forest_500": ["hgb_categorical_31", "random_forest_500"],
    "vote_hgb_one_hot_31+extra_trees_150": ["hgb_one_hot_31", "extra_trees_150"],
    "vote_hgb_categorical_31+extra_trees_150+random_forest_100": [
        "hgb_categorical_31",
        "extra_trees_150",
        "random_forest_100",
    ],
    "vote_hgb_categorical_31+extra_trees_100+knn_10_hamming": [
        "hgb_categorical_31",
        "extra_trees_100",
        "knn_10_hamming",
    ],
    "vote_hgb_categorical_31_leaf5+extra_trees_100+knn_10_hamming": [
        "hgb_categorical_31_leaf5",
        "extra_trees_100",
        "knn_10_hamming",
    ],
}
"""Soft votes of broad candidates: the mean of their members' P(phishing) (no extra fit)."""

BASELINE = "RandomForest(500), raw indicators"


def conf(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROJECT / "conf" / "base" / f"{name}.yml").read_text())


def broad_training(training: dict[str, Any]) -> dict[str, Any]:
    """The project's training parameters with the broad candidates and votes."""
    ensembles = {name: {"members": members} for name, members in BROAD_VOTES.items()}
    return {**training, "candidates": BROAD_CANDIDATES, "ensembles": ensembles, "preference": []}


def score(labels: np.ndarray, probability: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, ROC-AUC and F1 of the phishing class (the project's own metric code)."""
    from network_security.pipelines.training.evaluation import classification_metrics

    metrics = classification_metrics(labels, probability, threshold, phishing_label=-1)
    return {key: metrics[key] for key in TARGETS}


def fit_probability(model: Any, rest: pd.DataFrame, held_out: pd.DataFrame, schema: dict) -> Any:
    """Fit ``model`` on ``rest``; P(phishing) of the held-out rows."""
    from threadpoolctl import threadpool_limits

    from network_security.schema import feature_columns, target_column

    features = feature_columns(schema)
    with threadpool_limits(limits=1):
        model.fit(rest[features], rest[target_column(schema)])
        column = list(model.classes_).index(int(schema["target"]["phishing"]))
        return model.predict_proba(held_out[features])[:, column]


def one_seed(
    data: pd.DataFrame,
    schema: dict,
    training: dict,
    seed: int,
    jobs: int,
    explore: bool,
    split_kind: str = "folds",
) -> list[dict[str, Any]]:
    """Selection on the rest, refit, and the scores of every arm on this seed's held-out rows."""
    from joblib import Parallel, delayed
    from sklearn.base import clone
    from sklearn.ensemble import RandomForestClassifier

    from network_security.features import grouped_folds
    from network_security.pipelines.feature_engineering.nodes import split_train_test
    from network_security.pipelines.training import selection
    from network_security.pipelines.training.params import TrainingParams
    from network_security.pipelines.training.search import build_selected_model
    from network_security.schema import feature_columns, target_column

    features, target = feature_columns(schema), target_column(schema)
    labels = data[target].to_numpy()
    if split_kind == "random":  # bench_end_to_end.py's split: a random 20 % of the vectors
        from bench_end_to_end import split_by_vector

        rest, held_out = split_by_vector(data, features, seed)
    else:
        rest_index, held_index = grouped_folds(data, labels, features, 5, seed)[0]
        rest = data.iloc[rest_index].reset_index(drop=True)
        held_out = data.iloc[held_index].reset_index(drop=True)
    held_labels = held_out[target].to_numpy()
    split = conf("parameters_feature_engineering")["feature_engineering"]["split"]
    train, _ = split_train_test(rest, schema, split)

    started = time.perf_counter()
    settings = TrainingParams.parse(training)
    results, oof = selection.search_candidates(train, schema, settings)
    best = selection.select_best_candidate(results, settings)
    threshold = float(selection.choose_threshold(oof, train, best, schema, settings)["threshold"])
    winner = build_selected_model(best, training, features)
    selection_seconds = time.perf_counter() - started
    name = f"{best['candidate']} {best['params']}"

    arms: list[tuple[str, Any, pd.DataFrame, float]] = [
        ("selected, refit on all the rest", winner, rest, threshold),
        ("selected, fit on the training side", clone(winner), train, threshold),
        (BASELINE, RandomForestClassifier(500, random_state=seed, n_jobs=jobs), rest, 0.5),
    ]
    rows = []
    for arm, model, fit_rows, arm_threshold in arms:
        probability = fit_probability(model, fit_rows, held_out, schema)
        common = {"seed": seed, "winner": name, "cv_accuracy": best["cv_accuracy"]}
        common["threshold"], common["selection_s"] = arm_threshold, selection_seconds
        rows.append({**common, "arm": arm, **score(held_labels, probability, arm_threshold)})
        if model is winner:  # the same refit with the threshold left at 0.5
            rows.append({**common, "arm": f"{arm}, at 0.5", **score(held_labels, probability, 0.5)})
    logger.info(
        "seed %d: held out %d rows (%d distinct vectors) of %d; winner %s (grouped-CV accuracy "
        "%.4f, threshold %.2f, selection %.1f s): refit %s | RF(500) %s",
        seed,
        len(held_out),
        len(held_out[features].drop_duplicates()),
        len(data),
        name,
        best["cv_accuracy"],
        threshold,
        selection_seconds,
        " / ".join(f"{rows[0][k]:.4f}" for k in TARGETS),
        " / ".join(f"{rows[-1][k]:.4f}" for k in TARGETS),
    )
    if explore:
        broad = broad_training(training)
        configurations = {
            name: build_selected_model({"candidate": name, "params": {}}, broad, features)
            for name in BROAD_CANDIDATES
        }
        probabilities = dict(
            zip(
                configurations,
                Parallel(n_jobs=jobs)(
                    delayed(fit_probability)(clone(model), rest, held_out, schema)
                    for model in configurations.values()
                ),
                strict=True,
            )
        )
        for vote, members in BROAD_VOTES.items():
            probabilities[vote] = np.mean([probabilities[m] for m in members], axis=0)
        for arm, probability in probabilities.items():
            rows.append(
                {"seed": seed, "arm": f"[broad] {arm}", **score(held_labels, probability, 0.5)}
            )
    return rows


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of each arm's scores, and its paired difference to the baseline."""
    table = rows.groupby("arm", sort=False)[list(TARGETS)].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    baseline = rows[rows["arm"] == BASELINE].set_index("seed")
    for metric in TARGETS:
        wide = rows.pivot(index="seed", columns="arm", values=metric)
        difference = wide.sub(baseline[metric], axis=0)
        table[f"d_{metric}"] = difference.mean()
        table[f"d_{metric}_se"] = difference.std() / np.sqrt(len(difference))
    return table.sort_values("accuracy_mean", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REAL_DATA, help="the real data set (CSV)")
    parser.add_argument("--seeds", type=int, default=10, help="held-out splits (default 10)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--quick", action="store_true", help="2 seeds")
    parser.add_argument(
        "--split",
        choices=("folds", "random"),
        default="folds",
        help="held-out vectors: the first of 5 StratifiedGroupKFold folds (default), or a random "
        "20 %% of them as bench_end_to_end.py draws them",
    )
    parser.add_argument("--explore", action="store_true", help="also the broad candidate list")
    parser.add_argument(
        "--select-from",
        choices=("production", "broad"),
        default="production",
        help="the candidates the selection arm chooses among (default: parameters_training.yml)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--csv", type=Path, help="also write every seed's scores to this CSV")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("network_security", "kedro"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not args.data.exists():
        raise SystemExit(f"The real data set is not at {args.data}; pass --data <csv>.")

    from network_security.schema import feature_columns, record_columns

    schema = conf("parameters")["schema"]
    training = conf("parameters_training")["training"]
    training["n_jobs"] = args.jobs
    if args.select_from == "broad":
        training = broad_training(training)
    data = pd.read_csv(args.data)[record_columns(schema)].astype("int64")
    seeds = range(args.first_seed, args.first_seed + (2 if args.quick else args.seeds))
    logger.info(
        "%d rows, %d distinct feature vectors; %d seeds; selection among %s; load average %s",
        len(data),
        len(data[feature_columns(schema)].drop_duplicates()),
        len(seeds),
        ", ".join([*training["candidates"], *(training.get("ensembles") or {})]),
        " ".join(f"{x:.1f}" for x in os.getloadavg()),
    )
    started = time.perf_counter()
    rows = pd.DataFrame(
        [
            row
            for seed in seeds
            for row in one_seed(data, schema, training, seed, args.jobs, args.explore, args.split)
        ]
    )
    if args.csv:
        rows.to_csv(args.csv, index=False)
    selected = rows[rows["arm"] == "selected, refit on all the rest"]
    logger.info("")
    logger.info("winners: %s", selected["winner"].value_counts().to_dict())
    logger.info(
        "grouped-CV accuracy of the winner (training side of the rest): mean %.4f, std %.4f",
        selected["cv_accuracy"].mean(),
        selected["cv_accuracy"].std(),
    )
    logger.info(
        "held-out rows, mean (std) over %d seeds; d_ = paired difference to %s (± its standard "
        "error):",
        len(seeds),
        BASELINE,
    )
    with pd.option_context("display.width", 250, "display.max_colwidth", 70):
        logger.info("%s", summarize(rows).round(4).to_string())
    mean = selected[list(TARGETS)].mean()
    logger.info(
        "selected + refit vs the target figures (for the hidden set): %s",
        ", ".join(
            f"{k} {mean[k]:.4f} {'>=' if mean[k] >= v else '<'} {v}" for k, v in TARGETS.items()
        ),
    )
    logger.info("total %.0f s", time.perf_counter() - started)


if __name__ == "__main__":
    main()
