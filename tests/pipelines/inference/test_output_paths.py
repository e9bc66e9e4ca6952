"""Output paths never delete data: ``kedro run --pipeline inference`` with either engine writes
over an earlier output of that engine only, and refuses any other existing path intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.io import DatasetError

from network_security.datasets.output_paths import MANIFEST, OutputPathError


def cause(error: BaseException) -> OutputPathError:
    current: BaseException | None = error
    while current is not None and not isinstance(current, OutputPathError):
        current = current.__cause__
    assert current is not None, f"no OutputPathError behind {error!r}"
    return current


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def project(kedro_project: Path, write_champion) -> Path:
    write_champion(kedro_project)
    return kedro_project


@pytest.fixture
def sites(tmp_path: Path, new_sites) -> Path:
    path = tmp_path / "sites.csv"
    new_sites(60, seed=3).to_csv(path, index=False)
    return path


def dask_params(cluster: str, source: Path, output: Path) -> dict[str, str]:
    return {
        "inference_engine": "dask",
        "dask_scheduler": cluster,
        "inference_input_path": str(source),
        "inference_output_path": str(output),
    }


def test_a_folder_of_other_files_survives_both_engines_intact(
    project, run_kedro, sites, dask_cluster, tmp_path
):
    folder = tmp_path / "data"  # what a mistyped output path may point at
    (folder / "mongo").mkdir(parents=True)
    (folder / "mongo" / "collection-0.wt").write_bytes(bytes(range(256)) * 8)
    (folder / "06_models").mkdir()
    (folder / "06_models" / "champion.pkl").write_bytes(b"\x80\x05model")
    (folder / "notes.txt").write_text("keep me\n")
    before = snapshot(folder)

    with pytest.raises(DatasetError) as pandas_error:
        run_kedro(
            project,
            "inference",
            {"inference_input_path": str(sites), "inference_output_path": str(folder)},
        )
    message = str(cause(pandas_error.value))
    assert message.startswith(f"{folder} is a folder")
    assert "Nothing was written or deleted" in message and "Errno" not in message
    assert snapshot(folder) == before

    with pytest.raises(DatasetError) as dask_error:
        run_kedro(project, "inference", dask_params(dask_cluster, sites, folder))
    message = str(cause(dask_error.value))
    assert message.startswith(f"{folder} is a folder that is not an earlier output")
    assert "'06_models', 'mongo', 'notes.txt'" in message
    assert "Nothing was written or deleted" in message
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "project", "sites.csv"]


def test_a_file_is_never_replaced_by_the_dask_engine_s_folder(
    project, run_kedro, sites, dask_cluster
):
    before = sites.read_bytes()
    with pytest.raises(DatasetError) as error:
        run_kedro(project, "inference", dask_params(dask_cluster, sites, sites))
    assert str(cause(error.value)).startswith(f"{sites} is a file")
    assert sites.read_bytes() == before


def test_an_earlier_dask_output_is_replaced_but_not_once_it_holds_another_file(
    project, run_kedro, sites, dask_cluster, tmp_path
):
    output = tmp_path / "scored_parquet"
    output.mkdir()  # an empty folder is taken as it is
    for _ in range(2):
        run_kedro(project, "inference", dask_params(dask_cluster, sites, output))
        manifest = json.loads((output / MANIFEST).read_text())
        assert manifest["engine"] == "dask" and manifest["rows"] == 60
        assert sorted(p.name for p in output.iterdir()) == sorted([*manifest["parts"], MANIFEST])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "scored_parquet", "sites.csv"]

    (output / "report.xlsx").write_bytes(b"an analyst's own file")
    before = snapshot(output)
    with pytest.raises(DatasetError) as error:
        run_kedro(project, "inference", dask_params(dask_cluster, sites, output))
    assert "not an earlier output of the dask engine" in str(cause(error.value))
    assert "'report.xlsx'" in str(cause(error.value))
    assert snapshot(output) == before


def test_replacing_removes_only_the_listed_parts_of_the_earlier_output(
    tmp_path, monkeypatch, caplog
):
    import fsspec

    from network_security.datasets import output_paths

    fs = fsspec.filesystem("file")
    target, new = tmp_path / "out", tmp_path / ".out.partial"
    for folder, text in ((target, "old"), (new, "new")):
        folder.mkdir()
        (folder / "part.00000.parquet").write_text(text)
        output_paths.write_manifest(fs, str(folder), "dask", {"part.00000.parquet": 1})
    listed = output_paths.earlier_output(fs, str(target), str(target), "dask")
    assert listed == [MANIFEST, "part.00000.parquet"]
    # a file written into the earlier output after it was checked, before it is replaced
    monkeypatch.setattr(output_paths, "earlier_output", lambda *args: listed)
    (target / "late.csv").write_text("an analyst's file")
    output_paths.replace_folder(fs, str(new), str(target), str(target), "dask")
    assert (target / "part.00000.parquet").read_text() == "new"
    kept = tmp_path / ".out.partial.previous"
    assert sorted(p.name for p in kept.iterdir()) == ["late.csv"]
    assert (kept / "late.csv").read_text() == "an analyst's file"
    assert "files appeared in the earlier output" in caplog.text
