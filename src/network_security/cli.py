"""Project CLI commands (Kedro loads ``cli`` from here, ahead of its own and the plugins').

``kedro run`` is Kedro's own command (every option the same), ending a run that failed on an
expected error (``network_security.errors.ExpectedError``: a bad input file, a bad parameter, a
server that cannot be reached, no champion, ...) with that error's message alone and exit code
1; any other error keeps its traceback. ``python -m network_security`` runs the same command.

``kedro jupyter lab``, ``kedro jupyter notebook``, ``kedro jupyter setup`` and ``kedro ipython``
are Kedro's own commands, first checking that the packages they need are installed: when one is
missing, the message names it and says how to install it (Kedro's own message points at a
``requirements.txt`` this project does not have).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from kedro.framework.cli import jupyter as kedro_jupyter
from kedro.framework.cli import project as kedro_project

from network_security.errors import expected_error
from network_security.sanitize import redact

INSTALL_HINT = 'pip install -e ".[dev]"'

# command -> (importable module, pip distribution) it needs; ipykernel runs the Kedro kernel
REQUIREMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "jupyter lab": (("jupyterlab", "jupyterlab"), ("ipykernel", "ipykernel")),
    "jupyter notebook": (("notebook", "notebook"), ("ipykernel", "ipykernel")),
    "jupyter setup": (("ipykernel", "ipykernel"),),
    "ipython": (("IPython", "ipython"),),
}


def missing_packages(command: str) -> list[str]:
    """The pip distributions ``kedro <command>`` needs that are not installed."""
    return [
        distribution
        for module, distribution in REQUIREMENTS[command]
        if importlib.util.find_spec(module) is None
    ]


def require_packages(command: str) -> None:
    """Stop with a message naming what to install when ``kedro <command>`` lacks a package."""
    missing = missing_packages(command)
    if missing:
        names = " and ".join(f"'{name}'" for name in missing)
        raise click.ClickException(
            f"`kedro {command}` needs the Python package {names}, not installed in this "
            f"environment ({sys.executable}). Install the project with its development extras: "
            f"{INSTALL_HINT} (or only: pip install {' '.join(missing)})."
        )


def _checked(command: click.Command, name: str) -> click.Command:
    """Kedro's ``command``, checking its packages (``REQUIREMENTS[name]``) before it runs."""
    original = command.callback

    @functools.wraps(original)
    def callback(*args: Any, **kwargs: Any) -> Any:
        require_packages(name)
        return original(*args, **kwargs)

    checked = click.Command(
        name=command.name,
        callback=callback,
        params=command.params,
        help=command.help,
        short_help=command.short_help,
        context_settings=command.context_settings,
    )
    return checked


FAILURE_LOGGERS = (
    "kedro.pipeline.node",
    "kedro.runner.sequential_runner",
    "kedro.runner.thread_runner",
    "kedro.runner.parallel_runner",
)
"""Where Kedro logs a failed node (its message again) and how to resume the run."""


class _DropWhileHandlingExpected(logging.Filter):
    """Drops the warnings and errors logged while an expected error is being handled: Kedro's
    "Node ... failed with error" (the message the run ends with) and its hint to resume the run
    with ``--from-nodes`` (a bad input file needs fixing, not resuming)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING or expected_error(sys.exc_info()[1]) is None


@contextmanager
def _quiet_expected_failures() -> Iterator[None]:
    drop = _DropWhileHandlingExpected()
    loggers = [logging.getLogger(name) for name in FAILURE_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def _expected_errors_as_messages(command: click.Command) -> click.Command:
    """Kedro's ``run``, ending with the message alone (``click.ClickException``: "Error: ...",
    exit code 1) when an ``ExpectedError`` is behind the failure."""
    original = command.callback

    @functools.wraps(original)
    def callback(*args: Any, **kwargs: Any) -> Any:
        try:
            with _quiet_expected_failures():
                return original(*args, **kwargs)
        except Exception as error:
            expected = expected_error(error)
            if expected is None:
                raise
            raise click.ClickException(redact(expected)) from None

    return click.Command(
        name=command.name,
        callback=callback,
        params=command.params,
        help=command.help,
        short_help=command.short_help,
        context_settings=command.context_settings,
    )


@click.group(name="network_security")
def cli() -> None:
    """Commands of the network_security project."""


@cli.group()
def jupyter() -> None:
    """Open Jupyter Notebook / Lab with project specific variables loaded."""


jupyter.add_command(_checked(kedro_jupyter.jupyter_lab, "jupyter lab"), "lab")
jupyter.add_command(_checked(kedro_jupyter.jupyter_notebook, "jupyter notebook"), "notebook")
jupyter.add_command(_checked(kedro_jupyter.setup, "jupyter setup"), "setup")
cli.add_command(_checked(kedro_project.ipython, "ipython"), "ipython")
run = _expected_errors_as_messages(kedro_project.run)  # `run` here: Kedro's find_run_command
cli.add_command(run, "run")
