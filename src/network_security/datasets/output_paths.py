"""Output paths that never delete data: what an engine may replace, and how it replaces it.

An output dataset replaces only what it wrote before. The Dask engine writes a folder of Parquet
parts and, last, a manifest (``_manifest.json``) naming the engine and every part; a folder is an
earlier output of that engine when its manifest says so and it holds exactly the parts the
manifest lists. Such a folder (or an empty one) is replaced once the new output is complete;
anything else (a folder of other files, a file where a folder goes, a folder where a CSV file
goes) is refused with ``OutputPathError`` before anything is written, and nothing is deleted.

Replacing moves the earlier output aside, moves the new one into place, then removes the earlier
output's listed files one by one and its (then empty) folder: a file that appeared meanwhile is
never deleted, the folder holding it is left beside the output with a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import fsspec
from kedro.io import DatasetError

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
"""The file an engine writes last into an output folder: the engine and the parts it wrote."""
_SHOWN = 3


class OutputPathError(DatasetError):
    """An output path that holds something a run must not replace; nothing was written or
    deleted. The message names the path, what it holds and what to do."""


def refuse_folder(path: Path, engine: str) -> None:
    """Refuse a folder as the path of an engine's one output file."""
    if path.is_dir():
        raise OutputPathError(
            f"{path} is a folder: the {engine} engine writes its output to one CSV file and "
            "never into or over a folder. Nothing was written or deleted. Set the output path "
            "(inference_output_path for the inference pipeline) to a CSV file path, such as "
            "data/07_model_output/predictions.csv, and run again."
        )


def _name(path: str) -> str:
    return path.rstrip("/").rpartition("/")[2]


def _manifest(fs: fsspec.AbstractFileSystem, folder: str) -> dict[str, Any] | None:
    try:
        with fs.open(f"{folder}/{MANIFEST}", "rb") as handle:
            manifest = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def earlier_output(fs: fsspec.AbstractFileSystem, target: str, url: str, engine: str) -> list[str]:
    """The files that replacing ``target`` removes: none when it does not exist or is an empty
    folder, the listed files of an earlier output of ``engine``.

    Raises:
        OutputPathError: When ``target`` is a file, or a folder that is not an earlier output of
            ``engine`` (naming what it holds).
    """
    if not fs.exists(target):
        return []
    what_to_do = (
        "Nothing was written or deleted. Set the output path (inference_output_path for the "
        "inference pipeline) to a new or empty folder, such as "
        "data/07_model_output/predictions_parquet, and run again."
    )
    if not fs.isdir(target):
        raise OutputPathError(
            f"{url} is a file: the {engine} engine writes a folder of Parquet parts and never "
            f"replaces a file. {what_to_do}"
        )
    entries = {_name(e["name"]): e["type"] for e in fs.ls(target, detail=True)}
    if not entries:
        return []
    manifest = _manifest(fs, target)
    if manifest is None or manifest.get("engine") != engine:
        others = sorted(entries)
        reason = f"it has no {MANIFEST} of the {engine} engine"
    else:
        listed = {str(name) for name in manifest.get("parts", [])} | {MANIFEST}
        others = sorted(n for n, kind in entries.items() if n not in listed or kind != "file")
        reason = "it holds what the engine did not write"
    if others:
        shown = ", ".join(repr(n) for n in others[:_SHOWN])
        shown += ", ..." if len(others) > _SHOWN else ""
        raise OutputPathError(
            f"{url} is a folder that is not an earlier output of the {engine} engine ({reason}: "
            f"{shown}). {what_to_do}"
        )
    return sorted(entries)


def write_manifest(
    fs: fsspec.AbstractFileSystem, folder: str, engine: str, parts: dict[str, int]
) -> None:
    """Mark ``folder`` as an output of ``engine`` holding ``parts`` (file name -> rows)."""
    manifest = {"engine": engine, "rows": sum(parts.values()), "parts": parts}
    with fs.open(f"{folder}/{MANIFEST}", "wb") as handle:
        handle.write(json.dumps(manifest, indent=1).encode())


def replace_folder(
    fs: fsspec.AbstractFileSystem, temporary: str, target: str, url: str, engine: str
) -> None:
    """Move the complete new output ``temporary`` to ``target``, replacing only an earlier
    output of ``engine`` (or an empty folder); see the module docstring."""
    removed = earlier_output(fs, target, url, engine)  # again: the folder may have changed
    if not fs.exists(target):
        fs.mv(temporary, target, recursive=True)
        return
    previous = f"{temporary}.previous"
    fs.mv(target, previous, recursive=True)
    try:
        fs.mv(temporary, target, recursive=True)
    except BaseException:
        fs.mv(previous, target, recursive=True)
        raise
    for name in removed:
        fs.rm_file(f"{previous}/{name}")
    with contextlib.suppress(OSError):  # only an empty folder goes (object stores have none)
        fs.rmdir(previous)
    if fs.exists(previous):
        logger.warning(
            "Left %s: files appeared in the earlier output %s while this run wrote; move them "
            "and remove the folder.",
            previous,
            url,
        )
