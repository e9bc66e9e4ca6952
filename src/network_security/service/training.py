"""Training jobs: ``kedro run --pipeline training`` in a child process, one MLflow run each.

The service creates the run (status ``SCHEDULED``, tag ``network_security.job_id``) and hands it
to the child (``MLFLOW_RUN_ID``); a job's status and outcome are read back from that run (its
status, metrics, the promotion step's tags, the exit code, error and output tags recorded when
the child exits), so any worker reports any job. The child runs in its own process group,
without the API token, under the project's training lock (inherited descriptor).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import network_security
from network_security.sanitize import redact
from network_security.service.settings import API_TOKEN_VARIABLE
from network_security.training_lock import LOCK_FD_VARIABLE, TrainingLock, TrainingLockBusy

logger = logging.getLogger(__name__)

JOB_TAG, PREVIOUS_TAG = "network_security.job_id", "network_security.previous_champion"
TAIL_TAG = "network_security.log_tail"
STATUS = {"SCHEDULED": "queued", "RUNNING": "running", "FINISHED": "succeeded"}
LOG_TAIL_LINES = 20
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b")


def _failure_reason(lines: list[str], limit: int = 600) -> str:
    """``: <the exception>`` from the end of a run's output, or an empty string."""
    for index in range(len(lines) - 1, -1, -1):
        if _EXCEPTION_LINE.match(lines[index]):
            reason = " ".join(line.strip() for line in lines[index:] if line.strip())
            return ": " + redact(reason)[:limit]
    return ""


def _iso(millis: int | None) -> str | None:
    return (
        datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds") if millis else None
    )


class TrainingAlreadyRunning(RuntimeError):
    """Another training run of the project is in progress (here or in another process)."""


class TrainingRunner:
    """Starts training runs one at a time; reports jobs from their MLflow runs."""

    def __init__(
        self, settings: Any, champion: Any, tracking_uri: str | None, experiment: str
    ) -> None:
        self.settings, self.champion = settings, champion
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.project_path, self.pipeline = Path(settings.project_path), settings.training_pipeline
        self._lock, self._stopping = threading.Lock(), False
        self.running: str | None = None  # the id of this process's job while it runs
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def command(self) -> list[str]:
        """The ``kedro run`` command line of a training run."""
        command = [sys.executable, "-m", "kedro", "run", "--pipeline", self.pipeline]
        if self.settings.kedro_env:
            command += ["--env", self.settings.kedro_env]
        if params := self.settings.training_runtime_params:
            command += ["--params", ",".join(f"{k}={v}" for k, v in params.items())]
        return command

    def _environment(self) -> dict[str, str]:
        """The service's environment less the API token (the run never needs it)."""
        env = {k: v for k, v in os.environ.items() if k != API_TOKEN_VARIABLE}
        package_root = str(Path(network_security.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        if self.tracking_uri:  # the run logs into the store the service reads
            env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        env.setdefault("KEDRO_DISABLE_TELEMETRY", "true")  # never a consent prompt
        return env | {"PYTHONUNBUFFERED": "1", "COLUMNS": env.get("COLUMNS", "160")}

    def _client(self) -> Any:
        import mlflow

        return mlflow.MlflowClient(self.tracking_uri, self.tracking_uri)

    def start(self) -> str:
        """Start a run in the background and return its job id; one at a time."""
        job_id, lock = uuid.uuid4().hex, TrainingLock(self.project_path)
        with self._lock:
            if self._stopping:
                raise TrainingAlreadyRunning("The service is shutting down; no new training runs.")
            try:
                lock.acquire(f"network-security service, training job {job_id}")
            except TrainingLockBusy as busy:
                raise TrainingAlreadyRunning(str(busy)) from None
            try:
                client = self._client()
                found = client.get_experiment_by_name(self.experiment)
                experiment = found.experiment_id if found else None
                experiment = experiment or client.create_experiment(self.experiment)
                previous = self.champion.refresh()
                tags = {JOB_TAG: job_id, PREVIOUS_TAG: previous.version if previous else ""}
                run_id = client.create_run(
                    experiment, tags=tags, run_name=self.pipeline
                ).info.run_id
                client.update_run(run_id, status="SCHEDULED")
                name = f"training-{job_id[:8]}"
                self._thread = threading.Thread(
                    target=self._run, args=(run_id, lock), name=name, daemon=True
                )
                self.running = job_id
                self._thread.start()
            except BaseException:
                self.running = None
                lock.release()
                raise
        logger.info("Started training job %s (MLflow run %s)", job_id, run_id)
        return job_id

    def _run(self, run_id: str, lock: TrainingLock) -> None:
        """Run the child, then record its exit code, error and output in the MLflow run."""
        code, error, tail = None, None, []
        env = self._environment() | {"MLFLOW_RUN_ID": run_id, LOCK_FD_VARIABLE: str(lock.fileno())}
        try:
            with tempfile.TemporaryFile(prefix="network-security-training-") as log:
                with self._lock:
                    if self._stopping:
                        raise RuntimeError("the service shut down before the run started")
                    self._process = process = subprocess.Popen(  # noqa: S603 - fixed command
                        self.command(),
                        cwd=self.project_path,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        pass_fds=(lock.fileno(),),
                        start_new_session=True,  # its own process group: stopped whole
                    )
                timeout = self.settings.training_timeout_seconds
                try:
                    code = process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    error = (
                        f"The training run exceeded {timeout:.0f} s and was stopped; raise "
                        "NETWORK_SECURITY_TRAINING_TIMEOUT_SECONDS if runs need longer."
                    )
                    code = self._stop(process)
                log.seek(0)
                lines = log.read().decode("utf-8", errors="replace").splitlines()
            tail = [redact(line) for line in lines[-LOG_TAIL_LINES:]]
            if code != 0 and error is None and self._stopping:
                error = "The service shut down while the run was in progress."
            elif code != 0 and error is None:
                error = (
                    f"kedro run --pipeline {self.pipeline} exited with code {code}"
                    f"{_failure_reason(lines)}; see log_tail, or run the same command in the "
                    "project for the full output."
                )
        except Exception as problem:  # noqa: BLE001 - a job failure is reported, never raised
            logger.exception("Training run %s could not be run", run_id)
            error = redact(f"The training run could not be run: {problem}")
        finally:
            self._record(run_id, code, error, tail)
            self.running, self._process = None, None
            lock.release()
            logger.info("Training run %s ended (exit code %s)", run_id, code)

    def _record(self, run_id: str, code: int | None, error: str | None, tail: list[str]) -> None:
        """The run's exit code, error and output as tags of its MLflow run (ended if the run did
        not reach MLflow); then the champion is refreshed, so a new one is served at once."""
        with contextlib.suppress(Exception):
            client = self._client()
            for key, value in (("exit_code", code), ("error", error), ("log_tail", tail)):
                if value not in (None, []):
                    text = "\n".join(value) if key == "log_tail" else str(value)
                    client.set_tag(run_id, f"network_security.{key}", text[-5000:])
            if client.get_run(run_id).info.status in {"SCHEDULED", "RUNNING"}:
                client.set_terminated(run_id, "FINISHED" if code == 0 else "FAILED")
        with contextlib.suppress(Exception):
            self.champion.refresh()

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job as its MLflow run reports it, or None when there is no such job."""
        if not re.fullmatch(r"[0-9a-f]{32}", job_id):
            return None
        client = self._client()
        experiment = client.get_experiment_by_name(self.experiment)
        runs = experiment and client.search_runs(
            [experiment.experiment_id], f"tags.`{JOB_TAG}` = '{job_id}'", max_results=1
        )
        if not runs:
            return None
        info, tags = runs[0].info, runs[0].data.tags
        outcome, code = tags.get("promotion.outcome"), tags.get("network_security.exit_code")
        status = STATUS.get(info.status, "failed")
        # the run ends in MLflow before the promotion step and the child's exit are recorded
        if job_id == self.running or (status == "succeeded" and code is None):
            status = "queued" if status == "queued" else "running"
        elif outcome == "failed" or code not in {None, "0"}:
            status = "failed"
        previous = tags.get(PREVIOUS_TAG) or None
        promoted = None if outcome in {None, "failed"} else outcome == "promoted"
        done = status in {"succeeded", "failed"}
        return {
            "job_id": job_id,
            "run_id": info.run_id,
            "pipeline": info.run_name,
            "status": status,
            "created_at": _iso(info.start_time),
            "finished_at": _iso(info.end_time) if done else None,
            "exit_code": None if code is None else int(code),
            "promoted": promoted,
            "reason": tags.get("promotion.reason"),
            "previous_model_version": previous,
            "model_version": tags.get("promotion.version") if promoted else previous,
            "candidate_version": tags.get("promotion.version"),
            "metrics": runs[0].data.metrics,
            "error": tags.get("network_security.error"),
            "log_tail": tags.get(TAIL_TAG, "").splitlines() if status == "failed" else [],
        }

    def _stop(self, process: subprocess.Popen, grace_seconds: float = 10.0) -> int:
        """SIGTERM the run's process group, then SIGKILL it after ``grace_seconds``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                return process.wait(timeout=grace_seconds)
        return -1

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop a running job (the service is shutting down) and wait for its thread."""
        with self._lock:
            self._stopping = True
            process, thread = self._process, self._thread
        if process is not None and process.poll() is None:
            logger.warning("Stopping training job %s: the service is shutting down", self.running)
            self._stop(process)
        if thread is not None:
            thread.join(timeout=timeout)
