"""Run SecantusDB so that it never outlives the process that started it.

``python -m network_security.secantus_guard --parent-pid PID <secantus options>`` runs the server
of ``python -m secantus <secantus options>`` in this process, with one addition: a thread that
watches the parent. When the parent is gone (it exited, crashed, or was killed: a Jupyter kernel
leaves with ``os._exit`` when its server stops), the server is asked to stop (SIGTERM, which
SecantusDB handles by shutting down) and, if it has not exited ``STOP_GRACE`` seconds later, the
process ends anyway. SecantusDB's shutdown can hang (measured: about one stop in three after
its client died abruptly), and nobody would be left to kill it; its journal makes an abrupt end
safe for what was acknowledged.

It also makes the stop quick: SecantusDB's stop closes its listening socket and joins the thread
blocked in ``accept()``, which closing does not wake on Linux, so every stop waited out that
join's 2 s timeout. Shutting the socket down first wakes it at once with no connection made (a
connection made to wake it made one stop in six hang: measured).
"""

from __future__ import annotations

import contextlib
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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
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
