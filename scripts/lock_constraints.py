"""Write constraints.txt: the exact versions of everything ``network_security[dev]`` installs.

``.ci/run`` installs the project with ``pip install -e ".[dev]" -c constraints.txt``, so CI tests
the versions pinned here, and a new release of any dependency (direct or transitive) cannot
change what CI installs until this file is regenerated. The pins are read from the current
environment: install the project first, check that the tests pass, then::

    python scripts/lock_constraints.py            # rewrite constraints.txt
    python scripts/lock_constraints.py --check    # exit 1 when it is out of date

Only the project's own dependency tree is written (found through the installed packages'
metadata, markers evaluated for this interpreter), never the rest of the environment.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = PROJECT_ROOT / "constraints.txt"
EXTRAS = ("dev",)
NOT_PINNED = {"pip", "setuptools", "wheel"}  # the installer's own tools
HEADER = """\
# Exact versions of everything `pip install -e ".[dev]"` installs, tested together by CI
# (.ci/run installs with `-c constraints.txt`). Generated from a working environment by
# `python scripts/lock_constraints.py`; regenerate it after changing dependencies.
# Python {python}.
"""


def _project_requirements() -> tuple[str, list[Requirement], dict[str, list[Requirement]]]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    table = project["project"]
    extras = {
        canonicalize_name(name): [Requirement(r) for r in requirements]
        for name, requirements in table.get("optional-dependencies", {}).items()
    }
    return canonicalize_name(table["name"]), [Requirement(r) for r in table["dependencies"]], extras


def _applies(requirement: Requirement, extra: str = "") -> bool:
    if requirement.marker is None:
        return True
    return requirement.marker.evaluate({**default_environment(), "extra": extra})


def dependency_closure() -> dict[str, str]:
    """``{canonical name: installed version}`` of the project's dependency tree with EXTRAS."""
    name, requirements, extras = _project_requirements()
    pending: list[tuple[Requirement, str]] = [(r, "") for r in requirements]
    wanted_extras = set(EXTRAS)
    while wanted_extras:  # the project's extras may name the project itself (dev -> service)
        extra = wanted_extras.pop()
        for requirement in extras.get(canonicalize_name(extra), []):
            if canonicalize_name(requirement.name) == name:
                wanted_extras |= set(requirement.extras)
            else:
                pending.append((requirement, extra))
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement, extra = pending.pop()
        if not _applies(requirement, extra):
            continue
        key = canonicalize_name(requirement.name)
        if (key, frozenset(requirement.extras)) in seen:
            continue
        seen.add((key, frozenset(requirement.extras)))
        try:
            distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(
                f"{requirement.name} (needed by the project) is not installed: install the "
                'project first (pip install -e ".[dev]"), then run this script again.'
            ) from None
        pins[key] = distribution.version
        for sub in distribution.requires or []:
            sub_requirement = Requirement(sub)
            if sub_requirement.marker is None or any(
                _applies(sub_requirement, wanted) for wanted in ("", *requirement.extras)
            ):
                pending.append((sub_requirement, ""))
    return {k: v for k, v in pins.items() if k not in NOT_PINNED and k != name}


def render(pins: dict[str, str]) -> str:
    python = ".".join(str(part) for part in sys.version_info[:2])
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    return HEADER.format(python=python) + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if constraints.txt differs")
    parser.add_argument("--output", type=Path, default=CONSTRAINTS)
    options = parser.parse_args(argv)
    text = render(dependency_closure())
    if options.check:
        current = options.output.read_text(encoding="utf-8") if options.output.exists() else ""
        if current != text:
            sys.stderr.write(
                f"{options.output} is out of date with this environment; run "
                "`python scripts/lock_constraints.py` to regenerate it.\n"
            )
            return 1
        return 0
    options.output.write_text(text, encoding="utf-8")
    sys.stdout.write(f"Wrote {options.output} ({text.count('==')} pins)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
