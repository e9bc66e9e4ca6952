"""The Dask engine of ``kedro run --pipeline inference`` against a real cluster on loopback.

A scheduler and two workers (``python -m dask scheduler`` / ``dask worker --nthreads 1``) are
started over TCP once for the test session (``dask_cluster`` in conftest.py); the runs go
through a KedroSession on a temporary copy of the project, as ``kedro run`` does.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from network_security.dask_cluster import DaskClusterError, connect
from network_security.datasets.dask_datasets import DaskParquetPartsDataset, DaskTableDataset
from network_security.embedded_mongo import free_port
from network_security.pipelines.inference.nodes import check_inference_batch, score_inference_batch
from network_security.reasons import REASONS_COLUMN
from network_security.schema import feature_columns
from network_security.scoring import OUTPUT_COLUMNS, InputValidationError

CSV_TEXT = {"encoding": "utf-8"}


def cause(error: BaseException) -> InputValidationError:
    current: BaseException | None = error
    while current is not None and not isinstance(current, InputValidationError):
        current = current.__cause__
    assert current is not None, f"no InputValidationError behind {error!r}"
    return current


def no_client_left() -> bool:
    from distributed import default_client

    try:
        default_client()
    except ValueError:
        return True
    return False


def executed_per_worker(address: str) -> dict[str, int]:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        return client.run(lambda dask_worker: dask_worker.state.executed_count)


@pytest.fixture
def project(kedro_project: Path, write_champion) -> Path:
    write_champion(kedro_project)
    return kedro_project


@pytest.fixture
def batches(tmp_path: Path, new_sites) -> list[Path]:
    """Three CSV files of 30,000 new sites each (with a url column) in one folder."""
    folder = tmp_path / "batches"
    folder.mkdir()
    paths = []
    for i in range(3):
        path = folder / f"sites-{i}.csv"
        new_sites(30_000, seed=10 + i).to_csv(path, index=False)
        paths.append(path)
    return paths


def read_parts(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part.*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def test_dask_engine_on_a_cluster_equals_the_pandas_engine_row_for_row(
    project, run_kedro, batches, dask_cluster, tmp_path, schema
):
    before = executed_per_worker(dask_cluster)
    output = tmp_path / "scored_parquet"
    run_kedro(
        project,
        "inference",
        {
            "inference_engine": "dask",
            "dask_scheduler": dask_cluster,
            "inference_input_path": str(batches[0].parent / "*.csv"),
            "inference_output_path": str(output),
            "dask_blocksize": "512KiB",  # several partitions per file
        },
    )
    assert no_client_left()  # the hook closed the run's client after the run
    after = executed_per_worker(dask_cluster)
    assert len(after) == 2 and all(after[w] > before.get(w, 0) for w in after), (before, after)
    parts = sorted(output.glob("part.*.parquet"))
    assert len(parts) >= 9
    assert [p.name for p in output.parent.iterdir() if p.name.startswith(".")] == []  # no temp
    dask_scored = read_parts(output)

    together = tmp_path / "together.csv"  # the pandas engine on the same rows in the same order
    pd.concat([pd.read_csv(p, dtype={"url": str}) for p in batches]).to_csv(together, index=False)
    pandas_output = tmp_path / "pandas.csv"
    run_kedro(
        project,
        "inference",
        {"inference_input_path": str(together), "inference_output_path": str(pandas_output)},
    )
    pandas_scored = pd.read_csv(pandas_output, dtype={"url": str})

    assert len(dask_scored) == 90_000
    assert list(dask_scored.columns) == list(pandas_scored.columns)
    assert list(dask_scored.columns) == [
        "url",
        *feature_columns(schema),
        *OUTPUT_COLUMNS,
        REASONS_COLUMN,
    ]
    for column in dask_scored.columns:
        if column == "phishing_probability":
            np.testing.assert_allclose(
                dask_scored[column].to_numpy(), pandas_scored[column].to_numpy(), rtol=0, atol=1e-12
            )
        else:
            assert dask_scored[column].astype(str).tolist() == (
                pandas_scored[column].astype(str).tolist()
            ), column


def test_a_text_cell_in_one_file_fails_naming_file_row_column_and_leaves_no_output(
    project, run_kedro, batches, dask_cluster, tmp_path
):
    bad = batches[1]
    lines = bad.read_text().splitlines()
    header = lines[0].split(",")
    row = 23_456  # data row of that file (line 23,457)
    cells = lines[row].split(",")
    cells[header.index("SFH")] = "abc"
    lines[row] = ",".join(cells)
    bad.write_text("\n".join(lines) + "\n")
    output = tmp_path / "scored_parquet"
    with pytest.raises(DatasetError) as error:
        run_kedro(
            project,
            "inference",
            {
                "inference_engine": "dask",
                "dask_scheduler": dask_cluster,
                "inference_input_path": str(bad.parent / "*.csv"),
                "inference_output_path": str(output),
                "dask_blocksize": "512KiB",
            },
        )
    problem = cause(error.value)
    assert (problem.column, problem.row, problem.value) == ("SFH", row, "abc")
    assert no_client_left()  # the hook closed the run's client on the error
    assert problem.source == str(bad)
    for part in ("'SFH'", f"row {row}", "'abc'", str(bad)):
        assert part in str(error.value)
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_an_unreachable_scheduler_fails_within_60_s_naming_its_address(
    project, run_kedro, batches, tmp_path
):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    output = tmp_path / "scored_parquet"
    started = time.monotonic()
    with pytest.raises(DaskClusterError) as error:
        run_kedro(
            project,
            "inference",
            {
                "inference_engine": "dask",
                "dask_scheduler": address,
                "inference_input_path": str(batches[0]),
                "inference_output_path": str(output),
            },
        )
    assert time.monotonic() - started < 60
    assert address in str(error.value)
    assert "dask scheduler" in str(error.value)
    assert not output.exists()


# ------------------------------------------------------------------ the datasets and the graph


def test_partitions_know_their_file_and_count_earlier_rows_and_the_model_ships_once(
    batches, phishing_model, schema, scoring
):
    import dask

    table = DaskTableDataset(
        str(batches[0].parent / "*.csv"), blocksize="256KiB", load_args=CSV_TEXT
    )
    frame = table.load()
    assert frame.npartitions >= 15
    partitions = dask.compute(*frame.to_delayed(), scheduler="sync")
    by_file: dict[str, int] = {}
    for partition in partitions:
        source = partition.attrs["source"]
        if source not in by_file:  # a file's first block knows it starts the file
            assert partition.attrs["row_offset"] == 0 and "rows_before" not in partition.attrs
        else:  # a later block counts the rows before it when asked (an error needs them)
            assert partition.attrs["row_offset"] is None
            assert partition.attrs["rows_before"]() == by_file[source]
        by_file[source] = by_file.get(source, 0) + len(partition)
    assert by_file == {str(p): 30_000 for p in batches}

    scored = score_inference_batch(
        check_inference_batch(frame, schema), phishing_model, scoring, schema
    )
    graph = dict(scored.__dask_graph__())
    holding_model = [
        key for key, task in graph.items() if phishing_model is getattr(task, "value", task)
    ]
    assert len(holding_model) == 1, holding_model
    assert scored.npartitions == frame.npartitions


def test_parquet_folders_are_read_by_row_group_and_errors_name_file_and_row(
    tmp_path, new_sites, schema, phishing_model, scoring
):
    import dask

    folder = tmp_path / "parquet_in"
    folder.mkdir()
    sites = new_sites(5_000, seed=4).astype({"SFH": str})  # a text column, as a CSV export may give
    sites.iloc[:3_000].to_parquet(folder / "a.parquet", row_group_size=1_000, index=False)
    broken = sites.iloc[3_000:].copy()
    broken.loc[broken.index[1_234], "SFH"] = "abc"
    broken.to_parquet(folder / "b.parquet", row_group_size=500, index=False)
    frame = DaskTableDataset(str(folder)).load()
    assert frame.npartitions == 3 + 4
    checked = check_inference_batch(frame, schema)
    with pytest.raises(InputValidationError) as error:
        dask.compute(checked, scheduler="sync")
    assert (error.value.column, error.value.row, error.value.value) == ("SFH", 1_235, "abc")
    assert error.value.source == str(folder / "b.parquet")


def test_headers_follow_the_one_rule_in_csv_and_parquet_files_alike(tmp_path, new_sites, schema):
    import dask

    sites = new_sites(30, seed=5)
    sites.iloc[:10].to_csv(tmp_path / "a.csv", index=False)
    # another order, spaces around a name and a byte-order mark: the same columns
    other = sites.iloc[10:20][list(reversed(sites.columns))].rename(columns={"SFH": " SFH  "})
    (tmp_path / "b.csv").write_bytes(b"\xef\xbb\xbf" + other.to_csv(index=False).encode())
    frame = DaskTableDataset(str(tmp_path / "*.csv")).load()
    assert list(frame.columns) == list(sites.columns)
    checked = dask.compute(check_inference_batch(frame, schema), scheduler="sync")[0]
    pd.testing.assert_frame_equal(
        checked.reset_index(drop=True), sites.iloc[:20].reset_index(drop=True), check_dtype=False
    )
    folder = tmp_path / "parquet_in"
    folder.mkdir()
    sites.iloc[20:].rename(columns={"SFH": "SFH "}).to_parquet(folder / "c.parquet", index=False)
    parquet = dask.compute(DaskTableDataset(str(folder)).load(), scheduler="sync")[0]
    assert list(parquet.columns) == list(sites.columns)
    assert parquet["SFH"].tolist() == sites.iloc[20:]["SFH"].tolist()

    repeated = tmp_path / "repeated" / "d.csv"
    repeated.parent.mkdir()
    sites.assign(**{" SFH": sites["SFH"]}).to_csv(repeated, index=False)
    with pytest.raises(InputValidationError, match="'SFH' appears more than once") as error:
        DaskTableDataset(str(repeated)).load()
    assert (error.value.column, error.value.problem) == ("SFH", "repeated_column")


def test_inputs_that_do_not_exist_or_disagree_fail_clearly(tmp_path, new_sites):
    with pytest.raises(DatasetError, match="No file matches"):
        DaskTableDataset(str(tmp_path / "nothing" / "*.csv")).load()
    with pytest.raises(DatasetError, match="Input not found"):
        DaskTableDataset(str(tmp_path / "missing.csv")).load()
    new_sites(10).to_csv(tmp_path / "a.csv", index=False)
    new_sites(10).drop(columns="url").to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(InputValidationError, match="columns differ"):
        DaskTableDataset(str(tmp_path / "*.csv"), load_args=CSV_TEXT).load()
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputValidationError, match="empty"):
        DaskTableDataset(str(tmp_path / "empty.csv")).load()


@pytest.mark.slow
def test_without_a_scheduler_a_local_cluster_scores_and_is_stopped(
    tmp_path, new_sites, schema, phishing_model, scoring
):
    import psutil
    from distributed import default_client

    source = tmp_path / "sites.csv"
    new_sites(2_000, seed=5).to_csv(source, index=False)
    frame = DaskTableDataset(str(source), blocksize="64KiB", load_args=CSV_TEXT).load()
    scored = score_inference_batch(
        check_inference_batch(frame, schema), phishing_model, scoring, schema
    )
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    output = tmp_path / "out"
    with connect({"scheduler": None, "local_cluster": {"n_workers": 2, "threads_per_worker": 1}}):
        workers = default_client().scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 2
        DaskParquetPartsDataset(str(output)).save(scored)
        executed = default_client().run(lambda dask_worker: dask_worker.state.executed_count)
        assert sum(executed.values()) >= frame.npartitions  # computed on the local cluster
    assert len(read_parts(output)) == 2_000
    left = [
        " ".join(p.cmdline())
        for p in psutil.Process().children(recursive=True)
        if p.pid not in children_before and p.is_running()
    ]
    assert [c for c in left if "resource_tracker" not in c] == []  # workers and nannies gone
    with pytest.raises(ValueError, match="No clients found"):
        default_client()


def test_a_missing_feature_column_fails_before_any_work_naming_the_input(
    tmp_path, new_sites, schema
):
    new_sites(50).drop(columns="SFH").to_csv(tmp_path / "a.csv", index=False)
    pattern = str(tmp_path / "*.csv")
    frame = DaskTableDataset(pattern, load_args=CSV_TEXT).load()
    with pytest.raises(InputValidationError) as error:
        check_inference_batch(frame, schema)
    assert (error.value.column, error.value.problem) == ("SFH", "missing_column")
    assert error.value.source == pattern


def test_a_malformed_line_in_a_late_block_names_the_file_and_its_line(tmp_path, new_sites):
    import dask

    path = tmp_path / "sites.csv"
    new_sites(6_000, seed=6).to_csv(path, index=False)
    lines = path.read_text().splitlines()
    lines[4_321] += ",surplus"  # data row 4,321: one field too many
    path.write_text("\n".join(lines) + "\n")
    frame = DaskTableDataset(str(path), blocksize="64KiB").load()
    assert frame.npartitions > 3
    with pytest.raises(InputValidationError) as error:
        dask.compute(frame, scheduler="sync")
    assert (error.value.problem, error.value.row, error.value.source) == (
        "malformed",
        4_321,
        str(path),
    )
    assert "line 4322" in str(error.value)
