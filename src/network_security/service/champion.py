"""The champion model as the service holds it: loaded once, reloaded when the file changes.

The champion is ``data/06_models/champion.pkl``, a ``PhishingModel`` pickled by kedro-datasets'
``PickleDataset``; it is loaded through that dataset. Each request costs one ``stat`` of the file:
when its modification time or size changed (a training run promoted a new champion), the model
is loaded again. A file that cannot be loaded (for example while it is being written) leaves the
previous model in place and is tried again on the next request.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kedro_datasets.pickle import PickleDataset

from network_security.model import PhishingModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A champion in memory, with the file state it was loaded from."""

    model: PhishingModel
    fingerprint: tuple[int, int]
    loaded_at: str


def _fingerprint(path: Path) -> tuple[int, int] | None:
    """``(mtime_ns, size)`` of ``path``, or None when it does not exist."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class ChampionStore:
    """Thread-safe holder of the champion model found at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._failed: tuple[int, int] | None = None
        self.last_error: str | None = None

    def current(self) -> LoadedModel | None:
        """The champion, reloaded first if the file changed since it was loaded."""
        fingerprint = _fingerprint(self.path)
        loaded = self._loaded
        if fingerprint is None:
            return loaded
        if (
            loaded is not None and loaded.fingerprint == fingerprint
        ) or fingerprint == self._failed:
            return loaded
        return self.refresh()

    def refresh(self) -> LoadedModel | None:
        """Load the file if it exists and differs from the model in memory."""
        with self._lock:
            fingerprint = _fingerprint(self.path)
            if fingerprint is None:
                if self._loaded is None:
                    self.last_error = None
                return self._loaded
            if self._loaded is not None and self._loaded.fingerprint == fingerprint:
                return self._loaded
            try:
                model = PickleDataset(filepath=str(self.path)).load()
                if not isinstance(model, PhishingModel):
                    raise TypeError(
                        f"it holds a {type(model).__name__}, not a "
                        "network_security.model.PhishingModel"
                    )
            except Exception as error:  # noqa: BLE001 - any unreadable file keeps the old model
                self._failed = fingerprint
                self.last_error = f"Could not load the champion model {self.path}: {error}"
                logger.error("%s; keeping the model in memory (if any).", self.last_error)
                return self._loaded
            self._failed = None
            self.last_error = None
            self._loaded = LoadedModel(
                model=model,
                fingerprint=fingerprint,
                loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            logger.info("Loaded champion model version %s from %s", model.version, self.path)
            return self._loaded
