"""The embedded SecantusDB server keeps its data private: a 0700 data folder, a 0600 log, and for
a project's server authentication with a random password kept in conf/local (0600)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from network_security import embedded_mongo
from network_security.embedded_mongo import (
    PROJECT_CREDENTIAL,
    PROVISIONED_MARKER,
    EmbeddedMongo,
    MongoCredential,
)
from network_security.secantus_guard import STOP_GRACE


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask 022, under which a plain mkdir/open gives files everyone can read."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def password_of(project: Path) -> str:
    return yaml.safe_load((project / PROJECT_CREDENTIAL).read_text())["password"]


def test_a_plain_server_keeps_its_folder_and_log_private(tmp_path):
    storage = tmp_path / "data"
    with EmbeddedMongo(storage) as server:
        MongoClient(server.uri).db.items.insert_one({"a": 1})
        log = server.log_path
    assert mode(storage) == 0o700
    assert mode(log) == 0o600
    loose = [p.name for p in storage.rglob("*") if p.is_file() and mode(p) & 0o077]
    assert loose == []  # the server's own files, created under umask 077


def test_a_project_server_requires_its_random_password(tmp_path):
    project = tmp_path / "project"
    server = EmbeddedMongo.for_project(project)
    with server:
        credential = project / PROJECT_CREDENTIAL
        assert mode(credential) == 0o600
        password = password_of(project)
        assert len(password) >= 32
        assert password not in repr(server.credential)
        anonymous = MongoClient(f"mongodb://127.0.0.1:{server.port}/")
        with pytest.raises(OperationFailure) as refused:
            anonymous.network_security.list_collection_names()
        assert refused.value.code == 13  # Unauthorized
        with MongoClient(server.uri) as client:
            client.network_security.records.insert_one({"_id": "k", "value": 1})
    assert mode(project / "data" / "mongo") == 0o700
    assert mode(project / "data" / "mongo.log") == 0o600
    assert password not in (project / "data" / "mongo.log").read_text(errors="replace")
    assert (project / "data" / "mongo" / PROVISIONED_MARKER).is_file()


def _listening_ports() -> set[int]:
    """The TCP ports the processes this one started listen on."""
    import psutil

    ports = set()
    for child in psutil.Process().children(recursive=True):
        try:
            connections = child.net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports |= {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}
    return ports


def _probe_without_credentials(port: int) -> str:
    """What a client without credentials gets on ``port``: ``refused`` or ``served``."""
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    with MongoClient(uri, serverSelectionTimeoutMS=2_000) as anonymous:
        try:
            anonymous.admin.command("listDatabases")
        except OperationFailure as error:
            return "refused" if error.code == 13 else f"error {error.code}"
        except Exception as error:  # noqa: BLE001 - gone meanwhile: no answer at all
            return f"no answer ({type(error).__name__})"
        return "served"


def test_a_new_project_server_never_listens_without_authentication(tmp_path, monkeypatch):
    started: list[list[str]] = []
    popen = subprocess.Popen

    def recording_popen(command, *args, **kwargs):
        started.append([str(part) for part in command])
        return popen(command, *args, **kwargs)

    monkeypatch.setattr(embedded_mongo.subprocess, "Popen", recording_popen)
    server = EmbeddedMongo.for_project(tmp_path / "project")
    done = threading.Event()
    outcomes: dict[int, str] = {}
    before = _listening_ports()  # other tests' servers of this session (a Dask cluster...)

    def probe() -> None:  # every port a child listens on while the server starts, at once
        while not done.is_set():
            for port in _listening_ports() - before - outcomes.keys():
                outcomes[port] = _probe_without_credentials(port)
            time.sleep(0.005)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        server.start()
        with MongoClient(server.uri) as client:  # the user was provisioned: the server is usable
            client.network_security.records.insert_one({"_id": "k"})
    finally:
        done.set()
        prober.join()
        server.stop()
    servers = [command for command in started if "--port" in command]
    assert servers and all("--auth" in command for command in servers), started
    assert outcomes == {server.port: "refused"}


def test_another_project_gets_another_password(tmp_path):
    first = EmbeddedMongo.for_project(tmp_path / "a").credential
    second = EmbeddedMongo.for_project(tmp_path / "b").credential
    assert first.password != second.password
    assert EmbeddedMongo.for_project(tmp_path / "a").credential == first  # kept, not remade


def test_deleting_the_credential_file_gives_a_new_password_and_keeps_the_data(tmp_path):
    project = tmp_path / "project"
    with EmbeddedMongo.for_project(project) as server, MongoClient(server.uri) as client:
        client.network_security.records.insert_one({"_id": "k", "value": 1})
    old_password = password_of(project)
    (project / PROJECT_CREDENTIAL).unlink()
    with EmbeddedMongo.for_project(project) as server:
        assert password_of(project) != old_password
        with MongoClient(server.uri) as client:
            assert client.network_security.records.find_one({"_id": "k"})["value"] == 1
        stale = server.uri.replace(password_of(project), old_password)
        with (
            MongoClient(stale, serverSelectionTimeoutMS=3_000) as client,
            pytest.raises(OperationFailure),
        ):
            client.network_security.list_collection_names()


def test_a_refused_credential_fails_clearly_without_showing_the_password(tmp_path):
    storage = tmp_path / "mongo"
    EmbeddedMongo(storage, credential=MongoCredential("analyst", "first-secret-pw")).start().stop()
    wrong = MongoCredential("analyst", "second-secret-pw")
    (storage / PROVISIONED_MARKER).write_text(wrong.fingerprint())  # a stale record
    with pytest.raises(RuntimeError) as error:
        EmbeddedMongo(storage, credential=wrong, startup_timeout=20).start()
    message = str(error.value)
    assert "refused the credential" in message and "analyst" in message
    assert "second-secret-pw" not in message and "first-secret-pw" not in message


def test_loose_permissions_left_by_an_older_version_are_tightened(tmp_path):
    storage = tmp_path / "data"
    storage.mkdir(mode=0o755)
    log = tmp_path / "data.log"
    log.write_text("")
    log.chmod(0o644)
    with EmbeddedMongo(storage):
        pass
    assert (mode(storage), mode(log)) == (0o700, 0o600)


def test_a_run_on_the_embedded_default_leaves_only_private_files(
    kedro_project, monkeypatch, mlflow_tracking_uri, caplog, capfd
):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking_uri)
    caplog.set_level(logging.DEBUG)
    bootstrap_project(kedro_project)
    with KedroSession.create(project_path=kedro_project) as session:
        session.run(pipeline_name="ingestion")
    local, data = kedro_project / "conf" / "local", kedro_project / "data"
    assert mode(local / "credentials.yml") == 0o600
    assert mode(local / "embedded_mongo.yml") == 0o600
    assert mode(data / "mongo") == 0o700
    assert mode(data / "mongo.log") == 0o600
    password = password_of(kedro_project)
    # the run stored the sample behind authentication, and never showed the password
    port_free_uri = f"mongodb://network_security:{password}@"
    assert "MONGODB_URI" not in os.environ
    output = capfd.readouterr()
    for text in (caplog.text, output.out, output.err, (data / "mongo.log").read_text()):
        assert password not in text
        assert port_free_uri not in text
    with EmbeddedMongo.for_project(kedro_project) as server:
        anonymous = MongoClient(f"mongodb://127.0.0.1:{server.port}/")
        with pytest.raises(OperationFailure):
            anonymous.network_security.list_collection_names()
        with MongoClient(server.uri) as client:
            assert client.network_security.phishing_records.count_documents({}) > 0


# ---------------------------------------------------------------- the server ends with its parent

_PARENT = """
import os, sys
from network_security.embedded_mongo import EmbeddedMongo
server = EmbeddedMongo(sys.argv[1]).start()
print(server.process.pid, flush=True)
os._exit(1)  # as a Jupyter kernel leaves when its server is gone: no atexit, no stop()
"""


def test_the_server_ends_when_the_process_that_started_it_dies_abruptly(tmp_path):
    import psutil

    parent = subprocess.run(
        [sys.executable, "-c", _PARENT, str(tmp_path / "db")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    server = psutil.Process(int(parent.stdout.split()[0]))
    try:
        server.wait(timeout=STOP_GRACE + 15)
    except psutil.TimeoutExpired:
        server.kill()
        pytest.fail("the embedded server outlived the process that started it")


_STUBBORN = """
import os, signal, subprocess, sys, time
if sys.argv[1] == "parent":  # start the child, then die at once
    child = subprocess.Popen([sys.executable, "-c", sys.argv[2], "child", str(os.getpid())])
    print(child.pid, flush=True)
    time.sleep(1)
    os._exit(1)
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a server whose shutdown hangs
from network_security.secantus_guard import watch_parent
watch_parent(int(sys.argv[2]), poll_seconds=0.1)
time.sleep(300)
"""


def test_a_server_whose_shutdown_hangs_still_ends_after_the_grace_period():
    import psutil

    parent = subprocess.Popen(
        [sys.executable, "-c", _STUBBORN, "parent", _STUBBORN],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    child = psutil.Process(int(parent.stdout.readline()))
    parent.wait(timeout=60)
    started = time.monotonic()  # the parent is gone
    try:
        child.wait(timeout=STOP_GRACE + 20)
    except psutil.TimeoutExpired:
        child.kill()
        pytest.fail("a process ignoring SIGTERM outlived its parent")
    assert time.monotonic() - started >= STOP_GRACE - 2  # SIGTERM first, the forced end after


def test_a_stop_is_a_clean_exit_after_clients_came_and_went(tmp_path):
    # SecantusDB's stop waits on a thread blocked in accept(); the guard wakes it by shutting
    # the listening socket down (a connection made to wake it made one stop in six hang until
    # it was killed). A clean stop exits 0, a hung one is killed (-9) after the grace period.
    codes = []
    for attempt in range(6):
        server = EmbeddedMongo(tmp_path / "db").start()
        process = server.process
        with MongoClient(server.uri, serverSelectionTimeoutMS=5000) as client:
            client.t.c.insert_one({"attempt": attempt})
            assert client.t.c.count_documents({}) == attempt + 1
        server.stop()
        codes.append(process.returncode)
    assert codes == [0] * 6
