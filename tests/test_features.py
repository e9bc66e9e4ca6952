"""Tests of the shared feature code: engineered indicator counts and feature-vector groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline

from network_security.features import (
    INDICATOR_COUNTS,
    CategoryCodes,
    IndicatorCountFeatures,
    engineer_features,
    feature_vector_groups,
    grouped_folds,
)

COLUMNS = ["a", "b", "c", "d"]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": [-1, 1, 0, -1],
            "b": [-1, 1, 1, -1],
            "c": [0, 1, -1, 0],
            "d": [1, 1, 0, 1],
            "Result": [-1, 1, 1, -1],
        },
        index=[10, 11, 12, 13],
    )


def test_engineer_features_counts_indicators_per_row(frame):
    engineered = engineer_features(frame, COLUMNS)
    assert list(engineered.columns) == [*COLUMNS, *INDICATOR_COUNTS]
    assert engineered["n_suspicious_indicators"].tolist() == [2, 0, 1, 2]
    assert engineered["n_neutral_indicators"].tolist() == [1, 0, 2, 1]
    assert engineered["n_legitimate_indicators"].tolist() == [1, 4, 1, 1]
    assert (engineered[list(INDICATOR_COUNTS)].sum(axis=1) == len(COLUMNS)).all()
    assert engineered.index.tolist() == frame.index.tolist()
    assert "Result" not in engineered


def test_engineer_features_names_missing_columns(frame):
    with pytest.raises(KeyError, match=r"\['e'\]"):
        engineer_features(frame, [*COLUMNS, "e"])


def test_transformer_matches_the_function_and_ignores_column_order(frame):
    transformer = IndicatorCountFeatures(COLUMNS).fit(frame)
    shuffled = frame[["Result", "d", "c", "b", "a"]]
    pd.testing.assert_frame_equal(
        transformer.transform(shuffled), engineer_features(frame, COLUMNS)
    )
    assert transformer.get_feature_names_out().tolist() == [*COLUMNS, *INDICATOR_COUNTS]
    with pytest.raises(RuntimeError, match="not fitted"):
        IndicatorCountFeatures(COLUMNS).transform(frame)


def test_transformer_accepts_arrays_in_feature_order(frame):
    transformer = IndicatorCountFeatures(COLUMNS).fit(frame)
    from_array = transformer.transform(frame[COLUMNS].to_numpy())
    assert from_array["n_suspicious_indicators"].tolist() == [2, 0, 1, 2]


def test_transformer_works_inside_a_fitted_sklearn_pipeline(frame):
    pipeline = Pipeline(
        [("features", IndicatorCountFeatures(COLUMNS)), ("model", LogisticRegression())]
    )
    fitted = clone(pipeline).fit(frame[COLUMNS], frame["Result"])
    assert fitted.predict(frame[COLUMNS]).tolist() == frame["Result"].tolist()
    assert fitted[:-1].get_feature_names_out().tolist() == [*COLUMNS, *INDICATOR_COUNTS]


def test_category_codes_shift_the_indicators_only(frame):
    engineered = IndicatorCountFeatures(COLUMNS).fit_transform(frame)
    codes = CategoryCodes(COLUMNS).fit(engineered)
    coded = codes.transform(engineered)

    assert list(coded.columns) == [*COLUMNS, *INDICATOR_COUNTS]
    assert coded.index.tolist() == frame.index.tolist()
    assert coded["c"].tolist() == [1, 2, 0, 1]  # -1/0/1 -> 0/1/2
    assert (coded[COLUMNS] >= 0).all().all()
    pd.testing.assert_frame_equal(coded[list(INDICATOR_COUNTS)], engineered[list(INDICATOR_COUNTS)])
    assert engineered["c"].tolist() == [0, 1, -1, 0]  # the input is not modified
    assert codes.get_feature_names_out().tolist() == [*COLUMNS, *INDICATOR_COUNTS]
    from_array = codes.transform(engineered.to_numpy())
    assert from_array["a"].tolist() == [0, 2, 1, 0]
    with pytest.raises(KeyError, match=r"\['e'\]"):
        CategoryCodes([*COLUMNS, "e"]).fit(engineered)
    with pytest.raises(RuntimeError, match="not fitted"):
        CategoryCodes(COLUMNS).transform(engineered)


def test_feature_vector_groups_share_ids_for_identical_vectors(frame):
    doubled = pd.concat([frame, frame.iloc[[1, 0]]], ignore_index=True)
    groups = feature_vector_groups(doubled, COLUMNS)
    assert groups.dtype == np.int64
    # rows 0 and 3 have the same vector; rows 4, 5 repeat rows 1, 0
    assert groups.tolist() == [0, 1, 2, 0, 1, 0]


def test_feature_vector_groups_ignore_the_label_and_handle_empty(frame):
    relabelled = frame.assign(Result=[1, 1, 1, 1])
    assert feature_vector_groups(relabelled, COLUMNS).tolist() == [0, 1, 2, 0]
    assert feature_vector_groups(frame.iloc[:0], COLUMNS).size == 0
    with pytest.raises(KeyError, match="missing"):
        feature_vector_groups(frame, ["zzz"])


@pytest.mark.parametrize(("n_splits", "seed", "fraction"), [(5, 42, 1.0), (3, 0, 0.4), (7, 9, 0.7)])
def test_grouped_folds_are_scikit_learns_stratified_group_folds(
    sample_data_path, n_splits, seed, fraction
):
    records = pd.read_csv(sample_data_path).sample(frac=fraction, random_state=seed)
    records = records.reset_index(drop=True)
    features = [c for c in records.columns if c not in ("index", "Result")]
    labels = records["Result"].to_numpy()
    groups = feature_vector_groups(records, features)
    expected = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(
        records, labels, groups
    )
    folds = grouped_folds(records, labels, features, n_splits, seed)
    assert len(folds) == n_splits
    for (train, test), (expected_train, expected_test) in zip(folds, expected, strict=True):
        np.testing.assert_array_equal(test, expected_test)
        np.testing.assert_array_equal(train, expected_train)
        assert not set(groups[train]) & set(groups[test])  # no vector on both sides
