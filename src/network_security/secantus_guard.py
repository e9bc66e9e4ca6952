"""Run SecantusDB so that it never outlives the process that started it.

``python -m network_security.secantus_guard --parent-pid PID <secantus options>`` runs the server
of ``python -m secantus <secantus options>`` in this process, with one addition: a thread that
watches the parent. When the parent is gone (it exited, crashed, or was killed: a Jupyter kernel
leaves with ``os._exit`` when its server stops), the server is asked to stop (SIGTERM, which
SecantusDB handles by shutting down) and, if it has not exited ``STOP_GRACE`` seconds later, the
process ends anyway. SecantusDB's shutdown can hang (measured: about one stop in three after
its client died abruptly), and nobody would be left to kill it; its journal makes an abrupt end
safe for what was acknowledged.

``python -m network_security.secantus_guard provision --storage-path PATH`` (the credential as
JSON ``{"username", "password"}`` on standard input, never on the command line) gives that user
the ``root`` role and that password in the data folder with no server running: SecantusDB's own
``createUser`` / ``updateUser`` handlers run on its storage in this process, so no port is
opened, and a server is only ever started with ``--auth`` on a folder that has its user.

It also makes the stop quick: SecantusDB's stop closes its listening socket and joins the thread
blocked in ``accept()``, which closing does not wake on Linux, so every stop waited out that
join's 2 s timeout. Shutting the socket down first wakes it at once with no connection made (a
connection made to wake it made one stop in six hang: measured).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time

STOP_GRACE = 10.0
"""Seconds between SIGTERM and the forced end; ``EmbeddedMongo.stop`` waits as long."""
POLL_SECONDS = 0.5


def _end_within_grace() -> None:
    timer = threading.Timer(STOP_GRACE, os._exit, args=(1,))
    timer.daemon = True  # a server that stops in time exits at once
    timer.start()
    os.kill(os.getpid(), signal.SIGTERM)


def watch_parent(parent_pid: int, poll_seconds: float = POLL_SECONDS) -> threading.Thread:
    """A daemon thread that stops this process once ``parent_pid`` is no longer its parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        _end_within_grace()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def _wake_accept_on_stop() -> None:
    """Make ``SecantusDBServer.stop`` shut its listening socket down before closing it."""
    from secantus.server import SecantusDBServer

    original = SecantusDBServer.stop

    def stop(server: SecantusDBServer) -> None:
        listening = getattr(server, "_socket", None)
        if listening is not None:
            with contextlib.suppress(OSError):
                listening.shutdown(socket.SHUT_RDWR)  # accept() returns: the thread ends
        original(server)

    SecantusDBServer.stop = stop


def provision(storage_path: str, username: str, password: str) -> None:
    """Create ``username`` (role ``root``) with ``password``, or set the password of the user of
    that name, in the data folder at ``storage_path``; no server may be running on it.

    The commands go to SecantusDB's own command handler over its storage, without a socket:
    the user record is the one ``createUser`` makes over the wire. ``RuntimeError`` if one is
    refused.
    """
    from secantus.commands import CommandContext, dispatch
    from secantus.cursors import CursorRegistry
    from secantus.storage import Storage

    # the settings of `--standalone` (no oplog); a small cache: a few records are written
    storage = Storage(storage_path, enable_oplog=False, cache_size="64M")
    try:
        context = CommandContext(
            connection_id=0, storage=storage, cursors=CursorRegistry(), db_name="admin"
        )
        found = dispatch({"usersInfo": username, "$db": "admin"}, context).get("users")
        command = (
            {"updateUser": username, "pwd": password}
            if found
            else {"createUser": username, "pwd": password, "roles": ["root"]}
        )
        reply = dispatch({**command, "$db": "admin"}, context)
        if reply.get("ok") != 1:
            raise RuntimeError(f"{next(iter(command))} was refused: {reply.get('errmsg')}")
    finally:
        storage.close()


def _provision_main(args: list[str]) -> int:
    if len(args) != 2 or args[0] != "--storage-path":  # noqa: PLR2004
        print(
            "usage: python -m network_security.secantus_guard provision --storage-path PATH "
            '< {"username": ..., "password": ...}',
            file=sys.stderr,
        )
        return 2
    try:
        credential = json.loads(sys.stdin.read())
        provision(args[1], credential["username"], credential["password"])
    except Exception as error:  # noqa: BLE001 - one line for the parent's message
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["provision"]:
        return _provision_main(args[1:])
    if len(args) < 2 or args[0] != "--parent-pid" or not args[1].isdigit():  # noqa: PLR2004
        print(
            "usage: python -m network_security.secantus_guard --parent-pid PID "
            "<options of python -m secantus>",
            file=sys.stderr,
        )
        return 2
    watch_parent(int(args[1]))
    _wake_accept_on_stop()
    from secantus.cli import main as secantus_main

    return secantus_main(args[2:])


if __name__ == "__main__":
    raise SystemExit(main())
