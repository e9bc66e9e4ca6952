"""Tests of the synthetic data generator and the committed synthetic files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from synthetic import (  # scripts/synthetic.py (pytest pythonpath)
    BATCH_ROWS,
    BATCH_SEED,
    SAMPLE_ROWS,
    SAMPLE_SEED,
    check_profile,
    fit_profile,
    frame_to_csv,
    make_batch,
    sample_records,
)

from network_security.schema import (
    allowed_values,
    feature_columns,
    record_columns,
    target_column,
    target_values,
)

PROJECT = Path(__file__).resolve().parents[1]
PROFILE_PATH = PROJECT / "conf" / "base" / "synthetic_profile.json"
SAMPLE_PATH = PROJECT / "data" / "01_raw" / "phishing_sample.csv"
BATCH_PATH = PROJECT / "data" / "01_raw" / "new_batch.csv"
SCRIPT = PROJECT / "scripts" / "generate_synthetic.py"


@pytest.fixture(scope="module")
def schema() -> dict:
    with open(PROJECT / "conf" / "base" / "parameters.yml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["schema"]


@pytest.fixture(scope="module")
def profile() -> dict:
    return json.loads(PROFILE_PATH.read_text(encoding="utf-8"))


def toy_records(schema: dict, n_rows: int, seed: int) -> pd.DataFrame:
    """Labelled records where two features copy one hidden bit and the rest are noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {name: rng.choice(values, n_rows) for name, values in allowed_values(schema).items()}
    )
    hidden = rng.choice([-1, 1], n_rows)
    frame["having_IP_Address"] = hidden
    frame["Prefix_Suffix"] = hidden
    frame[target_column(schema)] = np.where(rng.random(n_rows) < 0.9, hidden, -hidden)
    return frame[record_columns(schema)]


def test_same_seed_gives_the_same_frame(profile: dict, schema: dict) -> None:
    first = sample_records(profile, schema, 1000, seed=7)
    again = sample_records(profile, schema, 1000, seed=7)
    other = sample_records(profile, schema, 1000, seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert frame_to_csv(first) == frame_to_csv(again)
    assert not first.equals(other)


def test_committed_files_are_what_the_cli_writes(tmp_path: Path) -> None:
    sample_out, batch_out = tmp_path / "sample.csv", tmp_path / "batch.csv"
    subprocess.run(
        [sys.executable, str(SCRIPT), "sample", "--sample-out", str(sample_out),
         "--batch-out", str(batch_out)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    assert sample_out.read_bytes() == SAMPLE_PATH.read_bytes()
    assert batch_out.read_bytes() == BATCH_PATH.read_bytes()


def test_sample_has_schema_order_domains_and_size(profile: dict, schema: dict) -> None:
    sample = pd.read_csv(SAMPLE_PATH)
    assert list(sample.columns) == record_columns(schema)
    assert len(sample) == SAMPLE_ROWS
    for name, values in allowed_values(schema).items():
        assert set(sample[name]) <= set(values), name
    assert set(sample[target_column(schema)]) == set(target_values(schema))
    generated = sample_records(profile, schema, 200, seed=SAMPLE_SEED)
    assert (generated.dtypes == "int64").all()


def test_batch_has_a_url_column_and_no_label(profile: dict, schema: dict) -> None:
    batch = pd.read_csv(BATCH_PATH)
    assert list(batch.columns) == ["url", *feature_columns(schema)]
    assert len(batch) == BATCH_ROWS
    assert batch["url"].is_unique
    assert batch["url"].str.fullmatch(r"https://example-\d{4}\.test/").all()
    for name, values in allowed_values(schema).items():
        assert set(batch[name]) <= set(values), name
    regenerated = make_batch(profile, schema, BATCH_ROWS, BATCH_SEED)
    pd.testing.assert_frame_equal(batch, regenerated, check_dtype=False)


def test_label_share_matches_the_profile(profile: dict, schema: dict) -> None:
    sample = sample_records(profile, schema, 2000, seed=3)
    rows = {c["label"]: c["n_rows"] for c in profile["classes"]}
    expected = rows[1] / sum(rows.values())
    assert sample[target_column(schema)].eq(1).mean() == pytest.approx(expected, abs=1e-3)


def test_a_model_trained_on_generated_data_beats_the_majority_rate(
    profile: dict, schema: dict
) -> None:
    features, target = feature_columns(schema), target_column(schema)
    train = sample_records(profile, schema, 2000, seed=1)
    fresh = sample_records(profile, schema, 2000, seed=2)
    model = LogisticRegression(max_iter=1000).fit(train[features], train[target])
    accuracy = (model.predict(fresh[features]) == fresh[target]).mean()
    majority = fresh[target].value_counts(normalize=True).max()
    assert accuracy >= majority + 0.25, (accuracy, majority)


def test_generated_data_repeats_rows_like_the_source(profile: dict, schema: dict) -> None:
    sample = sample_records(profile, schema, SAMPLE_ROWS, seed=5)
    source_share = profile["source"]["duplicate_row_share"]
    assert sample.duplicated().mean() == pytest.approx(source_share, abs=0.1)


def test_fit_recovers_dependence_between_features(schema: dict) -> None:
    records = toy_records(schema, 3000, seed=0)
    mixture = fit_profile(records, schema, n_components=4, seed=0)
    independent = fit_profile(records, schema, n_components=1, seed=0)
    check_profile(mixture, schema)

    def within_label_corr(prof: dict) -> float:
        frame = sample_records(prof, schema, 3000, seed=1)
        one_label = frame[frame[target_column(schema)] == 1]
        return one_label["having_IP_Address"].corr(one_label["Prefix_Suffix"])

    assert within_label_corr(mixture) > 0.8
    assert abs(within_label_corr(independent)) < 0.1


def test_fit_is_reproducible_and_holds_only_aggregates(schema: dict) -> None:
    records = toy_records(schema, 1000, seed=4)
    first = fit_profile(records, schema, n_components=4, seed=3, min_class_vectors=10)
    assert first == fit_profile(records, schema, n_components=4, seed=3, min_class_vectors=10)
    text = json.dumps(first)
    for row in records.drop_duplicates().head(50).itertuples(index=False):
        assert str(list(row)) not in text
    for cls in first["classes"]:
        assert sum(cls["multiplicity"].values()) == cls["n_distinct"]
        for component in cls["components"]:
            assert component["expected_vectors"] >= 10
            for probs in component["probabilities"].values():
                assert sum(probs) == pytest.approx(1, abs=1e-5)


def test_committed_profile_classes_summarise_many_vectors(profile: dict, schema: dict) -> None:
    check_profile(profile, schema)
    for cls in profile["classes"]:
        assert min(c["expected_vectors"] for c in cls["components"]) >= 10


def test_fit_rejects_a_value_outside_the_schema(schema: dict) -> None:
    records = toy_records(schema, 50, seed=0)
    records.loc[17, "URL_Length"] = 2
    with pytest.raises(ValueError, match=r"column 'URL_Length', row 18: value '2' is not an allow"):
        fit_profile(records, schema)


def test_a_profile_that_does_not_match_the_schema_is_rejected(profile: dict, schema: dict) -> None:
    other = {**schema, "features": {k: v for k, v in schema["features"].items() if k != "port"}}
    with pytest.raises(ValueError, match="differ from the schema"):
        sample_records(profile, other, 10, seed=0)


def test_cli_fits_a_profile_that_samples(tmp_path: Path, schema: dict) -> None:
    data, profile_path = tmp_path / "records.csv", tmp_path / "profile.json"
    toy_records(schema, 500, seed=9).to_csv(data, index=False)
    subprocess.run(
        [sys.executable, str(SCRIPT), "fit", "--data", str(data), "--profile", str(profile_path),
         "--components", "3"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    fitted = json.loads(profile_path.read_text(encoding="utf-8"))
    assert fitted["source"]["n_rows"] == 500
    assert len(sample_records(fitted, schema, 100, seed=0)) == 100


def test_committed_sample_copies_no_real_rows(real_data_path: Path, schema: dict) -> None:
    real = pd.read_csv(real_data_path)[record_columns(schema)]
    sample = pd.read_csv(SAMPLE_PATH)
    assert not sample.equals(real.head(len(sample)))

    def row_pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        return set(zip(hashes[:-1].tolist(), hashes[1:].tolist(), strict=True))

    # Single rows coincide by chance (few values per column); consecutive real rows never do.
    assert not row_pairs(sample) & row_pairs(real)
    in_real = sample.merge(real.drop_duplicates(), how="inner")
    assert len(in_real) / len(sample) < 0.3
