"""MLflow packaging of the project's models.

- ``PhishingPyfuncModel`` wraps a ``PhishingModel`` as an MLflow pyfunc model: a DataFrame of
  feature columns in, a DataFrame with ``prediction`` (coded like ``Result``) and
  ``phishing_probability`` out, using the model's own decision threshold.
- ``pip_requirements()`` pins the libraries a logged model needs, from the installed versions.
  Passing them explicitly spares MLflow a requirement-inference subprocess per logged model (a
  few seconds each). The models unpickle classes of this package, so loading one also needs
  ``network_security`` importable (``pip install -e .`` in the project, or
  ``mlflow models serve --env-manager local`` from the project environment).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from network_security.model import PhishingModel

RUNTIME_DISTRIBUTIONS: tuple[str, ...] = (
    "mlflow",
    "cloudpickle",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "kedro",
    "kedro-datasets",
    "kedro-mlflow",
)
"""The distributions a logged model imports when it is loaded and used."""


def pip_requirements() -> list[str]:
    """``name==version`` for each installed distribution of ``RUNTIME_DISTRIBUTIONS``."""
    pinned = []
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            pinned.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pinned


class PhishingPyfuncModel(PythonModel):
    """A ``PhishingModel`` as an MLflow pyfunc model."""

    def __init__(self, model: PhishingModel) -> None:
        self.model = model

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        """``prediction`` (phishing/legitimate label) and ``phishing_probability`` per row."""
        frame = pd.DataFrame(model_input)
        probability = self.model.phishing_probability(frame)
        prediction = np.where(
            probability >= self.model.threshold,
            self.model.phishing_label,
            self.model.legitimate_label,
        )
        return pd.DataFrame(
            {"prediction": prediction.astype("int64"), "phishing_probability": probability},
            index=frame.index,
        )
