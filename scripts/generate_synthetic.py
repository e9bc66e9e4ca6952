"""Build the synthetic profile, write the committed synthetic CSVs, and check them.

    python scripts/generate_synthetic.py fit     # real CSV -> conf/base/synthetic_profile.json
    python scripts/generate_synthetic.py sample  # profile -> data/01_raw/phishing_sample.csv
                                                 #            and data/01_raw/new_batch.csv
    python scripts/generate_synthetic.py check   # compare the sample with the real data set

`fit` reads the real data set (by default ../shared/data/phishing_websites.csv) and writes only
aggregated statistics; `sample` reads only the profile, never the real rows, and is
reproducible (same profile and seeds -> byte-identical files); `check` needs scikit-learn and
reports the duplicate share, how well a random forest trained on the sample scores the real
data, how well the sample keeps the pairwise dependence, and that no real rows were copied.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))

from synthetic import (  # noqa: E402  (scripts/synthetic.py, beside this script)
    BATCH_ROWS,
    BATCH_SEED,
    SAMPLE_ROWS,
    SAMPLE_SEED,
    fit_profile,
    frame_to_csv,
    make_batch,
    sample_records,
)

from network_security.schema import feature_columns, target_column  # noqa: E402

logger = logging.getLogger("generate_synthetic")

DEFAULT_REAL = PROJECT.parent / "shared" / "data" / "phishing_websites.csv"
DEFAULT_PROFILE = PROJECT / "conf" / "base" / "synthetic_profile.json"
DEFAULT_SAMPLE = PROJECT / "data" / "01_raw" / "phishing_sample.csv"
DEFAULT_BATCH = PROJECT / "data" / "01_raw" / "new_batch.csv"


def load_schema() -> dict:
    """The project's schema from conf/base/parameters.yml."""
    with open(PROJECT / "conf" / "base" / "parameters.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["schema"]


def read_real(path: Path) -> pd.DataFrame:
    """Read the real data set, with a clear error when it is not there."""
    if not path.is_file():
        raise SystemExit(f"Real data set not found at {path}; pass its path with --data")
    return pd.read_csv(path)


def dump_profile(profile: dict) -> str:
    """Profile JSON with one line per list of numbers, so it stays readable and diffable."""
    text = json.dumps(profile, indent=2)
    return re.sub(
        r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text
    )


def command_fit(args: argparse.Namespace) -> None:
    """Fit the mixture to the real data set and write the profile."""
    real = read_real(args.data)
    profile = fit_profile(real, load_schema(), n_components=args.components, seed=args.seed)
    args.profile.write_text(dump_profile(profile) + "\n", encoding="utf-8")
    sizes = {c["label"]: len(c["components"]) for c in profile["classes"]}
    logger.info("Wrote %s (latent classes per label: %s)", args.profile, sizes)


def command_sample(args: argparse.Namespace) -> None:
    """Write the labelled sample and the unlabelled batch from the profile."""
    schema = load_schema()
    profile = json.loads(args.profile.read_text(encoding="utf-8"))
    sample = sample_records(profile, schema, args.rows, args.seed)
    args.sample_out.write_text(frame_to_csv(sample), encoding="utf-8")
    batch = make_batch(profile, schema, args.batch_rows, args.batch_seed)
    args.batch_out.write_text(frame_to_csv(batch), encoding="utf-8")
    logger.info(
        "Wrote %s (%d rows) and %s (%d rows)",
        args.sample_out,
        len(sample),
        args.batch_out,
        len(batch),
    )


def longest_copied_run(synthetic: pd.DataFrame, real: pd.DataFrame) -> int:
    """Longest run of consecutive synthetic rows equal to consecutive real rows."""
    real_hash = pd.util.hash_pandas_object(real, index=False).to_numpy()
    syn_hash = pd.util.hash_pandas_object(synthetic, index=False).to_numpy()
    positions: dict[int, list[int]] = {}
    for j, h in enumerate(real_hash):
        positions.setdefault(int(h), []).append(j)
    best, previous = 0, {}
    for h in syn_hash:
        current = {j: previous.get(j - 1, 0) + 1 for j in positions.get(int(h), [])}
        best = max(best, *current.values(), 0)
        previous = current
    return best


def pairwise_gap(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Mean absolute difference of the pairwise correlation matrices (off-diagonal)."""
    ca, cb = a.corr().to_numpy(), b.corr().to_numpy()
    off = ~np.eye(len(ca), dtype=bool)
    return float(np.nanmean(np.abs(ca - cb)[off]))


def command_check(args: argparse.Namespace) -> None:
    """Report how the sample compares with the real data set."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score

    schema = load_schema()
    features, target = feature_columns(schema), target_column(schema)
    real = read_real(args.data)[[*features, target]]
    sample = pd.read_csv(args.sample)[[*features, target]]
    majority = float(real[target].value_counts(normalize=True).max())

    def forest(train: pd.DataFrame) -> RandomForestClassifier:
        model = RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=2)
        return model.fit(train[features], train[target])

    synthetic_model = forest(sample)
    accuracy = accuracy_score(real[target], synthetic_model.predict(real[features]))
    auc = roc_auc_score(real[target], synthetic_model.predict_proba(real[features])[:, 1])
    logger.info(
        "Sample: %d rows, label shares %s",
        len(sample),
        sample[target].value_counts(normalize=True).round(3).to_dict(),
    )
    logger.info(
        "Exact duplicate row share: sample %.3f, real %.3f",
        sample.duplicated().mean(),
        real.duplicated().mean(),
    )
    logger.info(
        "RF trained on the sample, scored on all %d real rows: accuracy %.4f, "
        "ROC-AUC %.4f (majority rate %.4f)",
        len(real),
        accuracy,
        auc,
        majority,
    )

    # Reference: the same forest trained on as many real rows, scored on the real rows whose
    # feature vectors it did not see; the synthetic-trained forest on those same rows.
    rng = np.random.default_rng(0)
    train_real = real.iloc[rng.permutation(len(real))[: len(sample)]]
    seen = real[features].merge(train_real[features].drop_duplicates(), how="left", indicator=True)
    unseen = real[(seen["_merge"] == "left_only").to_numpy()]
    real_model = forest(train_real)
    logger.info(
        "On %d real rows unseen by a forest trained on %d real rows: real-trained "
        "accuracy %.4f, sample-trained accuracy %.4f",
        len(unseen),
        len(train_real),
        accuracy_score(unseen[target], real_model.predict(unseen[features])),
        accuracy_score(unseen[target], synthetic_model.predict(unseen[features])),
    )

    shuffled = sample.copy()
    for seed, column in enumerate(features):  # features independent given the label: baseline
        shuffled[column] = shuffled.groupby(target)[column].transform(
            lambda s, seed=seed: s.sample(frac=1, random_state=seed).to_numpy()
        )
    for name, frame in [("sample", sample), ("independence baseline", shuffled)]:
        within = np.mean(
            [
                pairwise_gap(
                    frame.loc[frame[target] == v, features], real.loc[real[target] == v, features]
                )
                for v in real[target].unique()
            ]
        )
        logger.info(
            "Mean |corr difference| to the real data, %s: all column pairs %.4f, "
            "feature pairs within a label %.4f",
            name,
            pairwise_gap(frame, real),
            within,
        )
    marginal_gap = max(
        float(
            (sample[c].value_counts(normalize=True) - real[c].value_counts(normalize=True))
            .abs()
            .max()
        )
        for c in features
    )
    logger.info("Largest gap in a feature's value share: %.4f", marginal_gap)
    in_real = sample.merge(real.drop_duplicates(), how="inner")
    logger.info(
        "Sample rows whose full row also occurs in the real data (by chance in a space "
        "of few values): %.3f; longest run of consecutive real rows reproduced in "
        "order: %d",
        len(in_real) / len(sample),
        longest_copied_run(sample, real),
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run a subcommand."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="real data set -> profile of summary statistics")
    fit.add_argument("--data", type=Path, default=DEFAULT_REAL)
    fit.add_argument("--profile", type=Path, default=DEFAULT_PROFILE)
    fit.add_argument("--components", type=int, default=32, help="latent classes per label")
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(func=command_fit)
    sample = sub.add_parser("sample", help="profile -> synthetic sample and batch CSVs")
    sample.add_argument("--profile", type=Path, default=DEFAULT_PROFILE)
    sample.add_argument("--rows", type=int, default=SAMPLE_ROWS)
    sample.add_argument("--seed", type=int, default=SAMPLE_SEED)
    sample.add_argument("--sample-out", type=Path, default=DEFAULT_SAMPLE)
    sample.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    sample.add_argument("--batch-seed", type=int, default=BATCH_SEED)
    sample.add_argument("--batch-out", type=Path, default=DEFAULT_BATCH)
    sample.set_defaults(func=command_sample)
    check = sub.add_parser("check", help="compare the sample with the real data set")
    check.add_argument("--data", type=Path, default=DEFAULT_REAL)
    check.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    check.set_defaults(func=command_check)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.func(args)


if __name__ == "__main__":
    main()
