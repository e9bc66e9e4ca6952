"""The source stays readable: no function in ``src/`` runs past 60 lines, and ruff's complexity
and size rules (C901, PLR0912, PLR0915) are on for the whole project."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60


def _long_functions() -> list[str]:
    found = []
    for path in sorted((PROJECT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    where = path.relative_to(PROJECT)
                    found.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_src_is_longer_than_60_lines() -> None:
    assert _long_functions() == []


def test_ruff_checks_complexity_branches_and_statements() -> None:
    config = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    selected = set(config["tool"]["ruff"]["lint"]["select"])
    assert {"C901", "PLR0912", "PLR0915"} <= selected
