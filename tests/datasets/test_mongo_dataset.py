"""MongoDataset against a real server over TCP."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import AutoReconnect, DocumentTooLarge

from network_security.datasets import MongoDataset
from network_security.datasets.mongo_dataset import ABANDONED_AFTER, _Save, _writer
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


def test_a_held_snapshot_is_read_once_and_dropped_by_a_save_or_release(
    dataset, frame, mongo_client, mongo_database
):
    dataset.save(frame)
    collection = mongo_client[mongo_database]["records"]
    dataset.hold_snapshot(True)  # as the project's hook does for a pipeline run
    first = dataset.load()
    collection.insert_one({"_id": "z", "having_IP_Address": 1, "URL_Length": 1, "Result": 1})
    first.loc[0, "URL_Length"] = 99  # a node altering its input alters only its own copy
    second = dataset.load()
    pd.testing.assert_frame_equal(second, frame, check_dtype=False)  # the snapshot: no "z"
    dataset.save(frame.assign(record_key=["d", "e", "f"]))  # a save drops the snapshot
    assert sorted(dataset.load()["record_key"]) == list("abcdefz")
    collection.delete_one({"_id": "z"})
    dataset.release()  # so does a release
    assert sorted(dataset.load()["record_key"]) == list("abcdef")
    dataset.hold_snapshot(False)
    collection.delete_one({"_id": "d"})
    assert sorted(dataset.load()["record_key"]) == list("abcef")  # not held: read each time
    collection.delete_one({"_id": "e"})
    assert sorted(dataset.load()["record_key"]) == list("abcf")


def test_loads_are_in_key_order_whatever_the_stored_order(mongo_uri, mongo_client, mongo_database):
    collection = mongo_client[mongo_database]["shuffled"]
    keys = [f"k{n:03d}" for n in np.random.default_rng(3).permutation(250)]
    collection.insert_many([{"_id": key, "URL_Length": 1} for key in keys])
    dataset = MongoDataset(
        collection="shuffled",
        database=mongo_database,
        credentials={"uri": mongo_uri},
        batch_size=40,  # several read batches
    )
    loaded = dataset.load()
    assert loaded["record_key"].tolist() == sorted(keys)
    assert loaded.index.tolist() == list(range(250))
    assert dataset.preview(3)["data"] == [["k000", 1], ["k001", 1], ["k002", 1]]
    # keys of several kinds (documents another program wrote): by kind, then in order
    collection.insert_many([{"URL_Length": 0}, {"URL_Length": -1}])  # ObjectId keys
    mixed = dataset.load()["record_key"].tolist()
    assert mixed[2:] == sorted(keys) and mixed[0] < mixed[1]
    assert all(type(key).__name__ == "ObjectId" for key in mixed[:2])


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


# ------------------------------------------------------------------ streams, rollback, claims


def records(keys: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_key": keys,
            "URL_Length": np.arange(len(keys), dtype="int64") % 3 - 1,
            "Result": np.ones(len(keys), dtype="int64"),
        }
    )


def keys(prefix: str, start: int, stop: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(start, stop)]


@pytest.fixture
def small_batches(mongo_uri, mongo_client, mongo_database) -> MongoDataset:
    """Batches of 4 documents, so that every save spans several inserts and rollback batches."""
    return MongoDataset(
        collection="records",
        database=mongo_database,
        credentials={"uri": mongo_uri},
        batch_size=4,
        write_concern={"w": 1, "j": True},
    )


def stored(mongo_client, mongo_database) -> list[str]:
    return sorted(mongo_client[mongo_database]["records"].distinct("_id"))


def test_a_stream_of_chunks_is_stored_in_batches_and_loads_back_without_bookkeeping(
    small_batches, mongo_client, mongo_database
):
    chunks = [records(keys("k", 0, 10)), records(keys("k", 10, 13)), records(keys("k", 13, 30))]
    small_batches.save(iter(chunks))
    assert stored(mongo_client, mongo_database) == keys("k", 0, 30)
    document = mongo_client[mongo_database]["records"].find_one({"_id": "k000"})
    assert len(document["_save_id"]) == 32
    loaded = small_batches.load()  # read by batches of 4
    assert list(loaded.columns) == ["record_key", "URL_Length", "Result"]
    assert loaded["record_key"].tolist() == keys("k", 0, 30)
    assert (loaded.dtypes.drop("record_key") == np.int64).all()
    assert mongo_client[mongo_database]["records_saves"].count_documents({}) == 0


def failing_stream(chunks: list[pd.DataFrame], error: Exception):
    yield from chunks
    raise error


def test_a_failing_stream_rolls_back_by_batches_and_keeps_earlier_records(
    small_batches, mongo_client, mongo_database, monkeypatch
):
    small_batches.save(records(keys("old", 0, 6)))
    deletes: list[int] = []
    original = Collection.delete_many

    def spy(self, filter, *args, **kwargs):  # noqa: A002 - pymongo's name
        deletes.append(len(filter["_id"]["$in"]))
        return original(self, filter, *args, **kwargs)

    monkeypatch.setattr(Collection, "delete_many", spy)
    chunks = [records(keys("new", 0, 9)), records(keys("old", 0, 6) + keys("new", 9, 12))]
    with pytest.raises(DatasetError, match="bad chunk") as error:
        small_batches.save(failing_stream(chunks, ValueError("bad chunk")))
    assert isinstance(error.value.__cause__, ValueError)
    assert stored(mongo_client, mongo_database) == keys("old", 0, 6)
    assert sum(deletes) == 12 and max(deletes) <= 4  # by batches of at most batch_size keys
    assert mongo_client[mongo_database]["records_saves"].count_documents({}) == 0


def test_a_network_error_in_the_middle_of_insert_many_rolls_that_batch_back_too(
    small_batches, mongo_client, mongo_database, monkeypatch
):
    original = Collection.insert_many
    calls = []

    def lost_reply(self, documents, *args, **kwargs):
        calls.append(len(documents))
        result = original(self, documents, *args, **kwargs)  # the server stores them...
        if len(calls) == 3:
            raise AutoReconnect("connection closed")  # ...and the reply is lost
        return result

    monkeypatch.setattr(Collection, "insert_many", lost_reply)
    with pytest.raises(DatasetError) as error:
        small_batches.save(records(keys("k", 0, 20)))
    assert "AutoReconnect" in repr(error.value.__cause__) or "connection closed" in str(error.value)
    assert stored(mongo_client, mongo_database) == []


def test_an_error_during_the_rollback_is_logged_and_the_first_error_raised(
    small_batches, mongo_client, mongo_database, monkeypatch, caplog
):
    def too_large(self, *args, **kwargs):
        raise DocumentTooLarge("BSON document too large")  # not a PyMongoError subclass check

    monkeypatch.setattr(Collection, "delete_many", too_large)
    stream = failing_stream([records(keys("k", 0, 5))], ValueError("the first error"))
    with caplog.at_level("ERROR"), pytest.raises(DatasetError, match="the first error") as error:
        small_batches.save(stream)
    assert isinstance(error.value.__cause__, ValueError)
    assert "rollback failed too" in caplog.text
    assert "DocumentTooLarge" in caplog.text
    assert "_save_id" in caplog.text  # how to delete what it left


def test_a_rollback_never_deletes_records_another_save_stored(
    mongo_uri, mongo_client, mongo_database
):
    def dataset() -> MongoDataset:
        return MongoDataset(
            collection="records",
            database=mongo_database,
            credentials={"uri": mongo_uri},
            batch_size=4,
        )

    def first_run():
        yield records(keys("k", 0, 10))  # stored while the second run starts and finishes
        dataset().save(records(keys("k", 5, 15)))  # overlaps k005-k009, finishes first
        raise OSError("the first run dies")

    with pytest.raises(DatasetError, match="the first run dies"):
        dataset().save(first_run())
    assert stored(mongo_client, mongo_database) == keys("k", 5, 15)


def test_a_failed_claimer_withdraws_its_claims(mongo_uri, mongo_client, mongo_database):
    def dataset() -> MongoDataset:
        return MongoDataset(
            collection="records", database=mongo_database, credentials={"uri": mongo_uri}
        )

    def second_run():
        yield records(keys("k", 5, 15))  # claims k005-k009, stored by the first run
        raise OSError("the second run dies")

    def first_run():
        yield records(keys("k", 0, 10))
        with pytest.raises(DatasetError, match="second run dies"):
            dataset().save(second_run())
        raise OSError("the first run dies")

    with pytest.raises(DatasetError, match="first run dies"):
        dataset().save(first_run())
    assert stored(mongo_client, mongo_database) == []


def test_a_record_removed_by_a_rollback_before_the_claim_is_stored_again(
    dataset, mongo_client, mongo_database
):
    records_collection, saves = dataset._write_collections()
    saves.insert_one({"_id": "other-save", "state": "rolling back"})
    document = {"_id": "k1", "URL_Length": 0, "Result": 1, "_save_id": "this-save"}
    # the other save inserted k1, this save's insert was refused as a duplicate, and the
    # other save's rollback deleted k1 before this save could claim it:
    save = _Save("this-save")
    dataset._keep_stored(records_collection, saves, [document], save)
    assert mongo_client[mongo_database]["records"].find_one({"_id": "k1"})["_save_id"] == (
        "this-save"
    )
    assert save.inserted == 1


def test_write_concern_comes_from_the_catalog_and_w0_is_refused(mongo_database):
    dataset = MongoDataset(
        collection="records", database=mongo_database, write_concern={"w": 2, "j": False}
    )
    assert dataset._describe()["write_concern"] == {"w": 2, "j": False}
    default = MongoDataset(collection="records", database=mongo_database)
    assert default._describe()["write_concern"] == {"w": "majority", "j": True}
    with pytest.raises(DatasetError, match="w: 0"):
        MongoDataset(collection="records", database=mongo_database, write_concern={"w": 0})
    with pytest.raises(DatasetError, match="Invalid write_concern"):
        MongoDataset(collection="records", database=mongo_database, write_concern={"x": 1})


# ------------------------------------------------------------------ a save killed mid-way

_KILLED_WRITER = """
import sys, time
import numpy as np, pandas as pd
from network_security.datasets import MongoDataset

uri, database = sys.argv[1], sys.argv[2]

def chunks():
    for start in range(0, 100_000, 10):
        yield pd.DataFrame({
            "record_key": [f"new{i:03d}" for i in range(start, start + 10)],
            "URL_Length": np.zeros(10, dtype="int64"),
            "Result": np.ones(10, dtype="int64"),
        })
        time.sleep(0.01)

MongoDataset(collection="records", database=database, credentials={"uri": uri},
             batch_size=10).save(chunks())
"""


def test_a_killed_save_is_never_loaded_and_the_next_save_removes_it(
    dataset, mongo_uri, mongo_client, mongo_database, caplog
):
    dataset.save(records(keys("old", 0, 6)))  # a finished save: stays
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, mongo_uri, mongo_database])
    collection = mongo_client[mongo_database]["records"]
    try:
        deadline = time.monotonic() + 120
        while collection.count_documents({"_id": {"$regex": "^new"}}) < 50:
            assert writer.poll() is None and time.monotonic() < deadline, "the writer stalled"
            time.sleep(0.05)
        claimed = records(keys("new", 0, 3))  # found stored by a save in progress: claimed
        dataset.save(claimed)
    finally:
        writer.send_signal(signal.SIGKILL)  # no exception, no rollback: as a power loss
        writer.wait(timeout=30)
    left = collection.count_documents({"_id": {"$regex": "^new"}})
    assert left >= 50  # what the killed save wrote is still there...
    assert mongo_client[mongo_database]["records_saves"].count_documents({}) == 1

    # ...but loads only return what finished saves stored (the claimed three included)
    expected = keys("new", 0, 3) + keys("old", 0, 6)
    assert dataset.load()["record_key"].tolist() == expected
    assert dataset.exists()

    with caplog.at_level(logging.WARNING):
        dataset.save(records(keys("next", 0, 2)))  # the next save of any file removes it
    assert f"Removed {left - 3} records of a save" in caplog.text
    assert f"process {writer.pid}" in caplog.text
    assert stored(mongo_client, mongo_database) == sorted(expected + keys("next", 0, 2))
    assert mongo_client[mongo_database]["records_saves"].count_documents({}) == 0
    assert collection.count_documents({"_claimed_by.0": {"$exists": True}}) == 3


def test_a_save_in_progress_in_a_live_process_is_left_alone(dataset, mongo_client, mongo_database):
    records_collection, saves = dataset._write_collections()
    started = datetime.now(UTC)
    saves.insert_one({"_id": "live", "state": "writing", "started": started,
                      "heartbeat": started, **_writer()})  # fmt: skip
    records_collection.insert_one({"_id": "k1", "URL_Length": 0, "Result": 1, "_save_id": "live"})
    dataset.save(records(keys("k", 5, 7)))
    assert stored(mongo_client, mongo_database) == [*keys("k", 5, 7), "k1"]  # not removed
    assert dataset.load()["record_key"].tolist() == keys("k", 5, 7)  # nor loaded yet
    assert saves.find_one({"_id": "live"})["state"] == "writing"


def test_a_save_of_another_host_is_removed_once_it_stops_refreshing(
    dataset, mongo_client, mongo_database
):
    records_collection, saves = dataset._write_collections()
    now = datetime.now(UTC)
    for name, beat in (("recent", now), ("stale", now - ABANDONED_AFTER - timedelta(seconds=1))):
        saves.insert_one({"_id": name, "state": "writing", "started": beat, "heartbeat": beat,
                          "host": "another-host", "pid": 1})  # fmt: skip
        records_collection.insert_one({"_id": name, "Result": 1, "_save_id": name})
    dataset.save(records(keys("k", 0, 1)))
    assert stored(mongo_client, mongo_database) == ["k000", "recent"]
    assert [entry["_id"] for entry in saves.find({})] == ["recent"]


def test_a_save_taken_over_as_abandoned_fails_and_rolls_back(
    small_batches, mongo_client, mongo_database
):
    def taken_over_meanwhile():
        yield records(keys("k", 0, 8))
        saves = mongo_client[mongo_database]["records_saves"]
        saves.update_many({}, {"$set": {"state": "abandoned"}})  # as another ingestion does
        yield records(keys("k", 8, 10))

    with pytest.raises(DatasetError, match="taken over as abandoned"):
        small_batches.save(taken_over_meanwhile())
    assert stored(mongo_client, mongo_database) == []
