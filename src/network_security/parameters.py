"""Typed pipeline parameters: how a refused parameter is reported, for every pipeline's model."""

from __future__ import annotations

from pydantic import ValidationError


def describe_errors(section: str, error: ValidationError, source: str) -> str:
    """A pydantic ``ValidationError`` of the parameters ``section`` as one line per problem,
    ``<section>.<key> = <value>: <what is wrong>``, and the file to fix (``source``)."""
    lines = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in (section, *item["loc"]))
        value = "" if item["type"] == "missing" else f" = {item['input']!r}"[:200]
        lines.append(f"  {key}{value}: {item['msg']}")
    return f"Invalid {section} parameters; fix {source} (or the --params override):\n" + "\n".join(
        lines
    )
