"""``ChunkedCSVDataset``: lazy chunked loads, atomic chunk-by-chunk saves, and the refusal of
empty, binary and malformed files, through the Kedro catalog as the pipeline uses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError

from network_security.datasets.chunked_csv import ChunkedCSVDataset
from network_security.scoring import ChunkStream, InputValidationError

TYPE = "network_security.datasets.chunked_csv.ChunkedCSVDataset"
TEXT = {"dtype": "str", "keep_default_na": False}


def catalog_for(path: Path, **config) -> DataCatalog:
    return DataCatalog.from_config({"csv": {"type": TYPE, "filepath": str(path), **config}})


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_load_streams_the_file_in_chunks_of_text(tmp_path, random_sites):
    frame = random_sites(1000)
    frame.insert(0, "id", [f"{i:04d}" for i in range(len(frame))])
    path = tmp_path / "batch.csv"
    frame.to_csv(path, index=False)
    stream = catalog_for(path, chunksize=300, load_args=TEXT).load("csv")
    assert isinstance(stream, ChunkStream) and stream.source == str(path)
    chunks = list(stream)
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    assert list(stream) and len(list(stream)) == 4  # re-iterable: reads the file again
    whole = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(whole, pd.read_csv(path, **TEXT))
    assert whole["id"].iloc[7] == "0007"


def test_without_chunksize_load_returns_one_frame_of_text(tmp_path, random_sites):
    path = tmp_path / "batch.csv"
    random_sites(50).to_csv(path, index=False)
    loaded = catalog_for(path, chunksize=None).load("csv")
    pd.testing.assert_frame_equal(loaded, pd.read_csv(path, **TEXT))


def test_save_writes_a_stream_of_chunks_like_one_frame(tmp_path, random_sites):
    frame = random_sites(1000)
    catalog = catalog_for(tmp_path / "out" / "streamed.csv")
    catalog.save("csv", ChunkStream(frame.iloc[i : i + 128] for i in range(0, 1000, 128)))
    ChunkedCSVDataset(str(tmp_path / "out" / "whole.csv")).save(frame)
    streamed = (tmp_path / "out" / "streamed.csv").read_bytes()
    assert streamed == (tmp_path / "out" / "whole.csv").read_bytes()
    assert streamed.count(b"\n") == 1001
    assert leftovers(tmp_path / "out") == ["streamed.csv", "whole.csv"]


def test_a_failing_stream_leaves_no_file_and_keeps_a_previous_output(tmp_path, random_sites):
    frame = random_sites(300)

    def failing() -> Iterator[pd.DataFrame]:
        yield frame.iloc[:100]
        yield frame.iloc[100:200]
        raise InputValidationError("chunk 3 is bad", column="URL_Length", row=201, value="x")

    target = tmp_path / "out" / "predictions.csv"
    catalog = catalog_for(target)
    with pytest.raises(DatasetError, match="^csv: chunk 3 is bad$") as caught:
        catalog.save("csv", ChunkStream(failing()))
    assert isinstance(caught.value.__cause__, InputValidationError)
    assert caught.value.__cause__.row == 201
    assert leftovers(tmp_path / "out") == []

    target.write_text("previous run\n")
    with pytest.raises(DatasetError, match="chunk 3 is bad"):
        catalog.save("csv", ChunkStream(failing()))
    assert target.read_text() == "previous run\n"
    assert leftovers(tmp_path / "out") == ["predictions.csv"]


def test_chunks_with_different_columns_are_refused(tmp_path, random_sites):
    frame = random_sites(20)
    chunks = [frame.iloc[:10], frame.iloc[10:].drop(columns="port")]
    with pytest.raises(DatasetError, match="unlike the first chunk"):
        catalog_for(tmp_path / "o.csv").save("csv", chunks)
    assert leftovers(tmp_path) == []


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match="CSV file not found: .*nowhere.csv"):
        catalog_for(tmp_path / "nowhere.csv").load("csv")


@pytest.mark.parametrize(
    ("content", "problem", "words"),
    [
        (b"", "empty_file", "the file is empty"),
        (b"\n\n  \n", "empty_file", "only blank lines"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not_text", "binary file"),
        (b"url,port\nhttp://caf\xe9.example,1\n", "not_text", "is not utf-8 text"),
    ],
)
def test_empty_and_binary_files_are_refused_on_load(tmp_path, content, problem, words):
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    with pytest.raises(InputValidationError, match=words) as caught:
        ChunkedCSVDataset(str(path), load_args=TEXT).load()
    assert caught.value.problem == problem
    assert str(caught.value).startswith(f"{path}: ")
    with pytest.raises(DatasetError, match=f"^csv: {path}: .*{words}"):
        catalog_for(path, load_args=TEXT).load("csv")


def test_a_malformed_line_is_reported_with_its_number(tmp_path, random_sites):
    lines = random_sites(30).to_csv(index=False).splitlines()
    lines[18] += ",1,1"
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n")
    stream = catalog_for(path, chunksize=10, load_args=TEXT).load("csv")
    with pytest.raises(InputValidationError, match="malformed CSV at line 19") as caught:
        list(stream)
    assert (caught.value.row, caught.value.problem) == (18, "malformed")


def test_preview_shows_the_first_rows(tmp_path, random_sites):
    path = tmp_path / "in.csv"
    random_sites(40).to_csv(path, index=False)
    preview = ChunkedCSVDataset(str(path), load_args=TEXT).preview(nrows=3)
    assert len(preview["data"]) == 3 and len(preview["columns"]) == 30


def test_a_small_read_block_gives_the_same_chunks_and_an_estimated_size(tmp_path, random_sites):
    path = tmp_path / "sites.csv"
    random_sites(20_000, seed=3).to_csv(path, index=False)
    default = ChunkedCSVDataset(str(path), chunksize=3_000).load()
    small = ChunkedCSVDataset(str(path), chunksize=3_000, block_size="16KiB").load()
    assert small.total_rows == pytest.approx(20_000, rel=0.05) and small.exact is False
    pairs = list(zip(default, small, strict=True))
    assert [len(b) for _, b in pairs] == [3_000] * 6 + [2_000]
    for a, b in pairs:
        pd.testing.assert_frame_equal(a, b)
    assert ChunkedCSVDataset(str(path), block_size=65536)._describe()["block_size"] == 65536
    with pytest.raises(DatasetError, match="block_size"):
        ChunkedCSVDataset(str(path), block_size="1KiB")


def test_the_header_follows_the_one_rule_in_every_chunk(tmp_path, random_sites):
    frame = random_sites(25)
    text = frame.rename(columns={"SFH": " SFH\t", "port": "port "}).to_csv(index=False)
    path = tmp_path / "in.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    chunks = list(catalog_for(path, chunksize=10, load_args=TEXT).load("csv"))
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    for chunk in chunks:
        assert list(chunk.columns) == list(frame.columns)
    read = pd.concat(chunks, ignore_index=True).astype("int64")
    pd.testing.assert_frame_equal(read, frame, check_dtype=False)


@pytest.mark.parametrize(
    ("header", "problem", "words"),
    [
        ("SFH,port,SFH ", "repeated_column", "column 'SFH' appears more than once"),
        (",SFH,port", "nameless_column", "column 1 of the header has no name"),
    ],
)
def test_a_repeated_or_nameless_column_is_refused_naming_it(tmp_path, header, problem, words):
    path = tmp_path / "in.csv"
    path.write_text(f"{header}\n1,1,1\n")
    with pytest.raises(InputValidationError, match=words) as caught:
        list(ChunkedCSVDataset(str(path), load_args=TEXT).load())
    assert caught.value.problem == problem
    assert caught.value.column == ("SFH" if problem == "repeated_column" else None)


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zst"])
def test_compressed_files_are_read_like_plain_ones_by_both_engines(tmp_path, random_sites, suffix):
    import bz2
    import gzip
    import lzma

    import dask
    import pyarrow as pa

    from network_security.datasets.dask_datasets import DaskTableDataset

    frame = random_sites(700, seed=8)
    plain = tmp_path / "sites.csv"
    frame.to_csv(plain, index=False)
    packed = tmp_path / f"sites.csv{suffix}"
    openers = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    if suffix in openers:
        with openers[suffix](packed, "wb") as handle:
            handle.write(plain.read_bytes())
    else:
        with pa.output_stream(str(packed), compression="zstd") as handle:
            handle.write(plain.read_bytes())
    expected = pd.read_csv(plain, **TEXT)
    chunks = list(ChunkedCSVDataset(str(packed), chunksize=300).load())
    assert [len(c) for c in chunks] == [300, 300, 100]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), expected)
    dask_frame = DaskTableDataset(str(packed)).load()
    assert dask_frame.npartitions == 1
    (read,) = dask.compute(dask_frame, scheduler="sync")
    pd.testing.assert_frame_equal(read.reset_index(drop=True), expected, check_dtype=False)
