"""The champion in memory, from the one champion path (``network_security.champion``),
refreshed in a background thread every ``refresh_seconds`` so a promotion is served without a
restart; one that cannot be loaded leaves the previous in place. ``last_error`` is what the
service may tell clients (no file path, no exception text); the log has the details."""

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
        self._lock, self._checked_at, self._refreshing = threading.Lock(), float("-inf"), False
        self._loaded: LoadedModel | None = None
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
                self.last_error = error.public  # shown to clients: no path, no exception text
                logger.error(
                    "Could not load the champion (registry %s): %s; keeping the model in memory.",
                    redact(self.tracking_uri),
                    error,
                )
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
                logger.info("Serving champion %s (from the %s).", champion.version, champion.origin)
            return self._loaded
