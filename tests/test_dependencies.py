"""Dependency floors without known vulnerabilities, and the tested constraints file CI installs."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
FLOORS = {"starlette": "0.49.1", "python-multipart": "0.0.18", "jinja2": "3.1.6"}


def requirements() -> list[Requirement]:
    listed = [*PYPROJECT["dependencies"]]
    for extra in PYPROJECT["optional-dependencies"].values():
        listed += extra
    return [Requirement(r) for r in listed if not r.startswith(PYPROJECT["name"])]


def constraints() -> dict[str, Version]:
    pins = {}
    for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


@pytest.mark.parametrize(("name", "floor"), FLOORS.items())
def test_the_service_declares_floors_past_the_known_vulnerabilities(name, floor):
    declared = [r for r in requirements() if canonicalize_name(r.name) == name]
    assert declared, f"{name} is not declared in pyproject.toml"
    below = Version(floor).release[:-1] + (Version(floor).release[-1] - 1,)
    for requirement in declared:
        assert requirement.specifier.contains(floor), requirement
        assert not requirement.specifier.contains(".".join(map(str, below))), requirement
    assert Version(metadata.version(name)) >= Version(floor)  # and this environment has them


def test_constraints_pin_every_dependency_within_what_pyproject_allows():
    pins = constraints()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            requirement,
            pins[name],
        )
    for name, floor in FLOORS.items():
        assert pins[name] >= Version(floor)


def test_ci_installs_with_the_constraints():
    script = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert re.search(r'pip install .*-e "\.\[dev\]" -c constraints\.txt', script)
