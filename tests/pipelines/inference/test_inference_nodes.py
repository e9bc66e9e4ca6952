"""Nodes of the inference pipeline, and the pipeline run on a catalog of real files: a DataFrame
gives a DataFrame, a chunk stream gives a lazy stream, and both give the same predictions."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner

from network_security.pipelines.inference import create_pipeline
from network_security.pipelines.inference.nodes import (
    check_inference_batch,
    score_inference_batch,
)
from network_security.reasons import REASONS_COLUMN
from network_security.scoring import (
    OUTPUT_COLUMNS,
    ChunkStream,
    InputValidationError,
    score_frame,
)

TYPE = "network_security.datasets.chunked_csv.ChunkedCSVDataset"


def test_a_frame_is_checked_and_scored_eagerly(new_sites, schema, phishing_model, scoring):
    sites = new_sites(200)
    checked = check_inference_batch(sites.astype(str), schema)
    scored = score_inference_batch(checked, phishing_model, scoring, schema)
    assert isinstance(scored, pd.DataFrame)
    assert list(scored.columns) == [*sites.columns, *OUTPUT_COLUMNS, REASONS_COLUMN]
    pd.testing.assert_frame_equal(scored, score_frame(phishing_model, sites, scoring))


def test_a_stream_is_mapped_lazily(new_sites, schema, phishing_model, scoring):
    sites = new_sites(200).astype(str)
    sites.loc[150, "Iframe"] = "maybe"
    consumed: list[int] = []

    def chunks():
        for start in range(0, 200, 50):
            consumed.append(start)
            yield sites.iloc[start : start + 50]

    stream = score_inference_batch(
        check_inference_batch(ChunkStream(chunks(), "s.csv"), schema),
        phishing_model,
        scoring,
        schema,
    )
    assert isinstance(stream, ChunkStream) and consumed == []  # nothing read yet
    results = iter(stream)
    assert len(next(results)) == 50 and consumed == [0]
    with pytest.raises(InputValidationError, match="s.csv: column 'Iframe', row 151"):
        list(results)


def test_scoring_without_a_champion_says_to_train_first(new_sites, schema, scoring):
    checked = check_inference_batch(new_sites(5), schema)
    with pytest.raises(ValueError, match="kedro run --pipeline training"):
        score_inference_batch(checked, None, scoring, schema)
    with pytest.raises(TypeError, match="not a PhishingModel"):
        score_inference_batch(checked, {"not": "a model"}, scoring, schema)


def run_on_files(input_path, output_path, chunksize, model, schema, scoring) -> None:
    """Run the inference pipeline on a catalog shaped like conf/base/catalog.yml."""
    catalog = DataCatalog.from_config(
        {
            "inference_batch": {
                "type": TYPE,
                "filepath": str(input_path),
                "chunksize": chunksize,
                "load_args": {"dtype": "object", "keep_default_na": False},
            },
            "inference.checked_inference_batch": {"type": "MemoryDataset", "copy_mode": "assign"},
            "inference_predictions": {"type": TYPE, "filepath": str(output_path)},
        }
    )
    catalog["champion_model"] = MemoryDataset(model, copy_mode="assign")
    catalog["params:schema"] = MemoryDataset(schema)
    catalog["params:scoring"] = MemoryDataset(scoring)
    SequentialRunner().run(create_pipeline(), catalog)


def test_chunked_scoring_of_a_file_equals_unchunked(
    tmp_path, new_sites, schema, phishing_model, scoring
):
    sites = new_sites(2000, seed=4)
    sites.insert(1, "ticket", [f"T-{i:06d}" if i % 9 else "" for i in range(len(sites))])
    source = tmp_path / "batch.csv"
    sites.to_csv(source, index=False)
    for chunksize in (None, 2000, 333, 64):
        run_on_files(
            source, tmp_path / f"out_{chunksize}.csv", chunksize, phishing_model, schema, scoring
        )
    whole = (tmp_path / "out_None.csv").read_bytes()
    for chunksize in (2000, 333, 64):
        assert (tmp_path / f"out_{chunksize}.csv").read_bytes() == whole
    scored = pd.read_csv(tmp_path / "out_64.csv", keep_default_na=False, dtype={"ticket": str})
    assert len(scored) == 2000
    assert scored["url"].tolist() == sites["url"].tolist()
    assert scored["ticket"].tolist() == sites["ticket"].tolist()  # blanks stay blank


def test_a_bad_row_in_a_late_chunk_leaves_no_output(
    tmp_path, new_sites, schema, phishing_model, scoring
):
    sites = new_sites(1000).astype(str)
    sites.loc[917, "Page_Rank"] = "9"
    source = tmp_path / "batch.csv"
    sites.to_csv(source, index=False)
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as caught:
        run_on_files(source, out / "p.csv", 100, phishing_model, schema, scoring)
    error = caught.value.__cause__
    assert isinstance(error, InputValidationError)
    assert (error.column, error.row, error.value) == ("Page_Rank", 918, "9")
    assert "column 'Page_Rank', row 918: value '9' is not an allowed value" in str(caught.value)
    assert not out.exists() or list(out.iterdir()) == []
