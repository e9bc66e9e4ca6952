"""The inference pipeline: a value outside the schema's allowed values, whatever its size or
type, stops the run with an error naming the column, row and value, and no predictions are
written."""

from __future__ import annotations

import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner

from network_security.pipelines.inference import create_pipeline
from network_security.scoring import InputValidationError
from network_security.validator import MAX_NUMBER_CHARACTERS

TYPE = "network_security.datasets.chunked_csv.ChunkedCSVDataset"


@pytest.mark.parametrize(
    "cell",
    [
        "18446744073709551615",
        "9223372036854775808",
        "-9223372036854775809",
        "340282366920938463463374607431768211457",
        "2",
        "2.0",
        "1e300",
        "0.5",
        "True",
        "one",
    ],
)
def test_a_value_outside_the_domain_stops_the_run_naming_column_row_and_value(
    tmp_path, new_sites, schema, phishing_model, scoring, cell
):
    sites = new_sites(500).astype(str)
    sites["Favicon"] = "1"
    sites.loc[321, "Favicon"] = cell
    source = tmp_path / "batch.csv"
    sites.to_csv(source, index=False)
    catalog = DataCatalog.from_config(
        {
            "inference_batch": {"type": TYPE, "filepath": str(source), "chunksize": 200},
            "inference.checked_inference_batch": {"type": "MemoryDataset", "copy_mode": "assign"},
            "inference_predictions": {"type": TYPE, "filepath": str(tmp_path / "out" / "p.csv")},
        }
    )
    catalog["champion_model"] = MemoryDataset(phishing_model, copy_mode="assign")
    catalog["params:schema"] = MemoryDataset(schema)
    catalog["params:scoring"] = MemoryDataset(scoring)
    with pytest.raises(DatasetError) as caught:
        SequentialRunner().run(create_pipeline(), catalog)
    error = caught.value.__cause__
    assert isinstance(error, InputValidationError)
    assert (error.column, error.row, error.value) == ("Favicon", 322, cell)
    shown = cell[:MAX_NUMBER_CHARACTERS]  # an overlong cell is named by its start and length
    assert f"column 'Favicon', row 322: value '{shown}'" in str(caught.value)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
