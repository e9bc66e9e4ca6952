"""The champion as the service holds it: the one champion path, refreshed off the request path.

``refresh()`` calls ``network_security.champion.load_champion`` (registry alias -> atomic local
cache -> model), the path the catalog's ``champion_model`` takes. Requests only read the model
in memory: when ``refresh_seconds`` have passed, ``current()`` starts one refresh in a background
thread, so a promotion (a training run, an alias moved by hand) is served without a restart. A
champion that cannot be loaded leaves the previous one in place, reported in ``last_error``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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


class ChampionStore:
    """Thread-safe holder of the champion at ``path`` (its cache) and ``tracking_uri``."""

    def __init__(self, path: Path, tracking_uri: str | None, refresh_seconds: float = 30.0) -> None:
        self.path, self.tracking_uri, self.refresh_seconds = (
            Path(path),
            tracking_uri,
            refresh_seconds,
        )
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
                self.last_error = str(error)
                logger.error("Could not load the champion (registry %s): %s; keeping the model in "
                             "memory.", redact(self.tracking_uri), error)  # fmt: skip
                return self._loaded
            finally:
                self._checked_at, self._refreshing = time.monotonic(), False
            self.last_error = None
            loaded = self._loaded
            if champion is not None and (
                loaded is None
                or (loaded.version, loaded.model.trained_at)
                != (champion.version, champion.model.trained_at)
            ):
                champion.model.compiled  # noqa: B018 - compile now, not on the first request
                now = datetime.now(UTC).isoformat(timespec="seconds")
                self._loaded = LoadedModel(champion.model, champion.version, champion.origin, now)
                logger.info("Serving champion version %s (from the %s).", champion.version,
                            champion.origin)  # fmt: skip
            return self._loaded
