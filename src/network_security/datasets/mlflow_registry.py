"""Datasets for the model a training run produces and for the champion in use.

``MlflowRegisteredModelDataset`` (catalog entry ``candidate_model``)
    ``save(PhishingModel)`` stamps the model with the registry version it is
    about to receive and the MLflow run id, then pickles it at ``filepath``. The file is the
    model inside the inference pipeline that kedro-mlflow's ``pipeline_ml_factory`` logs and
    registers as a new version of ``registered_model_name`` when the run ends, so the
    ``model_version`` column of every prediction names that registered version.
    ``load()`` returns the pickled model; it never talks to MLflow.

``ChampionDataset`` (catalog entry ``champion_model``)
    ``load()`` returns the champion ``PhishingModel`` through the one champion path
    (``network_security.champion.load_champion``: registry alias -> verified local cache), or
    ``None`` when there is none yet. It is read-only: a training run promotes after kedro-mlflow has
    registered its model (``network_security.hooks.PromotionHook``).

Both follow kedro-mlflow's convention for datasets whose class name starts with ``Mlflow``:
when tracking is disabled for a pipeline, ``_logging_activated`` is false and the candidate is
stamped ``unregistered``.
"""

from __future__ import annotations

import logging
from copy import copy
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.pickle import PickleDataset

from network_security.champion import (
    CHAMPION_ALIAS,
    REGISTERED_MODEL_NAME,
    ChampionError,
    check_registered_version,
    load_champion,
    promote,
    tag_registered_version,
)
from network_security.model import PhishingModel

logger = logging.getLogger(__name__)

UNREGISTERED = "unregistered"


def next_registered_version(tracking_uri: str | None, registered_model_name: str) -> str:
    """The version number the registry gives the next version of ``registered_model_name``.

    MLflow numbers the versions of a registered model max + 1 (1 for the first). Training runs
    hold a lock that spans processes, and the promotion step checks the number it got.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        versions = client.search_model_versions(f"name='{registered_model_name}'")
    except MlflowException:
        versions = []
    return str(max((int(v.version) for v in versions), default=0) + 1)


class MlflowRegisteredModelDataset(AbstractDataset[PhishingModel, PhishingModel]):
    """The model a training run registers, pickled at ``filepath`` with its version stamped.

    Args:
        filepath: Where the model is pickled (logged with the inference pipeline).
        registered_model_name: The registered MLflow model the run adds a version to.
        metadata: Kedro metadata (kedro-viz layer), unused by the dataset.
    """

    def __init__(
        self,
        filepath: str,
        registered_model_name: str = REGISTERED_MODEL_NAME,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = PurePosixPath(filepath)
        self._registered_model_name = registered_model_name
        self._logging_activated = True
        self.metadata = metadata

    @property
    def _pickle(self) -> PickleDataset:
        return PickleDataset(filepath=str(self._filepath))

    def load(self) -> PhishingModel:
        """The model this project's last training run produced."""
        return self._pickle.load()

    def save(self, data: PhishingModel) -> None:
        """Stamp ``data`` with its coming registry version and run id, then pickle it."""
        if not isinstance(data, PhishingModel):
            raise DatasetError(
                "MlflowRegisteredModelDataset expects a PhishingModel, got "
                f"{type(data).__name__}; check the node that produces 'candidate_model'."
            )
        model = copy(data)
        if self._logging_activated:
            import mlflow

            run = mlflow.active_run()
            if run is None:
                raise DatasetError(
                    "No active MLflow run to register the model in: run the training pipeline "
                    "through `kedro run` (kedro-mlflow starts the run), or disable tracking for "
                    "it in conf/base/mlflow.yml."
                )
            model.version = next_registered_version(
                mlflow.get_tracking_uri(), self._registered_model_name
            )
            model.params = {
                **model.params,
                "mlflow_run_id": run.info.run_id,
                "registered_model_name": self._registered_model_name,
            }
        else:
            logger.info("MLflow tracking is disabled: the model is saved locally, unregistered.")
            model.version = UNREGISTERED
        self._pickle.save(model)

    def _exists(self) -> bool:
        return self._pickle.exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "registered_model_name": self._registered_model_name,
        }


class ChampionDataset(AbstractDataset[None, PhishingModel | None]):
    """The champion in use, read through the one champion path (registry alias -> verified cache).

    Args:
        filepath: The local cache of the champion (written atomically and signed by the
            champion path).
        registered_model_name: The registered MLflow model that carries the alias.
        alias: The registry alias of the champion.
        tracking_uri: The MLflow store; by default the one kedro-mlflow set for the session.
        metadata: Kedro metadata (kedro-viz layer), unused by the dataset.
    """

    def __init__(
        self,
        filepath: str,
        registered_model_name: str = REGISTERED_MODEL_NAME,
        alias: str = CHAMPION_ALIAS,
        tracking_uri: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = PurePosixPath(filepath)
        self._registered_model_name = registered_model_name
        self._alias = alias
        self._tracking_uri = tracking_uri
        self.metadata = metadata

    def load(self) -> PhishingModel | None:
        """The champion, or ``None`` when no model has been promoted yet."""
        try:
            champion = load_champion(
                Path(self._filepath),
                self._resolved_tracking_uri(),
                self._registered_model_name,
                self._alias,
            )
        except ChampionError as error:
            raise DatasetError(str(error)) from error
        return None if champion is None else champion.model

    def commit_promotion(self, model: PhishingModel, decision: dict[str, Any]) -> str:
        """After kedro-mlflow registered ``model``: check and tag its version, then promote it
        if ``decision["promote"]``. Returns ``promoted`` or ``not_promoted``."""
        tracking_uri = self._resolved_tracking_uri()
        if model.version != UNREGISTERED:
            check_registered_version(model, tracking_uri, self._registered_model_name)
            tag_registered_version(model, tracking_uri, self._registered_model_name)
        if not decision.get("promote"):
            logger.info("Champion unchanged: %s", decision.get("reason", "not promoted"))
            return "not_promoted"
        promote(model, Path(self._filepath), tracking_uri, self._registered_model_name, self._alias)
        logger.info("Version %s is the champion: %s", model.version, decision.get("reason", ""))
        return "promoted"

    def record_outcome(self, model: PhishingModel, outcome: str, reason: str) -> None:
        """Record the promotion outcome as tags of the model's MLflow run (when it has one)."""
        run_id = model.params.get("mlflow_run_id")
        if not run_id or model.version == UNREGISTERED:
            return
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=self._resolved_tracking_uri())
        for key, value in {
            "promotion.outcome": outcome,
            "promotion.version": str(model.version),
            "promotion.reason": reason[:5000],
        }.items():
            client.set_tag(run_id, key, value)

    def _resolved_tracking_uri(self) -> str:
        import mlflow

        return self._tracking_uri or mlflow.get_tracking_uri()

    def save(self, data: None) -> None:
        raise DatasetError(
            "'champion_model' is read-only: a training run promotes its model after kedro-mlflow "
            "has registered it (see network_security.hooks.PromotionHook)."
        )

    def _exists(self) -> bool:
        return Path(self._filepath).exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "registered_model_name": self._registered_model_name,
            "alias": self._alias,
        }
