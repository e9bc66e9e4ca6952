"""An embedded MongoDB-compatible server (SecantusDB) for runs and tests without ``MONGODB_URI``.

SecantusDB speaks the MongoDB wire protocol on top of WiredTiger and runs as its own process
(``python -m secantus``, here through ``network_security.secantus_guard``, which also ends it
when the process that started it is gone). ``EmbeddedMongo`` starts it on a free loopback port,
waits until it answers a ping, and stops it (terminate, then kill) when asked, at interpreter
exit, or when its parent process dies (however it died).

Nobody else on the machine can read what it keeps: the data folder is 0700, its log 0600, and
the server creates its files with umask 077. ``EmbeddedMongo.for_project`` (the server of a
``kedro run`` without ``MONGODB_URI``) also requires authentication: a random password made on
the first run is kept in ``conf/local/embedded_mongo.yml`` (0600, ignored by git); the server's
user is provisioned once, with no server running (written into the data folder by SecantusDB's
own user commands, see ``network_security.secantus_guard``), and again whenever that file is
replaced: the server never listens without ``--auth``. The password never appears in logs or
error messages.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

import yaml
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from network_security.errors import ServiceUnavailableError
from network_security.private_files import (
    open_private_append,
    private_dir,
    restrict_to_owner,
    write_private_text,
)

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_AUTHENTICATION_FAILED = 18

PROJECT_STORAGE = Path("data/mongo")
PROJECT_CREDENTIAL = Path("conf/local/embedded_mongo.yml")
EMBEDDED_USER = "network_security"
PROVISIONED_MARKER = ".network_security_user"
"""File in the data folder recording which credential the server's user was given (a hash)."""

_CREDENTIAL_HEADER = """\
# The user and password of this project's embedded SecantusDB server (data/mongo), made at
# random by the first run that started it. Keep this file private: it is mode 0600 and ignored
# by git. Delete it to get a new password on the next run (the server's user is updated).
"""


class EmbeddedServerError(ServiceUnavailableError, RuntimeError):
    """The embedded server could not start, or refused its credential: the message says why
    and what to do (an expected error: ``kedro run`` ends with the message alone)."""


@dataclass(frozen=True)
class MongoCredential:
    """A user name and password; the password is never shown by ``repr``."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"MongoCredential(username={self.username!r}, password=***)"

    def fingerprint(self) -> str:
        """A hash that tells whether a server was provisioned with this credential."""
        return hashlib.sha256(f"{self.username}\0{self.password}".encode()).hexdigest()


def load_or_create_credential(path: Path, username: str = EMBEDDED_USER) -> MongoCredential:
    """The credential kept in ``path`` (0600), made at random and written there if missing."""
    if path.is_file():
        restrict_to_owner(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise EmbeddedServerError(
                f"{path} is not valid YAML ({type(error).__name__}); delete it and run again to "
                "get a new password for the embedded database."
            ) from None
        if not (
            isinstance(data, dict)
            and isinstance(data.get("username"), str)
            and isinstance(data.get("password"), str)
            and data["username"]
            and data["password"]
        ):
            raise EmbeddedServerError(
                f"{path} must hold a `username` and a `password` (text); delete it and run again "
                "to get a new password for the embedded database."
            )
        return MongoCredential(data["username"], data["password"])
    credential = MongoCredential(username, secrets.token_urlsafe(32))
    body = yaml.safe_dump({"username": credential.username, "password": credential.password})
    write_private_text(path, _CREDENTIAL_HEADER + body)
    logger.info("Made a random password for the embedded database; it is kept in %s", path)
    return credential


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _prepare_child() -> None:  # pragma: no cover - runs in the child before exec
    """In the server process: files only for their owner, and SIGTERM if the parent dies."""
    os.umask(0o077)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedMongo:
    """A SecantusDB server process bound to loopback, with its data in ``storage_path``.

    With a ``credential``, the server runs with ``--auth`` and that user is provisioned (created,
    or its password updated) before the first start that needs it; ``uri`` then carries the
    credential. With ``auth=True`` and no credential, users are the caller's business.
    """

    def __init__(  # noqa: PLR0913
        self,
        storage_path: str | Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        auth: bool = False,
        startup_timeout: float = 30.0,
        credential: MongoCredential | None = None,
    ) -> None:
        self.storage_path = Path(storage_path)
        self.host = host
        self.port = port or free_port(host)
        self.credential = credential
        self.auth = auth or credential is not None
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._ready = False
        self._log_path = self.storage_path.parent / f"{self.storage_path.name}.log"

    @classmethod
    def for_project(cls, project_path: str | Path, **kwargs: object) -> EmbeddedMongo:
        """The project's server: data in ``data/mongo``, authentication with the credential of
        ``conf/local/embedded_mongo.yml`` (made at random on first use)."""
        project = Path(project_path)
        credential = load_or_create_credential(project / PROJECT_CREDENTIAL)
        return cls(project / PROJECT_STORAGE, credential=credential, **kwargs)

    @property
    def uri(self) -> str:
        """The server's URI (with the credential when there is one: keep it out of logs)."""
        if self.credential is None:
            return f"mongodb://{self.host}:{self.port}/"
        user = quote_plus(self.credential.username)
        password = quote_plus(self.credential.password)
        return f"mongodb://{user}:{password}@{self.host}:{self.port}/?authSource=admin"

    @property
    def log_path(self) -> Path:
        return self._log_path

    def _provision(self) -> None:
        """Give the server's user this credential, unless the data folder says it has it.

        The user is created (or its password updated) with no server running, by a short
        process that writes it into the data folder (``secantus_guard provision``): the server
        never listens without ``--auth``. The credential goes to that process on its standard
        input; the data folder then records a hash of it.
        """
        marker = self.storage_path / PROVISIONED_MARKER
        fingerprint = self.credential.fingerprint()
        if marker.is_file() and marker.read_text(encoding="utf-8").strip() == fingerprint:
            return
        logger.info("Provisioning the embedded database's user in %s", self.storage_path)
        command = [
            sys.executable, "-m", "network_security.secantus_guard",
            "provision", "--storage-path", str(self.storage_path),
        ]  # fmt: skip
        secret = {"username": self.credential.username, "password": self.credential.password}
        try:
            result = subprocess.run(  # noqa: S603 - fixed command, no shell
                command,
                input=json.dumps(secret),
                capture_output=True,
                text=True,
                timeout=self.startup_timeout,
                preexec_fn=_prepare_child if os.name == "posix" else None,  # noqa: PLW1509
            )
        except subprocess.TimeoutExpired:
            raise EmbeddedServerError(
                f"Setting the embedded database's user in {self.storage_path} took more than "
                f"{self.startup_timeout:.0f} s. Is another server using that folder?"
            ) from None
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise EmbeddedServerError(
                f"Could not set the embedded database's user in {self.storage_path} "
                f"({reason}). Is another server using that folder? Stop it and run again."
            )
        write_private_text(marker, fingerprint + "\n")

    def start(self, wait: bool = True) -> EmbeddedMongo:
        """Start the server and wait until it answers (``wait=False``: return once the process
        is launched; ``wait_until_ready()`` then waits); RuntimeError if it does not answer."""
        private_dir(self.storage_path)
        if self.credential is not None:
            self._provision()
        command = [
            sys.executable, "-m", "network_security.secantus_guard",  # python -m secantus,
            "--parent-pid", str(os.getpid()),  # ended when this process is gone
            "--host", self.host,
            "--port", str(self.port),
            "--storage-path", str(self.storage_path),
            "--standalone",
            "--log-level", "WARNING",
        ]  # fmt: skip
        if self.auth:
            command.append("--auth")
        log = open_private_append(self._log_path)
        self.process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_prepare_child if os.name == "posix" else None,  # noqa: PLW1509
        )
        log.close()
        atexit.register(self.stop)
        self._ready = False
        if wait:
            self.wait_until_ready()
        return self

    def wait_until_ready(self) -> None:
        """Return once the started server answers (at once when it already did)."""
        if self._ready:
            return
        self._wait_until_ready()
        self._ready = True
        logger.info(
            "Started embedded SecantusDB (pid %d) on %s:%d with data in %s%s",
            self.process.pid, self.host, self.port, self.storage_path,
            f" (authentication as {self.credential.username!r})" if self.credential else "",
        )  # fmt: skip

    def _wait_until_ready(self) -> None:
        if self.process is None:
            raise RuntimeError("The embedded SecantusDB server is not started (or was stopped).")
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedServerError(
                    f"The embedded SecantusDB server exited with code {self.process.returncode} "
                    f"on start; see {self._log_path}. Is another server using {self.storage_path}?"
                )
            try:  # the port first, every 10 ms: it opens in about 0.35 s
                socket.create_connection((self.host, self.port), timeout=0.1).close()
            except OSError:
                time.sleep(0.01)
                continue
            with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                try:
                    client.admin.command("ping")
                    return
                except OperationFailure as error:
                    if error.code == _AUTHENTICATION_FAILED:
                        self.stop()
                        raise EmbeddedServerError(
                            f"The embedded SecantusDB server in {self.storage_path} refused the "
                            f"credential of user {self.credential.username!r}. Delete "
                            f"{self.storage_path / PROVISIONED_MARKER} and run again to set it."
                        ) from None
                    time.sleep(0.05)
                except PyMongoError:
                    time.sleep(0.05)
        self.stop()
        raise EmbeddedServerError(
            f"The embedded SecantusDB server did not answer on {self.host}:{self.port} within "
            f"{self.startup_timeout:.0f} s; see {self._log_path}."
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # a quick stop: see network_security.secantus_guard
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
