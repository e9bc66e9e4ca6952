"""Datasets that put trained models into the MLflow model registry, and hold the champion.

``MlflowRegisteredModelDataset`` (catalog entry ``candidate_model``)
    ``save({"model": PhishingModel, "input_example": DataFrame, "tags": {...}})`` logs the model
    into the active MLflow run as a pyfunc model with a signature and the input example,
    registers it as a new version of ``registered_model_name`` (one version per training run),
    tags that version, sets ``model.version`` to the version number and pickles the model at
    ``filepath``. ``load()`` returns that pickled, versioned ``PhishingModel``; it never talks to
    MLflow, so kedro-mlflow's ``pipeline_ml_factory`` can package the file with the inference
    pipeline.

``MlflowChampionDataset`` (catalog entry ``champion_model``)
    ``save({"promote": bool, "model": PhishingModel, "reason": str})`` pickles the model at
    ``filepath`` and points the registry alias (``champion``) at ``model.version`` when
    ``promote`` is true; otherwise it changes nothing (the file keeps the current champion, so a
    model that failed its quality gate or did not beat the champion never replaces it).
    ``load()`` returns the champion ``PhishingModel``, or ``None`` when there is none yet.

Both follow kedro-mlflow's convention for datasets whose name starts with ``Mlflow``: when
tracking is disabled for a pipeline, ``_logging_activated`` is false and they only write the
local file.
"""

from __future__ import annotations

import logging
from copy import copy
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.pickle import PickleDataset

from network_security.model import PhishingModel

logger = logging.getLogger(__name__)

UNREGISTERED = "unregistered"


def _check_model(model: Any, dataset: str) -> PhishingModel:
    if not isinstance(model, PhishingModel):
        raise DatasetError(
            f"{dataset} expects a PhishingModel under 'model', got {type(model).__name__}; "
            "check the node that produces it."
        )
    return model


class _PickledModelDataset(AbstractDataset[dict[str, Any], Any]):
    """What both datasets share: a pickled ``PhishingModel`` at ``filepath`` tied to a
    registered MLflow model, with kedro-mlflow's ``_logging_activated`` switch."""

    def __init__(
        self,
        filepath: str,
        registered_model_name: str,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = PurePosixPath(filepath)
        self._registered_model_name = registered_model_name
        self._logging_activated = True
        self.metadata = metadata

    @property
    def _pickle(self) -> PickleDataset:
        return PickleDataset(filepath=str(self._filepath))

    def _exists(self) -> bool:
        return self._pickle.exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "registered_model_name": self._registered_model_name,
        }


class MlflowRegisteredModelDataset(_PickledModelDataset):
    """Log and register a ``PhishingModel`` in MLflow; keep the versioned model in a pickle.

    Args:
        filepath: Where the registered (versioned) model is pickled.
        registered_model_name: The MLflow registered model to add a version to.
        artifact_name: The model's name inside the run (``runs:/<run id>/<artifact_name>``).
        pip_requirements: Requirements recorded with the model; by default the installed
            versions of ``network_security.mlflow_models.RUNTIME_DISTRIBUTIONS``.
        metadata: Kedro metadata (kedro-viz layer), unused by the dataset.
    """

    def __init__(
        self,
        filepath: str,
        registered_model_name: str,
        artifact_name: str = "phishing_model",
        pip_requirements: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath, registered_model_name, metadata)
        self._artifact_name = artifact_name
        self._pip_requirements = pip_requirements

    def load(self) -> PhishingModel:
        """The model the last training run registered (read from ``filepath``)."""
        return self._pickle.load()

    def save(self, data: dict[str, Any]) -> None:
        """Log + register ``data["model"]`` (see the module docstring), then pickle it."""
        model = _check_model(data.get("model"), "MlflowRegisteredModelDataset")
        model = copy(model)
        if self._logging_activated:
            model.version, run_id = self._log_and_register(
                model, data.get("input_example"), data.get("tags") or {}
            )
            model.params = {
                **model.params,
                "mlflow_run_id": run_id,
                "registered_model_name": self._registered_model_name,
            }
        else:
            logger.info("MLflow tracking is disabled: the model is saved locally, unregistered.")
            model.version = UNREGISTERED
        self._pickle.save(model)

    def _log_and_register(
        self, model: PhishingModel, input_example: pd.DataFrame | None, tags: dict[str, Any]
    ) -> tuple[str, str]:
        import mlflow
        from mlflow.models import infer_signature

        from network_security.mlflow_models import PhishingPyfuncModel, pip_requirements

        run = mlflow.active_run()
        if run is None:
            raise DatasetError(
                "No active MLflow run to log the model into: run the training pipeline through "
                "`kedro run` (kedro-mlflow starts the run), or disable tracking for it in "
                "conf/base/mlflow.yml."
            )
        python_model = PhishingPyfuncModel(model)
        signature = None
        if input_example is not None:
            signature = infer_signature(input_example, python_model.predict(None, input_example))
        info = mlflow.pyfunc.log_model(
            name=self._artifact_name,
            python_model=python_model,
            signature=signature,
            input_example=input_example,
            registered_model_name=self._registered_model_name,
            pip_requirements=self._pip_requirements or pip_requirements(),
        )
        version = info.registered_model_version
        if version is None:
            raise DatasetError(
                f"MLflow logged the model but did not register a version of "
                f"'{self._registered_model_name}'; check that the tracking store "
                f"({mlflow.get_tracking_uri()}) supports the model registry (a database or a "
                "tracking server, not a plain ./mlruns folder)."
            )
        client = mlflow.MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(self._registered_model_name, version, key, str(value))
        logger.info(
            "Registered version %s of model '%s' (run %s, artifact '%s').",
            version,
            self._registered_model_name,
            run.info.run_id,
            self._artifact_name,
        )
        return str(version), run.info.run_id

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "artifact_name": self._artifact_name}


class MlflowChampionDataset(_PickledModelDataset):
    """The champion model: a pickle at ``filepath`` plus a registry alias on its version.

    Args:
        filepath: The champion's pickle (what inference and the service load).
        registered_model_name: The MLflow registered model that carries the alias.
        alias: The registry alias of the champion.
        metadata: Kedro metadata (kedro-viz layer), unused by the dataset.
    """

    def __init__(
        self,
        filepath: str,
        registered_model_name: str,
        alias: str = "champion",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath, registered_model_name, metadata)
        self._alias = alias

    def load(self) -> PhishingModel | None:
        """The champion, or ``None`` when no model has been promoted yet."""
        pickle = self._pickle
        return pickle.load() if pickle.exists() else None

    def save(self, data: dict[str, Any]) -> None:
        """Promote ``data["model"]`` when ``data["promote"]``; otherwise keep the champion."""
        if not data.get("promote", False):
            logger.info("Champion unchanged: %s", data.get("reason", "not promoted"))
            return
        model = _check_model(data.get("model"), "MlflowChampionDataset")
        self._pickle.save(model)
        if self._logging_activated and model.version != UNREGISTERED:
            import mlflow

            mlflow.MlflowClient().set_registered_model_alias(
                self._registered_model_name, self._alias, model.version
            )
            logger.info(
                "Promoted version %s of '%s' to alias '%s': %s",
                model.version,
                self._registered_model_name,
                self._alias,
                data.get("reason", ""),
            )
        else:
            logger.info("Promoted an unregistered model (MLflow tracking is disabled).")

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "alias": self._alias}
