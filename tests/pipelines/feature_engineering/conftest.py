"""Fixtures for the feature_engineering tests: the real schema and a record factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from network_security.schema import allowed_values, record_key_column, target_column, target_values

CONF = Path(__file__).resolve().parents[3] / "conf" / "base"


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    """The schema from conf/base/parameters.yml (the one the pipelines use)."""
    return yaml.safe_load((CONF / "parameters.yml").read_text())["schema"]


@pytest.fixture
def make_records(schema: dict[str, Any]) -> Callable[..., pd.DataFrame]:
    """``make_records(n, seed=0)``: n valid records (int64) with unique keys, random values."""

    def make(n: int, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        data: dict[str, Any] = {
            record_key_column(schema): [f"key-{seed}-{i:06d}" for i in range(n)]
        }
        for name, values in allowed_values(schema).items():
            data[name] = rng.choice(values, size=n).astype("int64")
        data[target_column(schema)] = rng.choice(target_values(schema), size=n).astype("int64")
        return pd.DataFrame(data)

    return make
