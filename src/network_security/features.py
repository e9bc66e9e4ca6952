"""Engineered features and feature-vector groups, shared by training and inference.

``engineer_features`` is the one place where engineered features are computed: per row, how
many indicators say suspicious (-1), neutral (0) and legitimate (1). ``IndicatorCountFeatures``
wraps it as a scikit-learn transformer, so it sits inside the model's fitted ``Pipeline`` and
inference applies exactly what training fitted.

``CategoryCodes`` turns the indicator values into non-negative category codes (value + 1, so
-1/0/1 become 0/1/2) for estimators that split on categories (``HistGradientBoostingClassifier``
with ``categorical_features``): the values name a category (phishing-like, suspicious,
legitimate), they are not a scale, and such estimators read negative codes as missing.

``feature_vector_groups`` gives every distinct feature vector one group id. The data set
repeats many feature vectors; keeping each group on one side of a split (or of a CV fold) keeps
copies of training rows out of the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import StratifiedGroupKFold

INDICATOR_COUNTS: dict[str, int] = {
    "n_suspicious_indicators": -1,
    "n_neutral_indicators": 0,
    "n_legitimate_indicators": 1,
}
"""Engineered column name -> the indicator value it counts."""


def engineer_features(frame: pd.DataFrame, feature_columns: Sequence[str]) -> pd.DataFrame:
    """Return the feature columns followed by the engineered indicator counts.

    Args:
        frame: Records with at least ``feature_columns`` (extra columns are dropped).
        feature_columns: The schema's feature columns, in schema order.

    Returns:
        A new frame: ``feature_columns`` then one int64 count column per entry of
        ``INDICATOR_COUNTS``, with the index of ``frame``.

    Raises:
        KeyError: If a feature column is missing from ``frame``.
    """
    columns = _require_columns(frame, feature_columns, "engineer features")
    features = frame[columns]
    values = features.to_numpy()
    counts = np.stack(
        [(values == value).sum(axis=1) for value in INDICATOR_COUNTS.values()], axis=1
    ).astype(np.int64)
    names = [*columns, *INDICATOR_COUNTS]
    if len(set(features.dtypes)) == 1 and values.dtype == np.int64:
        # the usual case (validated int64 records): one block, built without per-column work
        return pd.DataFrame(np.hstack([values, counts]), columns=names, index=frame.index)
    engineered = pd.DataFrame(counts, columns=list(INDICATOR_COUNTS), index=frame.index)
    return pd.concat([features, engineered], axis=1)


class IndicatorCountFeatures(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: the feature columns plus the engineered indicator counts.

    Stateless apart from the column list it records at ``fit``; accepts a DataFrame (columns
    selected by name, extras ignored) and returns a DataFrame, so it composes with any
    estimator in a ``Pipeline``.

    Args:
        feature_columns: The schema's feature columns. When ``None``, every column of the frame
            passed to ``fit`` is used.
    """

    def __init__(self, feature_columns: Sequence[str] | None = None) -> None:
        self.feature_columns = feature_columns

    def fit(self, X: pd.DataFrame, y: object = None) -> IndicatorCountFeatures:
        """Record the input columns; nothing is learnt from the data."""
        frame = _as_frame(X, self.feature_columns)
        self.feature_names_in_ = np.asarray(
            list(self.feature_columns) if self.feature_columns is not None else frame.columns,
            dtype=object,
        )
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return the feature columns followed by the indicator counts."""
        if not hasattr(self, "feature_names_in_"):
            raise RuntimeError("IndicatorCountFeatures is not fitted yet: call fit() first.")
        frame = _as_frame(X, list(self.feature_names_in_))
        return engineer_features(frame, list(self.feature_names_in_))

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the output columns: the feature columns, then the count columns."""
        return np.asarray([*self.feature_names_in_, *INDICATOR_COUNTS], dtype=object)


CATEGORY_OFFSET = 1
"""Added to an indicator value to make its category code: -1/0/1 -> 0/1/2."""


class CategoryCodes(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: ``columns`` + ``CATEGORY_OFFSET``, every other column unchanged.

    Stateless (a constant shift, nothing learnt); returns a DataFrame with the input's columns
    in the input's order, so a following estimator can name its categorical features.

    Args:
        columns: The indicator columns to code (the schema's feature columns).
    """

    def __init__(self, columns: Sequence[str] = ()) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: object = None) -> CategoryCodes:
        """Check that the columns are there; nothing is learnt from the data."""
        frame = _as_frame(X, None)
        _require_columns(frame, self.columns, "make category codes")
        self.feature_names_in_ = np.asarray(list(frame.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return ``X`` with ``CATEGORY_OFFSET`` added to ``columns``."""
        if not hasattr(self, "feature_names_in_"):
            raise RuntimeError("CategoryCodes is not fitted yet: call fit() first.")
        frame = _as_frame(X, list(self.feature_names_in_))
        columns = _require_columns(frame, self.columns, "make category codes")
        if len(set(frame.dtypes)) == 1:  # one block: shift the columns in one numpy pass
            values = frame.to_numpy(copy=True)
            values[:, frame.columns.get_indexer(columns)] += CATEGORY_OFFSET
            return pd.DataFrame(values, columns=frame.columns, index=frame.index)
        coded = frame.copy()
        coded[columns] = frame[columns] + CATEGORY_OFFSET
        return coded

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """The input's column names (codes keep their column's name)."""
        return np.asarray(self.feature_names_in_, dtype=object)


def _as_frame(X: object, feature_columns: Sequence[str] | None) -> pd.DataFrame:
    """Accept a DataFrame, or a 2-D array whose columns follow ``feature_columns``."""
    if isinstance(X, pd.DataFrame):
        return X
    array = np.asarray(X)
    if feature_columns is None or array.ndim != 2 or array.shape[1] != len(feature_columns):
        raise ValueError(
            "The feature transformers need a DataFrame with the feature columns, or (once "
            "fitted) a 2-D array with one column per fitted column (got shape "
            f"{array.shape})."
        )
    return pd.DataFrame(array, columns=list(feature_columns))


def feature_vector_groups(frame: pd.DataFrame, feature_columns: Sequence[str]) -> np.ndarray:
    """One group id per row; rows with identical feature vectors share an id.

    Ids are 0..n_groups-1 in order of first appearance, so the result is deterministic for a
    given row order. Use it as ``groups`` for ``grouped_folds`` (or scikit-learn's group splitters).

    Raises:
        KeyError: If a feature column is missing from ``frame``.
    """
    columns = _require_columns(frame, feature_columns, "group feature vectors")
    if frame.empty:
        return np.zeros(0, dtype=np.int64)
    return frame.groupby(columns, sort=False, dropna=False).ngroup().to_numpy(dtype=np.int64)


def feature_vector_codes(frame: pd.DataFrame, feature_columns: Sequence[str]) -> np.ndarray:
    """A 64-bit code per row that identifies its feature vector (equal vectors, equal codes).

    Unlike ``feature_vector_groups`` the codes do not depend on the rows around them, so the
    vectors a model was fit on can be stored with it and looked up in later data.
    """
    columns = _require_columns(frame, feature_columns, "code feature vectors")
    values = frame[columns].astype("int64")
    return pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)


def grouped_folds(
    frame: pd.DataFrame,
    labels: np.ndarray,
    feature_columns: Sequence[str],
    n_splits: int,
    random_state: int,
    remedy: str = "Ingest more records.",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds in which every distinct feature vector stays on one side: scikit-learn's
    ``StratifiedGroupKFold(n_splits, shuffle=True, random_state)`` over the groups of
    ``feature_vector_groups``.

    The one place the project splits by feature vector: the train/test split takes the first
    fold, model selection cross-validates over all of them.

    Raises:
        ValueError: If there are fewer distinct vectors (or rows of a label) than folds, or
            only one label; the message ends with ``remedy``.
    """
    groups = feature_vector_groups(frame, feature_columns)
    n_groups = len(np.unique(groups))
    values, counts = np.unique(labels, return_counts=True)
    if n_groups < n_splits or len(counts) < 2 or counts.min() < n_splits:
        label_counts = dict(zip(values.tolist(), counts.tolist(), strict=True))
        raise ValueError(
            f"Cannot make {n_splits} stratified folds of {len(frame)} records with {n_groups} "
            f"distinct feature vectors and label counts {label_counts}: both labels are needed, "
            f"with at least {n_splits} distinct vectors and {n_splits} records of each. {remedy}"
        )
    splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=random_state)
    return list(splitter.split(np.zeros((len(labels), 1)), labels, groups))


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], action: str) -> list[str]:
    """``columns`` as a list; KeyError naming the missing ones if ``frame`` lacks any."""
    columns = list(columns)
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise KeyError(
            f"Cannot {action}: {len(missing)} feature column(s) missing from the input frame: "
            f"{missing}. Pass records with every schema feature column."
        )
    return columns
