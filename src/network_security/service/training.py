"""Training jobs started over HTTP: ``kedro run --pipeline training`` in a child process.

A child process rather than a ``KedroSession`` in a thread: the run gets its own interpreter
(Kedro's project settings, the MLflow active run, logging configuration and the embedded
database hook are process-global), a crash or a runaway run cannot take the service down, and a
run that exceeds its time limit is killed with its whole process group. The run's output goes
to a temporary log file outside the project; nothing here writes into the source tree.

Only one job runs at a time, across processes: a job holds the project's training lock
(``network_security.training_lock``, an ``flock`` that a second service worker or a
``kedro run`` beside the service also takes) from before its run starts until its outcome is
recorded, and its ``kedro run`` child holds the same lock through an inherited descriptor. The
child's environment has no API token.

The outcome: the run promoted a new champion when the champion file changed; the reason and the
metrics come from what the run wrote (the catalog's ``promotion_decision`` and
``candidate_model``, when written by this run), so a run that did not promote still reports the
test metrics of the model it trained.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro_datasets.pickle import PickleDataset

import network_security
from network_security.model import PhishingModel
from network_security.service.champion import ChampionStore
from network_security.service.settings import API_TOKEN_VARIABLE
from network_security.training_lock import LOCK_FD_VARIABLE, TrainingLock, TrainingLockBusy

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
_CREDENTIALS_IN_URI = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^@/\s]+@")


def redact(text: str) -> str:
    """``text`` with ``user:password@`` in any URI replaced by ``***@``."""
    return _CREDENTIALS_IN_URI.sub(r"\g<scheme>***@", text)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b")


def _failure_reason(lines: list[str], limit: int = 600) -> str:
    """``: <the exception>`` from the end of a run's output, or an empty string."""
    for index in range(len(lines) - 1, -1, -1):
        if _EXCEPTION_LINE.match(lines[index]):
            reason = " ".join(line.strip() for line in lines[index:] if line.strip())
            return ": " + redact(reason)[:limit]
    return ""


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _load_pickle(path: Path) -> Any:
    return PickleDataset(filepath=str(path)).load()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TrainingAlreadyRunning(RuntimeError):
    """A training job is running (here, or another process's run); one runs at a time."""

    def __init__(self, job_id: str | None, detail: str | None = None) -> None:
        super().__init__(
            f"Training job {job_id} is still running; only one training run at a time. "
            f"Poll GET /train/{job_id} and try again when it has finished."
            if job_id is not None
            else f"{detail} Try again when it has finished."
        )
        self.job_id = job_id


@dataclass
class TrainingJob:
    """One training run and what came of it."""

    job_id: str
    pipeline: str
    status: str = "queued"  # queued -> running -> succeeded | failed
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    exit_code: int | None = None
    promoted: bool | None = None
    reason: str | None = None
    previous_model_version: str | None = None
    model_version: str | None = None
    candidate_version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in {"succeeded", "failed"}

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON; the log tail only for a failed run."""
        data = asdict(self)
        if self.status != "failed":
            del data["log_tail"]
        return data


class TrainingRunner:
    """Starts training runs one at a time and remembers the recent jobs."""

    def __init__(  # noqa: PLR0913
        self,
        project_path: Path,
        champion: ChampionStore,
        pipeline: str = "training",
        runtime_params: dict[str, str] | None = None,
        kedro_env: str | None = None,
        timeout_seconds: float = 3600.0,
        jobs_kept: int = 50,
        candidate_path: Path | None = None,
        decision_path: Path | None = None,
    ) -> None:
        self.project_path = Path(project_path)
        self.candidate_path = candidate_path
        self.decision_path = decision_path
        self.champion = champion
        self.pipeline = pipeline
        self.runtime_params = dict(runtime_params or {})
        self.kedro_env = kedro_env
        self.timeout_seconds = timeout_seconds
        self.jobs_kept = jobs_kept
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, TrainingJob] = OrderedDict()
        self._running: TrainingJob | None = None
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._training_lock: TrainingLock | None = None
        self._stopping = False

    def command(self) -> list[str]:
        """The ``kedro run`` command line of a training run."""
        command = [sys.executable, "-m", "kedro", "run", "--pipeline", self.pipeline]
        if self.kedro_env:
            command += ["--env", self.kedro_env]
        if self.runtime_params:
            command += ["--params", ",".join(f"{k}={v}" for k, v in self.runtime_params.items())]
        return command

    def start(self) -> TrainingJob:
        """Start a run in the background; raises TrainingAlreadyRunning if one is running."""
        with self._lock:
            if self._stopping:
                raise RuntimeError("The service is shutting down; no new training runs.")
            if self._running is not None:
                raise TrainingAlreadyRunning(self._running.job_id)
            job = TrainingJob(job_id=uuid.uuid4().hex, pipeline=self.pipeline)
            lock = TrainingLock(self.project_path)
            try:
                lock.acquire(f"network-security service, training job {job.job_id}")
            except TrainingLockBusy as busy:
                raise TrainingAlreadyRunning(None, str(busy)) from None
            self._jobs[job.job_id] = job
            self._running = job
            self._training_lock = lock
            self._forget_old_jobs()
            self._thread = threading.Thread(
                target=self._run, args=(job,), name=f"training-{job.job_id[:8]}", daemon=True
            )
            try:
                self._thread.start()
            except BaseException:
                self._running, self._training_lock = None, None
                lock.release()
                raise
        logger.info("Started training job %s (pipeline %s)", job.job_id, self.pipeline)
        return job

    def get(self, job_id: str) -> TrainingJob | None:
        """The job with this id, or None when it is unknown (or long forgotten)."""
        with self._lock:
            return self._jobs.get(job_id)

    @property
    def running(self) -> TrainingJob | None:
        return self._running

    def _forget_old_jobs(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.finished]
        for job_id in finished[: max(0, len(self._jobs) - self.jobs_kept)]:
            del self._jobs[job_id]

    def _environment(self) -> dict[str, str]:
        """The run's environment: the service's, less the API token (the run never needs it,
        and a child's environment is readable by more than the service)."""
        env = dict(os.environ)
        env.pop(API_TOKEN_VARIABLE, None)
        # the run imports this very package, wherever the service imported it from
        package_root = str(Path(network_security.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        # never block on the kedro-telemetry consent prompt in a background run
        env.setdefault("DO_NOT_TRACK", "1")
        env.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("COLUMNS", "160")  # readable log lines from kedro's rich logging
        return env

    def _run(self, job: TrainingJob) -> None:
        before = self.champion.refresh()
        job.previous_model_version = before.model.version if before else None
        started = time.monotonic()
        started_wall = time.time()
        job.started_at = _now()
        job.status = "running"
        try:
            with tempfile.TemporaryFile(prefix="network-security-training-") as log:
                exit_code = self._run_process(job, log)
                log.seek(0)
                lines = log.read().decode("utf-8", errors="replace").splitlines()
            job.log_tail = [redact(line) for line in lines[-LOG_TAIL_LINES:]]
            job.exit_code = exit_code
            if exit_code == 0:
                self._record_outcome(job, before, started_wall)
                job.status = "succeeded"
            else:
                job.status = "failed"
                job.error = job.error or (
                    f"kedro run --pipeline {self.pipeline} exited with code {exit_code}"
                    f"{_failure_reason(lines)}; see log_tail, or run the same command in the "
                    "project for the full output."
                )
        except Exception as error:  # noqa: BLE001 - a job failure is reported, never raised
            logger.exception("Training job %s failed", job.job_id)
            job.status = "failed"
            job.error = redact(f"The training run could not be run: {error}")
        finally:
            job.finished_at = _now()
            job.duration_seconds = round(time.monotonic() - started, 3)
            with self._lock:
                self._running = None
                self._process = None
                lock, self._training_lock = self._training_lock, None
            if lock is not None:
                lock.release()
            logger.info(
                "Training job %s %s in %.1f s (promoted: %s)",
                job.job_id, job.status, job.duration_seconds, job.promoted,
            )  # fmt: skip

    def _run_process(self, job: TrainingJob, log: Any) -> int:
        with self._lock:
            if self._stopping:
                job.error = "The service shut down before the run started."
                return -1
            env = self._environment()
            pass_fds: tuple[int, ...] = ()
            if self._training_lock is not None and self._training_lock.held:
                # the run holds this job's lock through the inherited descriptor
                pass_fds = (self._training_lock.fileno(),)
                env[LOCK_FD_VARIABLE] = str(pass_fds[0])
            self._process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
                self.command(),
                cwd=self.project_path,
                env=env,
                pass_fds=pass_fds,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so it can be stopped whole
            )
            process = self._process
        try:
            return process.wait(timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired:
            job.error = (
                f"The training run exceeded {self.timeout_seconds:.0f} s and was stopped; raise "
                "NETWORK_SECURITY_TRAINING_TIMEOUT_SECONDS if runs need longer."
            )
            self._stop_process(process)
            return process.returncode if process.returncode is not None else -1

    def _record_outcome(self, job: TrainingJob, before: Any, started_wall: float) -> None:
        """Promoted when the champion file changed; metrics of the model this run trained."""
        after = self.champion.refresh()
        job.promoted = after is not None and (
            before is None
            or (after.model.version, after.model.trained_at)
            != (before.model.version, before.model.trained_at)
        )
        if after is not None:
            job.model_version = after.model.version
        decision = self._written_by_run(self.decision_path, started_wall, _load_json)
        if isinstance(decision, dict):
            job.reason = str(decision.get("reason", "")) or None
            if bool(decision.get("promote")) != job.promoted:
                logger.warning(
                    "Training job %s: the run's promotion decision says promote=%s, but the "
                    "champion file %s changed: %s",
                    job.job_id, decision.get("promote"), self.champion.path, job.promoted,
                )  # fmt: skip
        candidate = self._written_by_run(self.candidate_path, started_wall, _load_pickle)
        if isinstance(candidate, PhishingModel):
            job.candidate_version = str(candidate.version)
            job.metrics = {k: float(v) for k, v in candidate.metrics.items()}
        elif job.promoted:
            job.metrics = {k: float(v) for k, v in after.model.metrics.items()}

    @staticmethod
    def _written_by_run(path: Path | None, since: float, load: Any) -> Any:
        """What ``load(path)`` gives if the file was written since ``since``, else None."""
        if path is None:
            return None
        try:
            if path.stat().st_mtime < since - 1.0:
                return None  # left by an earlier run
            return load(path)
        except Exception as error:  # noqa: BLE001 - an unreadable report only loses detail
            logger.warning("Could not read the training run's %s: %s", path, error)
            return None

    @staticmethod
    def _stop_process(process: subprocess.Popen, grace_seconds: float = 10.0) -> None:
        """SIGTERM the run's process group, then SIGKILL it after ``grace_seconds``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=grace_seconds)
                return
            except subprocess.TimeoutExpired:
                continue

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop a running job (service shutdown) and wait for its thread."""
        with self._lock:
            self._stopping = True
            process, thread, job = self._process, self._thread, self._running
        if process is not None and process.poll() is None:
            logger.warning("Stopping training job %s: the service is shutting down", job.job_id)
            if job is not None:
                job.error = "The service shut down while the run was in progress."
            self._stop_process(process)
        if thread is not None:
            thread.join(timeout=timeout)
