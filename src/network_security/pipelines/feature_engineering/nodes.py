"""Nodes of the feature_engineering pipeline: a leak-free, stratified train/test split.

About half the rows of the phishing data set repeat another row's feature vector. A random
split puts copies of training rows into the test set and inflates every score, so the split
keeps every distinct feature vector (a group) on one side and stratifies by label. Engineered
features are not materialised here: they are computed by ``network_security.features`` inside
the model's pipeline, so training and inference share one implementation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from network_security.features import feature_vector_groups, grouped_folds
from network_security.parameters import describe_errors
from network_security.schema import Schema, feature_columns, record_columns, target_column

logger = logging.getLogger(__name__)


class SplitParams(BaseModel):
    """``feature_engineering.split`` (conf/base/parameters_feature_engineering.yml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    test_size: float = Field(gt=0, le=0.5)
    random_state: int

    @classmethod
    def parse(cls, split_params: Mapping[str, Any]) -> SplitParams:
        """The split parameters, validated; ``ValueError`` naming each bad key and value."""
        try:
            return cls.model_validate(dict(split_params))
        except ValidationError as error:
            raise ValueError(
                describe_errors(
                    "feature_engineering.split",
                    error,
                    "conf/base/parameters_feature_engineering.yml",
                )
            ) from None


def split_train_test(
    validated_records: pd.DataFrame, schema: Schema, split_params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and test with no feature vector on both sides, stratified by label.

    Uses ``StratifiedGroupKFold`` with ``round(1 / test_size)`` folds (groups = distinct
    feature vectors, shuffled with ``random_state``) and takes one fold as the test set, so
    the test fraction is ``1 / n_splits`` (0.2 -> 5 folds -> 20%).

    Returns:
        ``(train, test)``: the schema's features and target, int64, fresh indexes.

    Raises:
        ValueError: If the parameters are not valid (``test_size`` in (0, 0.5]), or there are
            too few distinct feature vectors per label to split.
    """
    split = SplitParams.parse(split_params)
    n_splits = max(2, round(1 / split.test_size))
    features = feature_columns(schema)
    target = target_column(schema)
    records = validated_records[record_columns(schema)].reset_index(drop=True)
    labels = records[target].to_numpy()
    folds = grouped_folds(
        records,
        labels,
        features,
        n_splits,
        split.random_state,
        "Ingest more records or raise test_size.",
    )
    train_index, test_index = folds[0]
    n_groups = len(np.unique(feature_vector_groups(records, features)))
    train = records.iloc[train_index].reset_index(drop=True).astype("int64")
    test = records.iloc[test_index].reset_index(drop=True).astype("int64")
    logger.info(
        "Split %d records (%d distinct feature vectors) into train %d / test %d (%.1f%% test, "
        "target %.1f%%); no feature vector on both sides.",
        len(records),
        n_groups,
        len(train),
        len(test),
        100 * len(test) / len(records),
        100 * split.test_size,
    )
    return train, test


def summarize_split(
    model_input_train: pd.DataFrame, model_input_test: pd.DataFrame, schema: Schema
) -> dict[str, Any]:
    """Sizes, label balance and distinct vectors per side, and the vectors shared (must be 0).

    Raises:
        ValueError: If a feature vector is on both sides (the split leaked).
    """
    features = feature_columns(schema)
    target = target_column(schema)
    shared = (
        model_input_train[features]
        .drop_duplicates()
        .merge(model_input_test[features].drop_duplicates(), on=features, how="inner")
    )
    if len(shared):
        raise ValueError(
            f"The train/test split leaked: {len(shared)} feature vectors are on both sides."
        )

    def side(frame: pd.DataFrame) -> dict[str, Any]:
        return {
            "rows": len(frame),
            "distinct_feature_vectors": int(len(frame[features].drop_duplicates())),
            "labels": {
                str(k): int(v) for k, v in frame[target].value_counts().sort_index().items()
            },
            "phishing_fraction": round(
                float((frame[target] == schema["target"]["phishing"]).mean()), 6
            )
            if len(frame)
            else None,
        }

    total = len(model_input_train) + len(model_input_test)
    return {
        "train": side(model_input_train),
        "test": side(model_input_test),
        "test_fraction": round(len(model_input_test) / total, 6) if total else None,
        "shared_feature_vectors": 0,
    }
