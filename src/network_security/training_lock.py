"""One training run at a time per project, across processes.

Two training runs at once on the same project (two service workers, or ``kedro run`` beside the
service) would write the same split, model and champion files. ``TrainingLock`` is an exclusive
``fcntl.flock`` on ``data/06_models/.training.lock`` of the project: the operating system
releases it when its holder exits, however it exits, so a crashed run never leaves it behind.

- ``TrainingLockHook`` takes it for every ``kedro run`` that writes what the ``training``
  pipeline writes (``training``, ``__default__``, ``validation``, ``feature_engineering``), and
  refuses to start, saying who holds it, when another run does.
- The service takes it before it starts a training job (a second ``POST /train``, from any
  worker, gets 409) and hands it to its ``kedro run`` child: the child inherits the locked file
  descriptor, named in ``NETWORK_SECURITY_TRAINING_LOCK_FD``, and holds the same lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from network_security.errors import ExpectedError

logger = logging.getLogger(__name__)

LOCK_PATH = Path("data/06_models/.training.lock")
LOCK_FD_VARIABLE = "NETWORK_SECURITY_TRAINING_LOCK_FD"
"""Set by the service for its ``kedro run`` child: the descriptor of the lock it holds."""


class TrainingLockBusy(ExpectedError, RuntimeError):
    """Another process of this project holds the training lock."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(
            f"Another training run of this project is in progress ({holder or 'holder unknown'}; "
            f"lock {path}). Only one runs at a time: wait until it has finished, then run again."
        )
        self.path = path
        self.holder = holder


class TrainingLock:
    """The exclusive training lock of the project at ``project_path`` (not re-entrant)."""

    def __init__(self, project_path: str | Path) -> None:
        self.path = Path(project_path) / LOCK_PATH
        self._fd: int | None = None
        self._adopted = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def fileno(self) -> int:
        """The locked file descriptor (to hand to a child process)."""
        if self._fd is None:
            raise RuntimeError("The training lock is not held.")
        return self._fd

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it (empty when unknown)."""
        try:
            return self.path.read_text(encoding="utf-8").strip()[:200]
        except OSError:
            return ""

    def acquire(self, owner: str) -> TrainingLock:
        """Take the lock now or raise ``TrainingLockBusy``; ``owner`` says who holds it."""
        if self._fd is not None:
            raise RuntimeError(f"The training lock {self.path} is already held by this object.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TrainingLockBusy(self.path, self.holder()) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._describe(owner)
        return self

    def adopt(self, fd: int, owner: str) -> bool:
        """Hold the lock through ``fd``, inherited from a parent that took it; False when
        ``fd`` is not this project's lock file or does not hold the lock."""
        if self._fd is not None:
            return False
        try:
            same_file = os.path.samestat(os.fstat(fd), os.stat(self.path))
            if same_file:
                # on the parent's open file description: succeeds when the parent holds it
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        if not same_file:
            return False
        self._fd, self._adopted = fd, True
        self._describe(owner)
        return True

    def _describe(self, owner: str) -> None:
        since = datetime.now(UTC).isoformat(timespec="seconds")
        text = f"{owner}, pid {os.getpid()}, since {since}\n".encode()
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        """Let the lock go (safe to call when it is not held). An adopted lock stays with the
        parent that took it: it releases it when its job is over."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._adopted:
            self._adopted = False
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)

    def __enter__(self) -> TrainingLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


TRAINING_PARTS = frozenset({"validation", "feature_engineering", "training", "__default__"})
"""The registered pipelines that write what ``training`` writes."""


def _writes_training_outputs(pipeline: Any, names: list[str]) -> bool:
    """Whether ``pipeline`` writes what the project's ``training`` pipeline writes: by their
    outputs when the registry built ``training`` for this run, else by the pipelines' names
    (the registry builds ``training`` only when a run asks for it, to keep other runs light)."""
    from kedro.framework.project import pipelines

    training = pipelines.get("training")
    if training is not None:
        return bool(set(pipeline.all_outputs()) & set(training.all_outputs()))
    return bool(TRAINING_PARTS.intersection(names))


class TrainingLockHook:
    """Hold the project's training lock for every run that writes what training writes."""

    def __init__(self) -> None:
        self._lock: TrainingLock | None = None

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> None:
        names = run_params.get("pipeline_names") or ["__default__"]
        if not _writes_training_outputs(pipeline, names):
            return
        lock = TrainingLock(run_params["project_path"])
        owner = f"kedro run --pipeline {','.join(names)}"
        inherited = os.environ.get(LOCK_FD_VARIABLE, "")
        if not (inherited.isdigit() and lock.adopt(int(inherited), owner)):
            lock.acquire(owner)
        self._lock = lock
        logger.info("Holding the training lock %s", lock.path)

    @hook_impl(trylast=True)  # after the promotion (PromotionHook, also trylast)
    def after_pipeline_run(self) -> None:
        self._release()

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        self._release()

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()
