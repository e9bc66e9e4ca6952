"""``OptionalDataset``: a dataset that may not exist yet (the first run of a project).

It wraps any Kedro dataset definition. Loading returns the wrapped dataset's data when it
exists and ``None`` otherwise, so a node can tell "no drift reference / no champion yet" from
its input instead of reading files itself. Saving is passed through unchanged.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset


class OptionalDataset(AbstractDataset[Any, Any]):
    """Load the wrapped dataset if it exists, else ``None``; save through to it."""

    def __init__(
        self,
        dataset: dict[str, Any],
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        config = dict(dataset)
        if credentials is not None:
            config["credentials"] = credentials
        self._dataset = AbstractDataset.from_config("wrapped", config)
        self.metadata = metadata

    def load(self) -> Any:
        return self._dataset.load() if self._dataset.exists() else None

    def save(self, data: Any) -> None:
        self._dataset.save(data)

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe()}
