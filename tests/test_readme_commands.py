"""Every server command of README's usage table, run as a user would, in a temporary copy of the
project: it answers 200 on its main page, Jupyter kernels evaluate the catalog, and Ctrl+C
(SIGINT to the process group) leaves no process of it behind (no database, no MLflow job
runner, no kernel). Nothing but a pipeline run starts the embedded database: `kedro mlflow ui`
starts none, a Jupyter kernel starts it on its first MongoDB load, `kedro viz run --include-hooks`
on its first preview of the records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from network_security.embedded_mongo import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 240.0  # seconds to the first 200 (a loaded 2-core machine; typically 15-40 s)
STOP_TIMEOUT = 60.0  # seconds for every process of the command to end after Ctrl+C


def executable(name: str) -> str:
    """The console script ``name`` installed beside this Python (as the README install does)."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"`{name}` is not installed: run pip install -e '.[dev]'"
    return found


def _default_sigint() -> None:  # pragma: no cover - runs in the child before exec
    """Ctrl+C in a terminal interrupts; a background parent may have left SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Command:
    """A README command running in its own process group, as in a terminal, with its log."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.argv, self.log = argv, log
        with log.open("wb") as output:
            self.process = subprocess.Popen(  # noqa: S603 - fixed commands
                argv,
                cwd=cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
                preexec_fn=_default_sigint,  # noqa: PLW1509
            )
        self.seen: dict[int, psutil.Process] = {}
        self.record_tree()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def record_tree(self) -> list[psutil.Process]:
        """The command's processes now (every descendant, in its group or not); remembered."""
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for process in tree:
            self.seen.setdefault(process.pid, process)
        return tree

    def command_lines(self) -> list[str]:
        lines = []
        for process in self.record_tree():
            with contextlib.suppress(psutil.Error):
                lines.append(" ".join(process.cmdline()))
        return lines

    def wait_for_200(self, url: str, timeout: float = READY_TIMEOUT) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                f"`{' '.join(self.argv)}` exited with {self.process.returncode}:\n{self.output()}"
            )
            # kedro viz serves from a child process and waits on, even when that child failed
            assert "Traceback (most recent call last)" not in self.log.read_text(
                errors="replace"
            ), self.output()
            try:
                response = httpx.get(url, timeout=5, follow_redirects=True)
                if response.status_code == 200:
                    self.record_tree()
                    return response
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{url} did not answer 200 within {timeout:.0f} s:\n{self.output()}")

    def interrupt(self) -> list[str]:
        """Ctrl+C: SIGINT to the process group; the command lines of what is still alive after
        ``STOP_TIMEOUT`` (those are then killed, so a failing test leaves nothing behind)."""
        self.record_tree()
        os.killpg(self.process.pid, signal.SIGINT)
        _, alive = psutil.wait_procs(list(self.seen.values()), timeout=STOP_TIMEOUT)
        leftovers = []
        for process in alive:
            try:
                leftovers.append(" ".join(process.cmdline()))
                process.kill()
            except psutil.Error:
                pass
        self.process.wait(timeout=30)
        return leftovers

    def kill(self) -> None:
        """Last resort after a failure: kill whatever of the command is still running."""
        self.record_tree()
        for process in self.seen.values():
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.process.wait(timeout=30)


def viz_port() -> int:
    """A free loopback port kedro-viz accepts (it refuses ports above 49151)."""
    import random
    import socket

    for port in random.sample(range(20_000, 49_000), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 49000")


def _databases(lines: list[str]) -> list[str]:
    return [line for line in lines if "secantus" in line]


@pytest.fixture
def command_env(tmp_path: Path, mlflow_tracking_uri: str) -> dict[str, str]:
    """The environment of a user's shell: no MONGODB_URI (the embedded database is the
    default); Jupyter and IPython state in the temporary folder, not in the home directory."""
    env = {key: value for key, value in os.environ.items() if key != "MONGODB_URI"}
    state = tmp_path / "state"
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        MLFLOW_TRACKING_URI=mlflow_tracking_uri,  # an existing store: no 10 s schema migration
        JUPYTER_DATA_DIR=str(state / "jupyter-data"),
        JUPYTER_CONFIG_DIR=str(state / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(state / "jupyter-runtime"),
        IPYTHONDIR=str(state / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    # the package of this checkout, also in the kernels and the service (not another install)
    source = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture
def start(kedro_project: Path, command_env: dict[str, str], tmp_path: Path) -> Iterator:
    """``start(argv)``: a README command in the temporary project; killed if a test fails."""
    commands: list[Command] = []

    def run(argv: list[str]) -> Command:
        log = tmp_path / f"command-{len(commands)}.log"
        command = Command(argv, cwd=kedro_project, env=command_env, log=log)
        commands.append(command)
        return command

    yield run
    for command in commands:
        if command.process.poll() is None:
            command.kill()


# ---------------------------------------------------------------- Jupyter


def _execute_in_kernel(base: str, token: str, kernel_id: str, code: str) -> str:
    """Run ``code`` in a kernel of the server over its websocket API; its output, or raise."""
    from tornado.websocket import websocket_connect

    async def execute() -> str:
        url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels?token={token}"
        # the server answers the handshake once the kernel is ready (it loads the project)
        connection = await websocket_connect(url, connect_timeout=READY_TIMEOUT)
        message_id = uuid.uuid4().hex
        request = {
            "header": {
                "msg_id": message_id, "msg_type": "execute_request", "session": uuid.uuid4().hex,
                "username": "test", "version": "5.3", "date": "",
            },
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {
                "code": code, "silent": False, "store_history": False, "user_expressions": {},
                "allow_stdin": False, "stop_on_error": True,
            },
        }  # fmt: skip
        await connection.write_message(json.dumps(request))
        output: list[str] = []
        reply, idle = None, False
        try:
            # the reply (shell) and the output (iopub) come in any order: wait for the reply
            # and for the kernel's "idle" after this request, which follows all its output
            while reply is None or not idle:
                raw = await asyncio.wait_for(connection.read_message(), READY_TIMEOUT)
                assert raw is not None, "the kernel's websocket closed"
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != message_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    output.append(content["text"])
                elif kind == "execute_result":
                    output.append(content["data"]["text/plain"])
                elif kind == "error":
                    trace = "\n".join(content["traceback"])
                    raise AssertionError(f"{content['ename']}: {content['evalue']}\n{trace}")
                elif kind == "execute_reply":
                    reply = content
                elif kind == "status":
                    idle = content["execution_state"] == "idle"
            assert reply["status"] == "ok", reply
            return re.sub(r"\x1b\[[0-9;]*m", "", "".join(output))  # no terminal colours
        finally:
            connection.close()

    return asyncio.run(execute())


KERNEL_CODE = """
names = [name for name in ("catalog", "context", "pipelines", "session") if name in globals()]
print("loaded:", names)
print("datasets:", len(catalog.filter()))
"""


@pytest.mark.parametrize(("app", "page"), [("lab", "/lab"), ("notebook", "/tree")])
def test_kedro_jupyter_serves_a_kedro_kernel_and_stops_on_ctrl_c(start, kedro_project, app, page):
    shutil.copytree(ROOT / "notebooks", kedro_project / "notebooks")
    port, token = free_port(), secrets.token_hex(16)
    argv = [
        executable("kedro"), "jupyter", app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        argv.append("--allow-root")
    command = start(argv)
    base = f"http://127.0.0.1:{port}"
    try:
        command.wait_for_200(f"{base}{page}?token={token}")
        headers = {"Authorization": f"token {token}"}
        notebook = httpx.get(
            f"{base}/api/contents/notebooks/exploration.ipynb", headers=headers, timeout=30
        )
        assert notebook.status_code == 200, notebook.text
        assert _databases(command.command_lines()) == []  # the server starts no database

        kernel = httpx.post(f"{base}/api/kernels", headers=headers, json={}, timeout=60)
        assert kernel.status_code == 201, kernel.text
        assert kernel.json()["name"] == "kedro_network_security"  # the kernel Kedro installed
        kernel_id = kernel.json()["id"]
        output = _execute_in_kernel(base, token, kernel_id, KERNEL_CODE)
        assert "loaded: ['catalog', 'context', 'pipelines', 'session']" in output
        assert int(re.search(r"datasets: (\d+)", output).group(1)) > 20
        assert _databases(command.command_lines()) == []  # a kernel starts no database...
        output = _execute_in_kernel(base, token, kernel_id, 'len(catalog.load("phishing_records"))')
        assert output == "0"  # ...until it reads MongoDB: the project's own (empty) database
        assert len(_databases(command.command_lines())) == 1
        assert (kedro_project / "data" / "mongo").is_dir()
    except BaseException:
        command.kill()
        raise
    leftovers = command.interrupt()
    assert leftovers == [], f"still running after Ctrl+C: {leftovers}\n{command.output()}"


def test_kedro_ipython_loads_the_project_and_starts_no_database(kedro_project, command_env):
    code = f"{KERNEL_CODE}\nprint('pipelines:', sorted(pipelines))"
    result = subprocess.run(  # noqa: S603 - fixed command
        [executable("kedro"), "ipython", "--no-banner", "-c", code],
        cwd=kedro_project,
        env=command_env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "loaded: ['catalog', 'context', 'pipelines', 'session']" in output, output[-4000:]
    assert int(re.search(r"datasets: (\d+)", output).group(1)) > 20
    assert "'inference'" in re.search(r"pipelines: (\[.*\])", output).group(1)
    assert not (kedro_project / "data" / "mongo").exists()


# ---------------------------------------------------------------- MLflow


def test_kedro_mlflow_ui_serves_without_a_database_and_stops_on_ctrl_c(start, kedro_project):
    port = free_port()
    command = start(
        [executable("kedro"), "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port)]
    )
    try:
        command.wait_for_200(f"http://127.0.0.1:{port}/")
        lines = command.command_lines()
        assert any("mlflow" in line and "ui" in line for line in lines), lines
        assert _databases(lines) == [], "kedro mlflow ui started the embedded database"
        assert not (kedro_project / "data" / "mongo").exists()
    except BaseException:
        command.kill()
        raise
    leftovers = command.interrupt()
    assert leftovers == [], f"still running after Ctrl+C: {leftovers}\n{command.output()}"


# ---------------------------------------------------------------- kedro viz


def test_kedro_viz_with_hooks_previews_records_and_stops_the_database_on_ctrl_c(
    start, kedro_project
):
    port = viz_port()
    argv = [
        executable("kedro"), "viz", "run", "--include-hooks", "--no-browser",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    command = start(argv)
    base = f"http://127.0.0.1:{port}"
    try:
        command.wait_for_200(f"{base}/")
        graph = httpx.get(f"{base}/api/main", timeout=60).json()
        assert _databases(command.command_lines()) == []  # nothing started for the graph
        records = next(node for node in graph["nodes"] if node["name"] == "phishing_records")
        details = httpx.get(f"{base}/api/nodes/{records['id']}", timeout=120)
        assert details.status_code == 200, details.text
        assert details.json()["preview_type"] == "TablePreview"  # read from the database
        assert len(_databases(command.command_lines())) == 1
    except BaseException:
        command.kill()
        raise
    leftovers = command.interrupt()
    assert leftovers == [], f"still running after Ctrl+C: {leftovers}\n{command.output()}"


def test_kedro_viz_without_hooks_starts_no_database(start, kedro_project):
    port = viz_port()
    argv = [
        executable("kedro"), "viz", "run", "--no-browser",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    command = start(argv)
    base = f"http://127.0.0.1:{port}"
    try:
        command.wait_for_200(f"{base}/")
        graph = httpx.get(f"{base}/api/main", timeout=60).json()
        records = next(node for node in graph["nodes"] if node["name"] == "phishing_records")
        assert httpx.get(f"{base}/api/nodes/{records['id']}", timeout=120).status_code == 200
        assert _databases(command.command_lines()) == []
        assert not (kedro_project / "data" / "mongo").exists()
    except BaseException:
        command.kill()
        raise
    leftovers = command.interrupt()
    assert leftovers == [], f"still running after Ctrl+C: {leftovers}\n{command.output()}"


# ---------------------------------------------------------------- the service


def test_network_security_serve_answers_and_stops_on_ctrl_c(start, kedro_project):
    port = free_port()
    argv = [
        executable("network-security"), "serve", "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    command = start(argv)
    try:
        docs = command.wait_for_200(f"http://127.0.0.1:{port}/")  # redirects to /docs
        assert "swagger" in docs.text.lower()
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()
        assert health["status"] == "ok"
        assert _databases(command.command_lines()) == []
    except BaseException:
        command.kill()
        raise
    leftovers = command.interrupt()
    assert leftovers == [], f"still running after Ctrl+C: {leftovers}\n{command.output()}"


# ---------------------------------------------------------------- kedro run --pipeline inference


def test_kedro_run_inference_starts_no_database(kedro_project, command_env, schema):
    """Scoring reads a CSV and the champion: no MongoDB dataset, so no database."""
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    from network_security.champion import write_cache
    from network_security.model import PhishingModel
    from network_security.schema import feature_columns, target_column

    sample = pd.read_csv(kedro_project / "data" / "01_raw" / "phishing_sample.csv")
    features = feature_columns(schema)
    estimator = Pipeline([("classifier", RandomForestClassifier(n_estimators=10, random_state=0))])
    estimator.fit(sample[features], sample[target_column(schema)])
    champion = PhishingModel(estimator=estimator, feature_columns=features, version="readme-1")
    write_cache(champion, kedro_project / "data" / "06_models" / "champion.pkl")  # signed

    result = subprocess.run(  # noqa: S603 - fixed command
        [executable("kedro"), "run", "--pipeline", "inference"],
        cwd=kedro_project,
        env=command_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    predictions = pd.read_csv(kedro_project / "data" / "07_model_output" / "predictions.csv")
    assert len(predictions) == len(pd.read_csv(kedro_project / "data" / "01_raw" / "new_batch.csv"))
    assert not (kedro_project / "data" / "mongo").exists()  # the server creates it on start
    assert "SecantusDB" not in log
