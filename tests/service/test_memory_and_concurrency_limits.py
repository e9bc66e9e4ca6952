"""The limits that bound a request's memory and time, measured on a real server process.

JSON records: the record limit is enforced on the bytes, before any object is built (a body of
``{}`` records would otherwise cost about 35 MiB of Python objects per MiB), so ten 9 MiB
bodies of empty records at once are refused with 413 while the server grows by a fraction of
200 MiB. Bodies: each is read, within its size and time, before its request waits for a
scoring slot, so clients that send their bodies slowly hold no slot and get a 408, while an
honest request is answered at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from network_security.service.inputs import RequestProblem
from network_security.service.records import read_records, records_model

MiB = 1024 * 1024
ONE_FEATURE = {"features": {"a": [-1, 1]}}


def read(body: bytes, max_rows: int) -> list:
    """The records of ``body`` as the service reads them, for a schema of one feature."""
    model = records_model(ONE_FEATURE, max_rows=max_rows, max_columns=200)
    return read_records(body, model, ONE_FEATURE, max_rows=max_rows)[0]


def empty_records_body(size: int) -> bytes:
    """``{"records": [{}, {}, ...]}`` of about ``size`` bytes."""
    count = (size - 16) // 3
    return b'{"records": [' + b",".join([b"{}"] * count) + b"]}"


class PeakRSS:
    """The largest resident set size of a process, sampled every millisecond or two."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.001)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def test_a_body_of_empty_records_is_refused_before_any_record_is_built():
    body = empty_records_body(1 * MiB)  # ~350,000 records
    tracemalloc.start()
    try:
        with pytest.raises(RequestProblem) as caught:
            read(body, max_rows=10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.status_code == 413
    assert "at most 10000 per request" in caught.value.message
    assert peak < 4 * MiB, f"refusing a 1 MiB body allocated {peak / MiB:.1f} MiB"


def test_braces_inside_strings_do_not_count_as_records():
    url = "https://example.test/{" + "[{" * 20 + "}"
    records = b",".join([b'{"a": 1, "url": "%s", "x": "\\"{"}' % url.encode()] * 300)
    body = b'{"records": [' + records + b"]}"
    assert len(read(body, max_rows=300)) == 300
    with pytest.raises(RequestProblem) as caught:
        read(body, max_rows=299)
    assert caught.value.status_code == 413


def test_escaped_quotes_in_a_string_that_never_closes_are_read_once():
    """Many brackets send the body to the scan for strings; escaped quotes in an unclosed
    string made each quote start a scan to the end of the body (14.7 s for 90 KB)."""
    body = b"[" * 10_003 + b'"' + b'\\"' * 20_000
    started = time.perf_counter()
    with pytest.raises(RequestProblem) as caught:
        read(body, max_rows=10_000)
    assert time.perf_counter() - started < 1.0
    assert caught.value.status_code == 413


def test_ten_concurrent_bodies_of_empty_records_are_refused_with_bounded_memory(
    start_service, service_project: Path, champion_path: Path, batch
):
    server = start_service(
        service_project,
        project_path=str(service_project),
        model_path=str(champion_path),
        max_upload_bytes=str(10 * MiB),
        max_rows="10000",
    )
    body = empty_records_body(9 * MiB)
    headers = {"Content-Type": "application/json"}
    records = batch.head(5).to_dict(orient="records")
    with httpx.Client(base_url=server.url, timeout=120) as client:
        assert client.post("/predict", json={"records": records}).status_code == 200  # warm
    time.sleep(0.5)

    def send(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            return client.post("/predict", content=body, headers=headers).status_code

    with PeakRSS(server.process.pid) as rss:
        baseline = rss.process.memory_info().rss
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(send, range(10)))
    growth = (rss.peak - baseline) / MiB
    print(f"ten 9 MiB bodies of {{}} records at once: {statuses}, RSS +{growth:.1f} MiB")
    assert statuses == [413] * 10
    assert growth <= 200, f"the server grew by {growth:.0f} MiB"
    with httpx.Client(base_url=server.url, timeout=60) as client:  # and it still serves
        assert client.post("/predict", json={"records": records}).status_code == 200


JSON_HEAD = b'{"records": ['
MULTIPART_HEAD = (
    b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="slow.csv"\r\n'
    b"Content-Type: text/csv\r\n\r\nhaving_IP_Address,URL_Length\n"
)


def _open_body(url: str, head: bytes, declared: int, content_type: bytes) -> socket.socket:
    """A connection that declares a body of ``declared`` bytes and sends only ``head``."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (content_type, declared, head)
    )
    return sock


def _answer(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends back until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    answer = b""
    with contextlib.suppress(OSError):
        while part := sock.recv(4096):
            answer += part
    return answer


def _trickle(url: str, multipart: bool, seconds: float) -> bytes:
    """A client sending its body one byte every half second; the server's answer."""
    kind = b"multipart/form-data; boundary=xyz" if multipart else b"application/json"
    sock = _open_body(url, MULTIPART_HEAD if multipart else JSON_HEAD, 10_000, kind)
    deadline = time.monotonic() + seconds
    try:
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                if part := sock.recv(4096):
                    return part + _answer(sock, 5)
                return b""
            except TimeoutError:
                sock.sendall(b"1")  # the pause between bytes is the receive timeout above
        return b""
    except OSError:
        return b""
    finally:
        sock.close()


def test_clients_trickling_bodies_hold_no_scoring_slot(
    start_service, service_project: Path, champion_path: Path, batch
):
    server = start_service(
        service_project,
        project_path=str(service_project),
        model_path=str(champion_path),
        max_concurrent_predictions="2",
        prediction_wait_seconds="3",
        body_timeout_seconds="5",
    )
    records = {"records": batch.head(1).to_dict(orient="records")}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/predict", json=records).status_code == 200  # warm
        with ThreadPoolExecutor(max_workers=8) as pool:
            tricklers = [
                pool.submit(_trickle, server.url, i % 2 == 1, seconds=15) for i in range(8)
            ]
            time.sleep(1.0)  # every trickling request has started
            started = time.monotonic()
            honest = client.post("/predict", json=records)
            elapsed = time.monotonic() - started
            answers = [future.result() for future in tricklers]
    assert honest.status_code == 200, honest.text
    assert elapsed < 1.0, f"an honest one-row request took {elapsed:.1f} s"
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"did not arrive within 5 s" in answer


def test_a_body_that_does_not_arrive_in_time_is_408_and_holds_no_slot(
    start_service, service_project: Path, champion_path: Path, batch
):
    server = start_service(
        service_project,
        project_path=str(service_project),
        model_path=str(champion_path),
        max_concurrent_predictions="1",
        prediction_wait_seconds="1",
        body_timeout_seconds="3",
    )
    records = batch.head(3).to_dict(orient="records")
    stalled = _open_body(server.url, JSON_HEAD, 10_000, b"application/json")
    try:
        time.sleep(0.5)  # the stalled request is being read
        with httpx.Client(base_url=server.url, timeout=30) as client:
            started = time.monotonic()
            assert client.post("/predict", json={"records": records}).status_code == 200
            assert time.monotonic() - started < 1.0
            answer = _answer(stalled, 15)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"did not arrive within 3 s" in answer
            assert client.post("/predict", json={"records": records}).status_code == 200
    finally:
        stalled.close()


def test_bodies_held_at_once_are_bounded(
    start_service, service_project: Path, champion_path: Path, batch
):
    server = start_service(
        service_project,
        project_path=str(service_project),
        model_path=str(champion_path),
        max_body_bytes_in_flight="60000",
        body_timeout_seconds="10",
    )
    records = {"records": batch.head(1).to_dict(orient="records")}
    held = _open_body(server.url, JSON_HEAD + b" " * 50_000, 100_000, b"application/json")
    try:
        time.sleep(0.5)  # 50 KB of the first body are held
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post("/predict", json=records).status_code == 200
            busy = client.post("/predict", json={"records": records["records"] * 20})
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "5"
            assert "NETWORK_SECURITY_MAX_BODY_BYTES_IN_FLIGHT" in busy.json()["detail"]
        held.close()
        time.sleep(0.5)  # the server notices the closed connection and releases its bytes
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert (
                client.post("/predict", json={"records": records["records"] * 20}).status_code
                == 200
            )
    finally:
        held.close()
