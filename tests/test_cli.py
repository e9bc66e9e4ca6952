"""The project's CLI (``network_security.cli``): `kedro jupyter ...` and `kedro ipython` say
which package is missing and how to install it."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner
from kedro.framework.cli.cli import KedroCLI

from network_security import cli as project_cli

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
