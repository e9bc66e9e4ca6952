"""``EngineDataset``: one of several dataset definitions, chosen by an engine name at run time.

The inference pipeline reads and writes through the pandas engine (a chunked CSV stream) by
default and through the Dask engine (tables in, Parquet parts out, on a cluster) on request:

    inference_batch:
      type: network_security.datasets.EngineDataset
      engine: ${runtime_params:inference_engine, ${globals:inference_engine}}
      parameter: inference_engine
      datasets:
        pandas: {type: network_security.datasets.chunked_csv.ChunkedCSVDataset, ...}
        dask: {type: network_security.datasets.dask_datasets.DaskTableDataset, ...}

Only the chosen definition is built (so the pandas engine never imports Dask); load, save,
exists and the kedro-viz preview go to it.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import TablePreview

from network_security.errors import ParameterError


class EngineDataset(AbstractDataset[Any, Any]):
    """Delegate to the dataset definition of the chosen engine."""

    def __init__(
        self,
        engine: str,
        datasets: dict[str, dict[str, Any]],
        parameter: str = "engine",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Build the chosen engine's dataset.

        Args:
            engine: The engine to use, a key of ``datasets``.
            datasets: Dataset definitions (catalog entries) by engine name.
            parameter: The run-time parameter that sets ``engine``, for messages.
            metadata: Free-form metadata (kedro-viz layer, preview args).
        """
        engine = str(engine).strip().lower()
        if engine not in datasets:
            raise ParameterError(
                f"Unknown {parameter} {engine!r}: choose one of {sorted(datasets)} "
                f"(--params {parameter}=NAME)."
            )
        self._engine = engine
        self._dataset = AbstractDataset.from_config(engine, dict(datasets[engine]))
        self.metadata = metadata

    @property
    def engine(self) -> str:
        """The chosen engine."""
        return self._engine

    def load(self) -> Any:
        return self._dataset.load()

    def save(self, data: Any) -> None:
        self._dataset.save(data)

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"engine": self._engine, "dataset": self._dataset._describe()}

    def preview(self, *args: Any, **kwargs: Any) -> TablePreview:
        """The chosen dataset's kedro-viz preview (a table for every engine of this project)."""
        preview = getattr(self._dataset, "preview", None)
        if preview is None:
            raise DatasetError(f"The {self._engine} dataset has no preview.")
        return preview(*args, **kwargs)
