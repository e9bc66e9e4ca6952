"""The model object that training produces and inference and the service consume.

A ``PhishingModel`` bundles the fitted scikit-learn pipeline (any fitted transform, such as the
engineered indicator counts, lives inside it, so inference applies exactly what training
fitted), the decision threshold chosen on cross-validated predictions, and the provenance a
security analyst needs next to a verdict (version, training time, test metrics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class PhishingModel:
    """A fitted phishing classifier with its decision threshold and provenance."""

    estimator: Any
    feature_columns: list[str]
    phishing_label: int = -1
    legitimate_label: int = 1
    threshold: float = 0.5
    version: str = "unversioned"
    trained_at: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    drift_reference: dict[str, Any] | None = None
    """Category frequencies of each feature in the records it was fit on (``drift``)."""
    fitted_vector_codes: np.ndarray | None = None
    """``features.feature_vector_codes`` of the rows the estimator was fit on (sorted, unique):
    promotion compares models only on feature vectors neither has been fit on."""

    def has_seen(self, codes: np.ndarray) -> np.ndarray:
        """For each feature-vector code, whether the estimator was fit on that vector.

        A model that does not record what it was fit on (older pickles) reports ``False``.
        """
        if self.fitted_vector_codes is None:
            return np.zeros(len(codes), dtype=bool)
        return np.isin(codes, self.fitted_vector_codes, assume_unique=False)

    def phishing_probability(self, features: pd.DataFrame) -> np.ndarray:
        """P(phishing) for each row of ``features`` (columns in any order, extras ignored)."""
        proba = self.estimator.predict_proba(features[self.feature_columns])
        column = list(self.estimator.classes_).index(self.phishing_label)
        return proba[:, column]

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Labels in the coding of ``Result``: phishing when P(phishing) >= threshold."""
        probability = self.phishing_probability(features)
        return np.where(probability >= self.threshold, self.phishing_label, self.legitimate_label)
