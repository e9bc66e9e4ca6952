"""The model object that training produces and inference and the service consume.

A ``PhishingModel`` bundles the fitted scikit-learn pipeline (any fitted transform, such as the
engineered indicator counts, lives inside it, so inference applies exactly what training
fitted), the decision threshold chosen on cross-validated predictions, and the provenance a
security analyst needs next to a verdict (version, training time, test metrics).

Its probabilities come from a compiled form of the fitted estimator
(``network_security.tree_predictor``), derived from the estimator the first time it is needed and
never pickled, so every pickle (old ones included) loads as it is. The compiled form is used only
once it has given the estimator's own ``predict_proba`` numbers (within 1e-9) on reference rows;
otherwise (a model it does not support, a scikit-learn release that changed what it reads)
``predict_proba`` scores the model, with one warning.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from network_security.tree_predictor import MAX_VARIANTS, CompiledPredictor, verified_predictor

_COMPILE_LOCK = threading.Lock()
_NOT_COMPILED = "_compiled"  # instance attribute holding the compiled form (or False)


def flags_phishing(probability: np.ndarray | Sequence[float], threshold: float) -> np.ndarray:
    """The decision rule, the one place it is written: phishing when P(phishing) >= threshold.

    Training (the threshold search, the metrics, the CV scores), the registered model, the
    inference pipeline and the service all decide through this function.
    """
    return np.asarray(probability, dtype=np.float64) >= threshold


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
    operating_points: dict[str, float] | None = None
    """Where the decisions change (``pipelines.training.decisions``): ``allow`` when
    P(phishing) < ``allow_below``, ``block`` when P > ``block_above``, else ``review``; with
    the error budget and the expected rates. Older pickles have none: scoring then uses the
    threshold for both points (``scoring.operating_points_of``)."""
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

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (and copy) the fields only: the compiled form is derived again when needed."""
        state = dict(self.__dict__)
        state.pop(_NOT_COMPILED, None)
        return state

    @property
    def compiled(self) -> CompiledPredictor | None:
        """The compiled predictor of ``estimator`` (built and checked against ``predict_proba`` on
        first access), or ``None`` when it cannot be built or differs (then ``predict_proba`` is
        used; logged once)."""
        compiled = self.__dict__.get(_NOT_COMPILED)
        if compiled is None:
            with _COMPILE_LOCK:
                compiled = self.__dict__.get(_NOT_COMPILED)
                if compiled is None:
                    compiled = self._compile()
                    self.__dict__[_NOT_COMPILED] = compiled
        return compiled or None

    def _compile(self) -> CompiledPredictor | bool:
        compiled = verified_predictor(
            self.estimator,
            self.feature_columns,
            self.phishing_label,
            f"Model {self.version}",
            self.drift_reference,
        )
        return compiled or False

    def phishing_probability_of_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """P(phishing) per row of a numeric matrix whose columns are ``feature_columns``."""
        compiled = self.compiled
        if compiled is not None:
            return compiled.phishing_probability(matrix)
        frame = pd.DataFrame(matrix, columns=self.feature_columns, copy=False)
        return self._estimator_probability(frame)

    def phishing_probability_of_variants(
        self, matrix: np.ndarray, variants: np.ndarray
    ) -> np.ndarray:
        """P(phishing) of the variants (rows, variants, columns) of each row of ``matrix``:
        shape (rows, variants); the compiled predictor shares the tree walks of a row's
        variants (``CompiledPredictor.phishing_probability_of_variants``)."""
        compiled = self.compiled
        if compiled is not None and variants.shape[1] <= MAX_VARIANTS:
            return compiled.phishing_probability_of_variants(matrix, variants)
        flat = variants.reshape(-1, variants.shape[2])
        return self.phishing_probability_of_matrix(flat).reshape(variants.shape[:2])

    def phishing_probability(self, features: pd.DataFrame, compiled: bool = True) -> np.ndarray:
        """P(phishing) for each row of ``features`` (columns in any order, extras ignored).

        ``compiled=False`` scores with the estimator's own ``predict_proba``, the same
        probabilities: for a model scored once (training's evaluation), where compiling it
        (numba's start-up, about 0.7 s in a fresh process) costs more than it saves.
        """
        selected = features[self.feature_columns]
        if not compiled:
            return self._estimator_probability(selected)
        predictor = self.compiled
        if predictor is not None and all(
            pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            for dtype in selected.dtypes
        ):
            matrix = selected.to_numpy(dtype=np.float64, na_value=np.nan)
            if not np.isnan(matrix).any():  # missing values: the estimator's own rules
                return predictor.phishing_probability(matrix)
        return self._estimator_probability(selected)

    def _estimator_probability(self, frame: pd.DataFrame) -> np.ndarray:
        proba = self.estimator.predict_proba(frame)
        column = list(self.estimator.classes_).index(self.phishing_label)
        return proba[:, column]

    def predict(self, features: pd.DataFrame, compiled: bool = True) -> np.ndarray:
        """Labels in the coding of ``Result``: phishing when P(phishing) >= threshold
        (``compiled``: see ``phishing_probability``)."""
        probability = self.phishing_probability(features, compiled=compiled)
        phishing = flags_phishing(probability, self.threshold)
        return np.where(phishing, self.phishing_label, self.legitimate_label)
