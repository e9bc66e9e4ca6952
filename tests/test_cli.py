"""The project's CLI (``network_security.cli``): `kedro jupyter ...` and `kedro ipython` say
which package is missing and how to install it; `kedro run` ends an expected error with its
message alone."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from kedro.framework.cli import project as kedro_project
from kedro.framework.cli.cli import KedroCLI
from kedro.io import DatasetError
from sklearn.ensemble import RandomForestClassifier

from network_security import cli as project_cli
from network_security.errors import ParameterError, ServiceUnavailableError, expected_error
from network_security.validator import InputValidationError

PROJECT_ROOT = project_cli.__file__.rsplit("/src/", 1)[0]


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch):
    """``without(module)``: make ``module`` look uninstalled to the project's CLI."""
    real = importlib.util.find_spec

    def hide(*modules: str) -> None:
        def find_spec(name: str, *args, **kwargs):
            return None if name in modules else real(name, *args, **kwargs)

        monkeypatch.setattr(project_cli.importlib.util, "find_spec", find_spec)

    return hide


@pytest.mark.parametrize(
    ("args", "module", "package"),
    [
        (["jupyter", "lab", "--no-browser"], "jupyterlab", "jupyterlab"),
        (["jupyter", "notebook", "--no-browser"], "notebook", "notebook"),
        (["jupyter", "lab"], "ipykernel", "ipykernel"),
        (["ipython"], "IPython", "ipython"),
    ],
)
def test_kedro_names_the_missing_package_and_how_to_install_it(without, args, module, package):
    without(module)
    # through Kedro's own CLI on this project: the project's cli.py overrides Kedro's commands
    result = CliRunner().invoke(KedroCLI(project_path=PROJECT_ROOT), args)
    assert result.exit_code != 0
    assert f"`kedro {' '.join(args[:2] if args[0] == 'jupyter' else args[:1])}`" in result.output
    assert f"Python package '{package}'" in result.output
    assert 'pip install -e ".[dev]"' in result.output
    assert f"pip install {package}" in result.output
    assert "requirements.txt" not in result.output and "NoneType" not in result.output


def test_the_dev_install_has_what_the_notebook_commands_need():
    for command in project_cli.REQUIREMENTS:
        assert project_cli.missing_packages(command) == [], command


# ------------------------------------------------------------------ kedro run: expected errors


def _failing_run(error: BaseException) -> click.Command:
    """A ``run`` command that fails with ``error``, wrapped as the project wraps Kedro's."""

    def run() -> None:
        raise error

    return project_cli._expected_errors_as_messages(click.Command("run", callback=run))


def _wrapped(outer: Exception, cause: Exception) -> Exception:
    """``outer`` raised from ``cause``, as Kedro wraps a dataset's error."""
    try:
        try:
            raise cause
        except Exception as inner:
            raise outer from inner
    except Exception as error:
        return error


def test_an_expected_error_behind_a_failed_run_ends_it_with_its_message_alone():
    bad_cell = InputValidationError(
        "new.csv: column 'URL_Length', row 4: value 'abc' is not an integer.", source="new.csv"
    )
    error = _wrapped(DatasetError("inference_predictions: (the same message)"), bad_cell)
    result = CliRunner().invoke(_failing_run(error), [])
    assert result.exit_code == 1
    assert result.output == (
        "Error: new.csv: column 'URL_Length', row 4: value 'abc' is not an integer.\n"
    )


def test_an_unexpected_error_keeps_its_traceback():
    result = CliRunner().invoke(_failing_run(ZeroDivisionError("a bug")), [])
    assert result.exit_code == 1
    assert isinstance(result.exception, ZeroDivisionError)  # raised on: Python prints the trace
    assert "Error:" not in result.output


def test_an_unexpected_error_raised_while_handling_an_expected_one_is_not_hidden():
    try:
        try:
            raise ParameterError("a bad parameter")
        except ParameterError:
            raise KeyError("a bug in the error handling")  # noqa: B904 - the case tested
    except KeyError as error:
        bug = error
    assert expected_error(bug) is None
    assert isinstance(CliRunner().invoke(_failing_run(bug), []).exception, KeyError)


def test_a_password_in_an_expected_message_is_redacted():
    error = ServiceUnavailableError("Could not reach mongodb://user:s3cret@db.example:27017/")
    result = CliRunner().invoke(_failing_run(error), [])
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert "mongodb://***@db.example:27017/" in result.output


def test_kedros_failure_lines_are_dropped_only_while_an_expected_error_is_handled(caplog):
    node_logger = logging.getLogger("kedro.pipeline.node")

    def log_failure(error: Exception) -> None:
        try:
            raise error
        except Exception:
            node_logger.error("Node x failed with error: %s", error)
            node_logger.info("still shown")

    with caplog.at_level(logging.INFO), project_cli._quiet_expected_failures():
        log_failure(InputValidationError("bad cell"))
        log_failure(RuntimeError("a bug"))
    node_logger.error("after the run")
    assert [r.getMessage() for r in caplog.records] == [
        "still shown",
        "Node x failed with error: a bug",
        "still shown",
        "after the run",
    ]


def test_kedro_run_is_the_projects_run_command():
    from kedro.framework.cli.utils import find_run_command

    run = find_run_command("network_security")
    assert run is project_cli.cli.commands["run"]
    assert {p.name for p in run.params} == {p.name for p in kedro_project.run.params}


def _kedro_run(project: Path, *args: str, **env: str) -> tuple[int, str]:
    """``kedro run ARGS`` in a subprocess on ``project``: exit code and stdout + stderr."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MLFLOW_TRACKING_URI")
    }
    environment.update(COLUMNS="80", **env)  # a standard terminal's width: long lines wrap
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "run", *args],
        cwd=project, env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def project(kedro_project: Path) -> Path:
    """A temporary copy of the project with its logging configuration."""
    shutil.copy(Path(PROJECT_ROOT) / "conf" / "logging.yml", kedro_project / "conf")
    return kedro_project


@pytest.mark.slow
def test_a_bad_input_file_ends_kedro_run_with_a_short_message(project, tmp_path):
    from network_security.champion import write_cache
    from network_security.model import PhishingModel

    batch = pd.read_csv(project / "data" / "01_raw" / "new_batch.csv", nrows=40)
    features = batch.drop(columns=["url"])
    forest = RandomForestClassifier(n_estimators=3, random_state=0)
    forest.fit(features, np.where(features["SSLfinal_State"] > 0, 1, -1))
    write_cache(PhishingModel(forest, list(features.columns), version="1"),
                project / "data" / "06_models" / "champion.pkl")  # fmt: skip
    bad = batch.astype(object)
    bad.loc[3, "URL_Length"] = "abc"
    source = tmp_path / "new_sites.csv"
    bad.to_csv(source, index=False)

    code, output = _kedro_run(
        project, "--pipeline", "inference", "--params", f"inference_input_path={source}"
    )
    assert code != 0
    assert len(output.splitlines()) <= 25, output
    assert "Traceback" not in output and "--from-nodes" not in output, output
    last = output.splitlines()[-1]
    assert last.startswith(f"Error: {source}: column 'URL_Length', row 4: value 'abc'"), output
    assert output.count("value 'abc'") == 1, output  # said once


@pytest.mark.slow
def test_an_unknown_inference_engine_ends_kedro_run_with_a_short_message(project):
    code, output = _kedro_run(project, "--pipeline", "inference", "--params",
                              "inference_engine=spark")  # fmt: skip
    assert code != 0
    assert "Traceback" not in output and len(output.splitlines()) <= 10, output
    assert output.splitlines()[-1] == (
        "Error: Unknown inference_engine 'spark': choose one of ['dask', 'pandas'] "
        "(--params inference_engine=NAME)."
    )


@pytest.mark.slow
def test_an_unreachable_database_ends_kedro_run_with_a_short_message(project):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, output = _kedro_run(
        project,
        "--pipeline",
        "ingestion",
        MONGODB_URI=f"mongodb://ingest:pa55word@127.0.0.1:{port}/",
    )
    assert code != 0
    assert "Traceback" not in output and output.count("Could not write") == 1, output
    last = output.splitlines()[-1]
    assert last.startswith(f"Error: Could not write to MongoDB at 127.0.0.1:{port}"), output
    assert "server is running and reachable" in last and "Connection refused" in last
    assert "pa55word" not in output and "TopologyDescription" not in output
