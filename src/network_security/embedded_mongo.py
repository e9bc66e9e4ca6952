"""An embedded MongoDB-compatible server (SecantusDB) for runs and tests without ``MONGODB_URI``.

SecantusDB speaks the MongoDB wire protocol on top of WiredTiger and runs as its own process:
``python -m secantus --host 127.0.0.1 --port <free port> --storage-path <dir> --standalone``.
``EmbeddedMongo`` starts it on a free loopback port, waits until it answers a ping, and stops it
(terminate, then kill) when asked, at interpreter exit, or when its parent process dies.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to SIGTERM the server if the process that started it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedMongo:
    """A SecantusDB server process bound to loopback, with its data in ``storage_path``."""

    def __init__(
        self,
        storage_path: str | Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        auth: bool = False,
        startup_timeout: float = 30.0,
    ) -> None:
        self.storage_path = Path(storage_path)
        self.host = host
        self.port = port or free_port(host)
        self.auth = auth
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._log_path = self.storage_path.parent / f"{self.storage_path.name}.log"

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def start(self) -> EmbeddedMongo:
        """Start the server and wait until it answers; raises RuntimeError if it does not."""
        self.storage_path.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "secantus",
            "--host", self.host,
            "--port", str(self.port),
            "--storage-path", str(self.storage_path),
            "--standalone",
            "--log-level", "WARNING",
        ]  # fmt: skip
        if self.auth:
            command.append("--auth")
        log = self._log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        log.close()
        atexit.register(self.stop)
        self._wait_until_ready()
        logger.info(
            "Started embedded SecantusDB (pid %d) on %s:%d with data in %s",
            self.process.pid, self.host, self.port, self.storage_path,
        )  # fmt: skip
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"The embedded SecantusDB server exited with code {self.process.returncode} "
                    f"on start; see {self._log_path}. Is another server using {self.storage_path}?"
                )
            with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"The embedded SecantusDB server did not answer on {self.host}:{self.port} within "
            f"{self.startup_timeout:.0f} s; see {self._log_path}."
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        logger.info("Stopped embedded SecantusDB (pid %d)", process.pid)

    def __enter__(self) -> EmbeddedMongo:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
