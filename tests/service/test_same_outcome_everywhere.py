"""The same CSV gets the same outcome at every entry point (the one validator).

For each of eight 40-row CSVs built here from the committed synthetic sample:
``kedro run --pipeline inference`` (a KedroSession on a temporary project copy), the Dask
engine's reader and check, and ``POST /predict`` with the CSV as an upload through the real app
either all accept the file or all reject it naming the altered column. Ingestion
(``kedro run --pipeline ingestion``, the same rows with ``Result``, into the test server) reads
the header and the cells the same way: it refuses what cannot be read (a repeated column, a
cell that is not a number), and lands a missing cell (empty, ``NA``) or a value outside the
allowed set (``2``) as it is, for the validation pipeline's pandera schema to quarantine.
"""

from __future__ import annotations

import html
from typing import Any

import dask
import pandas as pd
import pytest
import yaml
from kedro.io import DatasetError

from network_security.datasets import MongoDataset
from network_security.datasets.dask_datasets import DaskTableDataset
from network_security.pipelines.inference.nodes import check_inference_batch
from network_security.pipelines.validation.nodes import find_schema_violations
from network_security.schema import feature_columns, target_column
from network_security.validator import InputValidationError

ALTERED = "SSLfinal_State"
ROW = 5  # the data row whose cell is altered (1-based)

# case -> (edit, outcome at inference and the service, ingestion's outcome, the stored value,
#          validation's check on the stored row)
#   outcome: "accept" or "reject" (naming ALTERED); ingestion: "accept" or "reject"
CASES: dict[str, tuple[str, str, str, Any, str | None]] = {
    "repeated header column": ("repeat", "reject", "reject", None, None),
    "NA in a cell": ("cell:NA", "reject", "accept", None, "not_nullable"),
    "empty cell": ("cell:", "reject", "accept", None, "not_nullable"),
    "1.0 in a cell": ("cell:1.0", "accept", "accept", 1, None),
    "2 in a cell": ("cell:2", "reject", "accept", 2, "allowed_values"),
    "abc in a cell": ("cell:abc", "reject", "reject", None, None),
    "spaces around a header name": ("spaces", "accept", "accept", "as read", None),
    "UTF-8 BOM": ("bom", "accept", "accept", "as read", None),
}


def build_csv(rows: pd.DataFrame, edit: str) -> bytes:
    """The rows as CSV text with one alteration (to the header, a cell or the encoding)."""
    lines = rows.to_csv(index=False).splitlines()
    header = lines[0].split(",")
    at = header.index(ALTERED)
    if edit == "repeat":
        lines = [f"{line},{line.split(',')[at]}" for line in lines]
    elif edit == "spaces":
        header[at] = f"  {ALTERED} "
        lines[0] = ",".join(header)
    elif edit.startswith("cell:"):
        cells = lines[ROW].split(",")
        cells[at] = edit.removeprefix("cell:")
        lines[ROW] = ",".join(cells)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return b"\xef\xbb\xbf" + data if edit == "bom" else data


def rejected_column(error: BaseException) -> str | None:
    """The column named by the ``InputValidationError`` behind ``error`` (or ``None``)."""
    current: BaseException | None = error
    while current is not None and not isinstance(current, InputValidationError):
        current = current.__cause__
    assert current is not None, f"no InputValidationError behind {error!r}"
    assert current.column and current.column in str(error)
    return current.column


@pytest.fixture(scope="module")
def rows(sample_data: pd.DataFrame, schema: dict) -> pd.DataFrame:
    """40 rows of the synthetic sample: the features then the label."""
    columns = [*feature_columns(schema), target_column(schema)]
    rows = sample_data.sample(40, random_state=10)[columns].reset_index(drop=True)
    rows.loc[ROW - 1, ALTERED] = 1  # so that writing "1.0" into that cell leaves its value alone
    return rows


@pytest.mark.parametrize("case", CASES)
def test_inference_dask_and_the_service_agree_and_ingestion_reads_alike(  # noqa: PLR0913, PLR0915
    case,
    rows,
    schema,
    champion,
    write_champion,
    client,
    kedro_project,
    run_kedro,
    mongo_uri,
    mongo_database,
    tmp_path,
):
    edit, outcome, ingested, stored, quarantined = CASES[case]
    features = rows[feature_columns(schema)]
    data = build_csv(features, edit)
    source = tmp_path / "batch.csv"
    source.write_bytes(data)
    write_champion(champion, kedro_project / "data" / "06_models" / "champion.pkl")

    # kedro run --pipeline inference (pandas engine)
    target = tmp_path / "predictions.csv"
    params = {"inference_input_path": str(source), "inference_output_path": str(target)}
    if outcome == "accept":
        run_kedro(kedro_project, "inference", params)
        scored = pd.read_csv(target)
        assert len(scored) == 40
        pd.testing.assert_frame_equal(scored[list(features.columns)], features)
    else:
        with pytest.raises((InputValidationError, DatasetError)) as caught:
            run_kedro(kedro_project, "inference", params)
        assert rejected_column(caught.value) == ALTERED
        assert str(source) in str(caught.value)
        assert not target.exists()

    # the Dask engine: its reader and the same check, partition by partition
    with dask.config.set(scheduler="synchronous"):
        if outcome == "accept":
            checked = check_inference_batch(DaskTableDataset(str(source)).load(), schema)
            pd.testing.assert_frame_equal(
                checked.compute().reset_index(drop=True), features, check_dtype=False
            )
        else:
            with pytest.raises(InputValidationError) as caught:
                check_inference_batch(DaskTableDataset(str(source)).load(), schema).compute()
            assert rejected_column(caught.value) == ALTERED

    # POST /predict with the CSV as an upload, through the real app
    response = client.post(
        "/predict",
        files={"file": ("batch.csv", data, "text/csv")},
        headers={"Accept": "application/json"},
    )
    if outcome == "accept":
        assert response.status_code == 200, response.text
        expected = pd.read_csv(target)["phishing_probability"].tolist()
        predictions = response.json()["predictions"]
        assert len(predictions) == 40
        assert [p["phishing_probability"] for p in predictions] == pytest.approx(expected)
    else:
        assert response.status_code == 422, response.text
        assert response.json()["column"] == ALTERED
        assert ALTERED in response.json()["detail"]

    # ingestion: the same rows with the label
    labelled = tmp_path / "labelled.csv"
    labelled.write_bytes(build_csv(rows, edit))
    if ingested == "reject":
        with pytest.raises((InputValidationError, DatasetError)) as caught:
            run_kedro(kedro_project, "ingestion", {"raw_data_path": str(labelled)})
        assert rejected_column(caught.value) == ALTERED
        assert str(labelled) in str(caught.value)
        return
    run_kedro(kedro_project, "ingestion", {"raw_data_path": str(labelled)})
    records = MongoDataset(
        collection="phishing_records", database=mongo_database, credentials={"uri": mongo_uri}
    ).load()
    assert len(records) == 40
    assert list(records.columns[1:]) == list(rows.columns)  # the header read as the schema's
    altered = build_csv(rows, edit).decode("utf-8-sig").splitlines()[ROW].split(",")
    row_values = [None if c in ("", "NA") else float(c) for c in altered]
    values = records[list(rows.columns)].astype("Float64")
    match = values.apply(
        lambda record: all(
            pd.isna(a) if b is None else a == b
            for a, b in zip(record.tolist(), row_values, strict=True)
        ),
        axis=1,
    )
    assert match.sum() >= 1, "the altered row was not stored as read"
    stored_row = records[match].iloc[0]
    if stored is None:
        assert pd.isna(stored_row[ALTERED])
    elif stored != "as read":
        assert stored_row[ALTERED] == stored

    # validation quarantines a missing or out-of-domain value, from the same rules
    violations = find_schema_violations(records, schema, {})
    if quarantined is None:
        assert violations.empty, violations
    else:
        assert violations[["column", "check"]].values.tolist() == [[ALTERED, quarantined]]


def _reasons_text(reasons: list[dict[str, Any]]) -> str:
    return "; ".join(f"{r['indicator']}={r['value']} ({r['contribution']:+.2f})" for r in reasons)


def test_the_same_reasons_from_every_entry_point(  # noqa: PLR0913
    rows, schema, champion, write_champion, client, kedro_project, run_kedro, mlflow_store, tmp_path
):
    """The pandas engine's CSV, the Dask engine, ``POST /predict`` (an upload and JSON records)
    and the registered MLflow model give the same reasons for the same 40 rows."""
    import mlflow
    from kedro.framework.startup import bootstrap_project
    from kedro.io import DataCatalog, MemoryDataset
    from kedro_mlflow.mlflow import KedroPipelineModel

    from network_security.datasets.mlflow_registry import MlflowRegisteredModelDataset
    from network_security.pipeline_registry import register_pipelines
    from network_security.pipelines.inference.nodes import score_inference_batch
    from network_security.reasons import REASONS_COLUMN

    features = rows[feature_columns(schema)]
    source = tmp_path / "batch.csv"
    features.to_csv(source, index=False)
    write_champion(champion, kedro_project / "data" / "06_models" / "champion.pkl")
    target = tmp_path / "predictions.csv"
    run_kedro(
        kedro_project,
        "inference",
        {"inference_input_path": str(source), "inference_output_path": str(target)},
    )
    written = pd.read_csv(target, dtype={REASONS_COLUMN: str}, keep_default_na=False)
    expected = written[REASONS_COLUMN].tolist()
    assert sum(text.count("=") for text in expected) >= 40  # reasons, not empty cells

    scoring = yaml.safe_load((kedro_project / "conf/base/parameters_inference.yml").read_text())
    with dask.config.set(scheduler="synchronous"):
        checked = check_inference_batch(DaskTableDataset(str(source)).load(), schema)
        dask_scored = score_inference_batch(checked, champion, scoring["scoring"], schema)
        assert dask_scored.compute()[REASONS_COLUMN].tolist() == expected

    upload = client.post(
        "/predict",
        files={"file": ("batch.csv", source.read_bytes(), "text/csv")},
        headers={"Accept": "application/json"},
    )
    assert [p[REASONS_COLUMN] for p in upload.json()["predictions"]] == expected
    page = client.post("/predict", files={"file": ("batch.csv", source.read_bytes(), "text/csv")})
    assert "<th>reasons</th>" in page.text
    assert all(f"<td>{html.escape(text)}</td>" in page.text for text in expected)
    records = client.post(
        "/predict?reasons=true", json={"records": features.to_dict(orient="records")}
    )
    structured = [p[REASONS_COLUMN] for p in records.json()["predictions"]]
    assert [_reasons_text(r) for r in structured] == expected
    plain = client.post("/predict", json={"records": features.to_dict(orient="records")})
    assert all(REASONS_COLUMN not in p for p in plain.json()["predictions"])  # asked for only

    bootstrap_project(kedro_project)
    logged = register_pipelines()["training"].inference
    dataset = MlflowRegisteredModelDataset(str(tmp_path / "candidate.pkl"), "test_reasons")
    catalog = DataCatalog(
        {
            "candidate_model": dataset,
            "params:schema": MemoryDataset(schema),
            "params:scoring": MemoryDataset(scoring["scoring"]),
            "model_input_example": MemoryDataset(features.head(2)),
        }
    )
    experiment = mlflow.get_experiment_by_name("network_security")
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        dataset.save(champion)
        model = KedroPipelineModel(logged, catalog, input_name="model_input_example")
        info = mlflow.pyfunc.log_model(
            name="inference_pipeline",
            python_model=model,
            artifacts=model.extract_pipeline_artifacts(tmp_path / "artifacts"),
        )
    served = mlflow.pyfunc.load_model(info.model_uri).predict(features)
    assert served[REASONS_COLUMN].tolist() == expected
