"""MLflow packaging of the project's models.

- ``pip_requirements()`` pins the libraries a logged model needs, from the installed versions.
  Passing them explicitly spares MLflow a requirement-inference subprocess per logged model (a
  few seconds each). The models unpickle classes of this package, so loading one also needs
  ``network_security`` importable (``pip install -e .`` in the project, or
  ``mlflow models serve --env-manager local`` from the project environment).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

RUNTIME_DISTRIBUTIONS: tuple[str, ...] = (
    "mlflow",
    "cloudpickle",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "numba",
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
