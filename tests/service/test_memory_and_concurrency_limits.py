"""Issue 11, defect 3: memory amplification by JSON records, and the limits that bound it.

A body of ``{}`` records used to be parsed whole (about 35 MiB of Python objects per MiB of
body) before the 10,000-record limit was checked. Now the record limit is enforced on the bytes,
before any object is built, and at most ``max_concurrent_predictions`` requests are read and
scored at once (the others wait unread), so ten such 9 MiB bodies at once are refused with 413
while the server's memory grows by a fraction of 200 MiB. Measured on a real server process.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from network_security.service.inputs import RequestProblem, read_records

MiB = 1024 * 1024


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
            read_records(body, max_rows=10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.status_code == 413
    assert "at most 10000 per request" in caught.value.message
    assert peak < 4 * MiB, f"refusing a 1 MiB body allocated {peak / MiB:.1f} MiB"


def test_braces_inside_strings_do_not_count_as_records():
    url = "https://example.test/{" + "[{" * 20 + "}"
    records = b",".join([b'{"url": "%s", "x": "\\"{"}' % url.encode()] * 300)
    body = b'{"records": [' + records + b"]}"
    assert len(read_records(body, max_rows=300)) == 300
    with pytest.raises(RequestProblem) as caught:
        read_records(body, max_rows=299)
    assert caught.value.status_code == 413


def test_escaped_quotes_in_a_string_that_never_closes_are_read_once():
    """Many brackets send the body to the scan for strings; escaped quotes in an unclosed
    string made each quote start a scan to the end of the body (14.7 s for 90 KB)."""
    body = b"[" * 10_003 + b'"' + b'\\"' * 20_000
    started = time.perf_counter()
    with pytest.raises(RequestProblem) as caught:
        read_records(body, max_rows=10_000)
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


def _hold_a_slot(url: str, declared: int) -> socket.socket:
    """A connection that declares a JSON body and sends only its first bytes."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b'Content-Length: %d\r\n\r\n{"records": [' % declared
    )
    return sock


def test_a_body_that_does_not_arrive_in_time_is_408_and_frees_its_slot(
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
    slow = _hold_a_slot(server.url, 10_000)
    try:
        time.sleep(0.5)  # the slow request holds the only slot
        with httpx.Client(base_url=server.url, timeout=30) as client:
            started = time.monotonic()
            busy = client.post("/predict", json={"records": records})
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "5"
            assert "busy" in busy.json()["detail"]
            assert 0.8 < time.monotonic() - started < 10
            slow.settimeout(15)
            answer = b""
            while b"did not arrive" not in answer:  # headers and body may come apart
                part = slow.recv(4096)
                if not part:
                    break
                answer += part
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"did not arrive within 3 s" in answer
            assert client.post("/predict", json={"records": records}).status_code == 200
    finally:
        slow.close()
