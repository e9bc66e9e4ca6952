"""The champion as the service holds it: through the one champion path, refreshed off the hot path.

``ChampionStore.refresh()`` calls ``network_security.champion.load_champion`` (registry alias ->
atomic local cache -> model), the same path the inference pipeline's ``champion_model`` dataset
takes. Requests only read the model in memory: when ``refresh_seconds`` have passed since the
last look, ``current()`` starts one refresh in a background thread, so a promotion made by a
training run (or an alias moved by hand in the registry) is picked up without a restart and
without a registry call on the request path. A champion that cannot be loaded leaves the
previous model in place and is reported in ``last_error``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from network_security.champion import ChampionError, load_champion
from network_security.model import PhishingModel
from network_security.sanitize import redact

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A champion in memory: the model, its registry version, where it came from and when."""

    model: PhishingModel
    version: str
    origin: str
    loaded_at: str


def project_tracking_uri(mlflow_config: dict[str, Any], project_path: Path) -> str:
    """The project's MLflow store (conf ``mlflow.yml``), with a relative SQLite path made
    absolute against the project, as ``kedro run`` in the project folder sees it."""
    uri = str((mlflow_config.get("server") or {}).get("mlflow_tracking_uri") or "mlruns")
    parsed = urlparse(uri)
    if (
        parsed.scheme == "sqlite"
        and uri.startswith("sqlite:///")
        and not uri.startswith("sqlite:////")
    ):
        return f"sqlite:///{(project_path / uri.removeprefix('sqlite:///')).as_posix()}"
    if parsed.scheme == "" and not Path(uri).is_absolute():
        return (project_path / uri).as_uri()
    return uri


class ChampionStore:
    """Thread-safe holder of the champion, read through the one champion path.

    Args:
        path: The local cache of the champion (``data/06_models/champion.pkl``).
        tracking_uri: The MLflow store holding the registered model and its alias.
        refresh_seconds: How often ``current()`` looks for a newly promoted champion.
    """

    def __init__(self, path: Path, tracking_uri: str | None, refresh_seconds: float = 30.0) -> None:
        self.path = Path(path)
        self.tracking_uri = tracking_uri
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._checked_at = float("-inf")
        self._refreshing = False
        self.last_error: str | None = None

    def current(self) -> LoadedModel | None:
        """The champion in memory; starts a background refresh when one is due."""
        if time.monotonic() - self._checked_at >= self.refresh_seconds and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self.refresh, name="champion-refresh", daemon=True).start()
        return self._loaded

    def refresh(self) -> LoadedModel | None:
        """Ask the champion path for the champion now; keep the old one if that fails."""
        with self._lock:
            try:
                champion = load_champion(self.path, self.tracking_uri)
            except ChampionError as error:
                self.last_error = f"{error}"
                logger.error(
                    "Could not load the champion (registry %s): %s; keeping the model in memory.",
                    redact(self.tracking_uri), error,
                )  # fmt: skip
                return self._loaded
            finally:
                self._checked_at = time.monotonic()
                self._refreshing = False
            self.last_error = None
            if champion is None:
                return self._loaded
            loaded = self._loaded
            if loaded is None or (loaded.version, loaded.model.trained_at) != (
                champion.version,
                champion.model.trained_at,
            ):
                champion.model.compiled  # noqa: B018 - compile now, not on the first request
                self._loaded = LoadedModel(
                    model=champion.model,
                    version=champion.version,
                    origin=champion.origin,
                    loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
                )
                logger.info(
                    "Serving champion version %s (from the %s).", champion.version, champion.origin
                )
            return self._loaded
