"""Dependency floors without known vulnerabilities, and the tested constraints file CI installs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
FLOORS = {
    "starlette": "1.3.1",
    "python-multipart": "0.0.31",
    "h11": "0.16.0",
    "mlflow": "3.11.1",
    "jinja2": "3.1.6",
}
"""The first release past each published advisory of a direct dependency (or of h11, uvicorn's)."""


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
def test_pyproject_declares_floors_past_the_known_vulnerabilities(name, floor):
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


@pytest.mark.slow
def test_pip_audit_finds_no_known_vulnerability_in_the_pinned_versions(tmp_path):
    report = tmp_path / "audit.json"
    command = [
        sys.executable, "-m", "pip_audit", "--requirement", str(PROJECT_ROOT / "constraints.txt"),
        "--no-deps", "--disable-pip", "--progress-spinner", "off", "--format", "json",
        "--output", str(report),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert report.exists(), result.stderr[-2000:]
    dependencies = json.loads(report.read_text())["dependencies"]
    skipped = {d["name"]: d["skip_reason"] for d in dependencies if d.get("skip_reason")}
    if len(skipped) == len(dependencies):  # nothing could be looked up: no answer either way
        pytest.skip(
            "pip-audit reached none of PyPI's per-release advisory data from here "
            f"({next(iter(skipped.values()))})"
        )
    found = {d["name"]: [v["id"] for v in d["vulns"]] for d in dependencies if d.get("vulns")}
    assert found == {}, f"pinned versions with advisories (bump them in constraints.txt): {found}"
    assert skipped == {}, f"pinned versions pip-audit could not check: {skipped}"
