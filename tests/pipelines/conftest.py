"""In-memory wiring of the pipelines (the ``test_wiring.py`` of each pipeline).

Each wiring test builds one pipeline with its ``create_pipeline()``, gives it a ``DataCatalog``
of ``MemoryDataset``s (its free inputs, small synthetic data from ``scripts/synthetic.py``, and
the project's real parameters from conf/base) and runs it in-process with Kedro's
``SequentialRunner``: no database server, no MLflow store, no files. The end-to-end runs on the
real server stay in each pipeline's ``test_*pipeline*.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner
from synthetic import sample_records  # scripts/synthetic.py (pytest pythonpath)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class KeptMemoryDataset(MemoryDataset):
    """A ``MemoryDataset`` the runner cannot empty, so the test can read every intermediate."""

    def _release(self) -> None:
        """Keep the data (the runner releases intermediates once their consumers have run)."""


@pytest.fixture(scope="session")
def project_config() -> dict[str, Any]:
    """The project's parameters and catalog as ``kedro run`` resolves them from conf/base."""
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base"
    )
    return {"parameters": loader["parameters"], "catalog": loader["catalog"]}


@pytest.fixture(scope="session")
def synthetic_profile() -> dict[str, Any]:
    """The committed summary statistics the synthetic generator samples from."""
    return json.loads((PROJECT_ROOT / "conf" / "base" / "synthetic_profile.json").read_text())


@pytest.fixture
def synthetic_records(
    synthetic_profile: dict[str, Any], schema: dict[str, Any]
) -> Callable[..., pd.DataFrame]:
    """``make(n_rows, seed)``: synthetic records (features and ``Result``, int64)."""

    def make(n_rows: int, seed: int = 0, *, with_target: bool = True) -> pd.DataFrame:
        return sample_records(synthetic_profile, schema, n_rows, seed, with_target=with_target)

    return make


def _parameter(parameters: dict[str, Any], name: str) -> Any:
    """The value of ``params:a.b.c`` in the loaded parameters."""
    value: Any = parameters
    for key in name.removeprefix("params:").split("."):
        value = value[key]
    return value


def _copy_mode(catalog_config: dict[str, Any], name: str) -> str | None:
    """The copy mode conf/base gives dataset ``name`` (streams are passed on, never copied)."""
    entry = catalog_config.get(name)
    return entry.get("copy_mode") if isinstance(entry, dict) else None


@pytest.fixture
def run_in_memory(project_config: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """``run(pipeline, inputs, parameters=None) -> {dataset: data}`` for every dataset it wrote.

    ``inputs`` must name exactly the pipeline's free inputs that are not parameters (a wiring
    change that adds or renames one fails here); parameters come from conf/base, with
    ``parameters`` (``{"params:...": value}``) replacing some of them. Every dataset the
    pipeline writes is a ``MemoryDataset`` (with the copy mode conf/base gives it) whose data
    is returned, intermediates included.
    """

    def run(
        pipeline: Pipeline,
        inputs: dict[str, Any],
        parameters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        free = {name for name in pipeline.inputs() if not name.startswith("params:")}
        assert set(inputs) == free, f"the pipeline's free inputs are {sorted(free)}"
        overrides = parameters or {}
        catalog_config = project_config["catalog"]
        catalog = DataCatalog()
        for name in pipeline.inputs():
            if name.startswith("params:"):
                value = overrides.get(name, _parameter(project_config["parameters"], name))
                catalog[name] = MemoryDataset(value)
            else:
                catalog[name] = MemoryDataset(inputs[name], copy_mode="assign")
        written = sorted(pipeline.all_outputs())
        for name in written:
            catalog[name] = KeptMemoryDataset(copy_mode=_copy_mode(catalog_config, name))
        SequentialRunner().run(pipeline, catalog)
        return {name: catalog.load(name) for name in written}

    return run
