"""Fixtures for the validation tests: the project's real schema and record factories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CONF = Path(__file__).resolve().parents[3] / "conf" / "base"


@pytest.fixture
def validation_params() -> dict[str, Any]:
    """conf/base/parameters_validation.yml, freshly loaded so tests may edit it."""
    return yaml.safe_load((CONF / "parameters_validation.yml").read_text())["validation"]
