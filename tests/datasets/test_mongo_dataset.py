"""MongoDataset against a real server over TCP."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from pymongo import MongoClient

from network_security.datasets import MongoDataset
from network_security.embedded_mongo import EmbeddedMongo, free_port


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": ["a", "b", "c"],
            "having_IP_Address": np.array([-1, 1, 1], dtype="int64"),
            "URL_Length": np.array([0, 1, -1], dtype="int64"),
            "Result": np.array([-1, 1, 1], dtype="int64"),
        }
    )


@pytest.fixture
def dataset(mongo_uri: str, mongo_client: MongoClient, mongo_database: str) -> MongoDataset:
    return MongoDataset(
        collection="records", database=mongo_database, credentials={"uri": mongo_uri}
    )


def test_round_trip_keeps_values_dtypes_and_column_order(dataset, frame):
    dataset.save(frame)
    loaded = dataset.load()
    assert "_id" not in loaded.columns
    assert list(loaded.columns) == list(frame.columns)
    assert loaded["URL_Length"].dtype == np.int64
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    assert (loaded.dtypes.drop("record_key") == np.int64).all()


def test_missing_values_come_back_as_nullable_integers(dataset, frame):
    frame["URL_Length"] = pd.array([0, None, -1], dtype="Int64")
    dataset.save(frame)
    loaded = dataset.load()
    assert str(loaded["URL_Length"].dtype) == "Int64"
    assert loaded["URL_Length"].isna().tolist() == [False, True, False]


def test_save_is_idempotent_by_record_key(dataset, frame, mongo_client, mongo_database):
    dataset.save(frame)
    dataset.save(frame)
    more = pd.concat([frame, frame.assign(record_key=["d", "e", "f"])], ignore_index=True)
    dataset.save(more)
    collection = mongo_client[mongo_database]["records"]
    assert collection.count_documents({}) == 6
    # the key is the document's _id: MongoDB's own unique index
    assert sorted(collection.distinct("_id")) == list("abcdef")
    assert collection.find_one({"_id": "d"})["URL_Length"] == 0


def test_save_refuses_frames_without_a_usable_key(dataset, frame):
    with pytest.raises(DatasetError, match="no 'record_key' column"):
        dataset.save(frame.drop(columns="record_key"))
    with pytest.raises(DatasetError, match="repeated"):
        dataset.save(frame.assign(record_key="same"))
    assert not dataset.exists()


def test_exists_query_projection_and_preview(dataset, frame, mongo_uri, mongo_database):
    assert not dataset.exists()
    dataset.save(frame)
    assert dataset.exists()
    filtered = MongoDataset(
        collection="records",
        database=mongo_database,
        credentials={"uri": mongo_uri},
        query={"Result": 1},
        projection=["record_key", "Result"],
    )
    loaded = filtered.load()
    assert list(loaded.columns) == ["record_key", "Result"]
    assert loaded["record_key"].tolist() == ["b", "c"]
    preview = dataset.preview(nrows=2)
    assert preview["columns"] == list(frame.columns)
    assert len(preview["data"]) == 2


def test_describe_and_errors_never_show_the_uri_secret(mongo_database):
    dataset = MongoDataset(
        collection="records",
        database=mongo_database,
        credentials={"uri": "mongodb://admin:s3cr3t-pw@127.0.0.1:1/"},
    )
    assert "s3cr3t-pw" not in str(dataset)
    assert "127.0.0.1:1" in str(dataset)


def test_unreachable_server_fails_fast_naming_host_and_port(mongo_database):
    port = free_port()
    dataset = MongoDataset(
        collection="records",
        database=mongo_database,
        credentials={"uri": f"mongodb://user:hunter2-pw@127.0.0.1:{port}/"},
        timeout_ms=1_000,
    )
    started = time.monotonic()
    with pytest.raises(DatasetError) as error:
        dataset.load()
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message
    assert "running and reachable" in message
    assert "hunter2-pw" not in message


def test_missing_uri_says_what_to_set():
    dataset = MongoDataset(collection="records", database="db", credentials={"uri": ""})
    with pytest.raises(DatasetError, match="MONGODB_URI"):
        dataset.load()


def test_auth_server_rejects_wrong_password_without_leaking_it(tmp_path):
    storage = tmp_path / "auth-data"
    with EmbeddedMongo(storage) as server:
        MongoClient(server.uri).admin.command(
            "createUser", "analyst", pwd="correct-horse-pw", roles=["root"]
        )
        port = server.port
    with EmbeddedMongo(storage, port=port, auth=True):
        wrong = MongoDataset(
            collection="records",
            database="auth_test",
            credentials={"uri": f"mongodb://analyst:wrong-battery-pw@127.0.0.1:{port}/"},
            timeout_ms=3_000,
        )
        with pytest.raises(DatasetError) as error:
            wrong.load()
        assert "wrong-battery-pw" not in str(error.value)
        assert "password" in str(error.value)
        right = MongoDataset(
            collection="records",
            database="auth_test",
            credentials={"uri": f"mongodb://analyst:correct-horse-pw@127.0.0.1:{port}/"},
        )
        right.save(pd.DataFrame({"record_key": ["k"], "value": [1]}))
        assert right.load()["value"].tolist() == [1]
        right.release()
