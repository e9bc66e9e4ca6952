"""Training hygiene: no API token in the training run's environment, one training run per
project across processes (service workers and ``kedro run``), tokens checked strictly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

import network_security
from network_security.service.settings import ServiceSettings
from network_security.service.training import TrainingRunner
from network_security.training_lock import LOCK_FD_VARIABLE, TrainingLock, TrainingLockBusy


def service_environment(**settings: str) -> dict[str, str]:
    """This environment less any NETWORK_SECURITY_* variable, plus ``settings``; the package
    importable from where the tests import it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETWORK_SECURITY_")}
    package_root = str(Path(network_security.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update({f"NETWORK_SECURITY_{key.upper()}": value for key, value in settings.items()})
    return env


# the stand-in for `kedro run` in the jobs below: reports what it got, then waits to be released
CHILD = """
import os, sys, time
from pathlib import Path
from network_security.training_lock import LOCK_FD_VARIABLE, TrainingLock
print("token:", os.environ.get("NETWORK_SECURITY_API_TOKEN"), flush=True)
lock = TrainingLock(Path.cwd())
print("adopted:", lock.adopt(int(os.environ[LOCK_FD_VARIABLE]), "child"), flush=True)
release, deadline = Path(sys.argv[1]), time.monotonic() + 60
while not release.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(3)
"""


def wait_for_job(client, job_id: str, headers: dict, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/train/{job_id}", headers=headers).json()
        if status["status"] in {"succeeded", "failed"}:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


def test_one_training_run_per_project_across_workers_and_no_token_in_the_run(
    make_client, api_token, monkeypatch, tmp_path, service_project
):
    release = tmp_path / "release"
    monkeypatch.setenv("NETWORK_SECURITY_API_TOKEN", api_token)  # as a real service has it
    monkeypatch.setattr(
        TrainingRunner, "command", lambda self: [sys.executable, "-c", CHILD, str(release)]
    )
    auth = {"Authorization": f"Bearer {api_token}"}
    worker_1, worker_2 = make_client(api_token=api_token), make_client(api_token=api_token)

    started = worker_1.post("/train", headers=auth)
    assert started.status_code == 202
    job_id = started.json()["job_id"]
    busy = worker_2.post("/train", headers=auth)  # another worker process would see the same
    assert busy.status_code == 409
    assert "Another training run" in busy.json()["detail"]
    assert job_id in busy.json()["detail"]  # who holds it
    with pytest.raises(TrainingLockBusy, match=job_id):  # so does any other process
        TrainingLock(service_project).acquire("test")

    release.touch()
    status = wait_for_job(worker_1, job_id, auth)
    assert status["exit_code"] == 3
    assert "token: None" in status["log_tail"]
    assert "adopted: True" in status["log_tail"]  # the run held the job's lock

    again = worker_2.post("/train", headers=auth)  # the lock went with the job
    assert again.status_code == 202
    wait_for_job(worker_2, again.json()["job_id"], auth)
    TrainingLock(service_project).acquire("test").release()


def test_a_crashed_holder_leaves_no_lock_behind(tmp_path):
    holder = subprocess.Popen(  # noqa: S603 - fixed command
        [sys.executable, "-c",
         "import sys, time; from network_security.training_lock import TrainingLock;"
         f"TrainingLock({str(tmp_path)!r}).acquire('doomed run'); print('held', flush=True);"
         "time.sleep(60)"],
        stdout=subprocess.PIPE, env=service_environment(),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(TrainingLockBusy, match="doomed run"):
            TrainingLock(tmp_path).acquire("second")
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with TrainingLock(tmp_path).acquire("after the crash") as lock:
        assert lock.held


def test_kedro_runs_that_train_wait_their_turn_and_others_do_not(
    kedro_project, run_kedro, mongo_client, mongo_database
):
    with TrainingLock(kedro_project).acquire("network-security service, training job abc"):
        with pytest.raises(TrainingLockBusy) as busy:
            run_kedro(kedro_project, "feature_engineering")
        assert "training job abc" in str(busy.value)
        assert not (kedro_project / "data" / "05_model_input" / "train.parquet").exists()
        run_kedro(kedro_project, "ingestion")  # writes nothing training writes: not blocked
        assert mongo_client[mongo_database]["phishing_records"].count_documents({}) > 0


def test_a_kedro_run_started_by_the_lock_holder_adopts_its_lock(kedro_project, mongo_uri):
    env = service_environment()
    env.update(MONGODB_URI=mongo_uri, KEDRO_DISABLE_TELEMETRY="1")
    command = [sys.executable, "-m", "kedro", "run", "--pipeline", "feature_engineering"]
    with TrainingLock(kedro_project).acquire("service job") as lock:
        refused = subprocess.run(  # noqa: S603 - fixed command
            command, cwd=kedro_project, env=env, capture_output=True, text=True, timeout=300
        )
        assert refused.returncode != 0
        assert "Another training run" in refused.stdout + refused.stderr
        adopted = subprocess.run(  # noqa: S603 - fixed command
            command, cwd=kedro_project, env={**env, LOCK_FD_VARIABLE: str(lock.fileno())},
            pass_fds=(lock.fileno(),), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        output = adopted.stdout + adopted.stderr
        assert "Another training run" not in output
        assert "Holding the training lock" in output
        # the child left the lock with its parent
        with pytest.raises(TrainingLockBusy):
            TrainingLock(kedro_project).acquire("third")


@pytest.mark.parametrize("token", ["Zq9", "Ж", "  fifteen-chars!  ", "y" * 15])
def test_a_short_token_is_refused_at_start_up_without_echoing_it(token, monkeypatch):
    with pytest.raises(ValidationError) as error:
        ServiceSettings(api_token=token)
    assert "at least 16" in str(error.value)
    assert token.strip() not in str(error.value)
    monkeypatch.setenv("NETWORK_SECURITY_API_TOKEN", token)
    with pytest.raises(ValidationError):
        ServiceSettings()


def test_serve_with_a_three_character_token_exits_with_a_clear_message(service_project):
    env = service_environment(api_token="abc", project_path=str(service_project))
    result = subprocess.run(  # noqa: S603 - fixed command
        [sys.executable, "-m", "network_security", "serve", "--port", "1"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "NETWORK_SECURITY_API_TOKEN is 3 characters long" in result.stderr
    assert "at least 16" in result.stderr
    assert "Traceback" not in result.stderr


def test_tokens_are_compared_without_surrounding_blanks_on_both_sides(make_client, api_token):
    client = make_client(api_token=f"  {api_token}\t\n")
    # a job id that does not exist: 404 once authenticated, 401 otherwise
    for sent in (api_token, f"  {api_token}  "):
        response = client.get("/train/0", headers={"Authorization": f"Bearer {sent}"})
        assert response.status_code == 404, sent
    assert client.get("/train/0", headers={"Authorization": "Bearer abc"}).status_code == 401


def test_the_environment_of_a_run_has_no_token(tmp_path, monkeypatch, api_token):
    monkeypatch.setenv("NETWORK_SECURITY_API_TOKEN", api_token)
    runner = TrainingRunner(ServiceSettings(project_path=tmp_path), None, None, "e")
    env = runner._environment()
    assert "NETWORK_SECURITY_API_TOKEN" not in env
    assert api_token not in "".join(env.values())
    assert os.environ["NETWORK_SECURITY_API_TOKEN"] == api_token  # the service keeps its own


def test_a_lock_file_of_another_file_is_not_adopted(tmp_path):
    other = tmp_path / "other"
    other.write_text("")
    fd = os.open(other, os.O_RDWR)
    try:
        Path(tmp_path / "data" / "06_models").mkdir(parents=True)
        (tmp_path / "data" / "06_models" / ".training.lock").write_text("")
        assert TrainingLock(tmp_path).adopt(fd, "child") is False
    finally:
        os.close(fd)


def test_a_short_token_that_bypassed_the_settings_still_opens_nothing(make_settings, api_token):
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from network_security.service.app import create_app

    settings = make_settings().model_copy(update={"api_token": SecretStr("abc")})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for sent in ("abc", " abc ", api_token):
            response = client.post("/train", headers={"Authorization": f"Bearer {sent}"})
            assert response.status_code == 403, sent
            assert "abc" not in response.text


def test_the_lock_is_released_after_the_promotion_at_the_end_of_a_run():
    from kedro.framework.hooks.manager import _create_hook_manager, _register_hooks

    from network_security import settings

    calls: list[str] = []
    manager = _create_hook_manager()
    _register_hooks(manager, settings.HOOKS)
    for impl in manager.hook.after_pipeline_run.get_hookimpls():
        calls.append(type(impl.plugin).__name__)
    order = list(reversed(calls))  # pluggy calls the implementations from the end of the list
    assert order.index("TrainingLockHook") > order.index("PromotionHook"), order
    first = manager.hook.before_pipeline_run.get_hookimpls()[-1]
    assert type(first.plugin).__name__ == "TrainingLockHook"  # taken before anything else
