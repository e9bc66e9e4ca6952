"""The ``network-security`` command (also ``python -m network_security``).

- ``network-security serve [--host H] [--port P] [--project-path DIR]``: start the HTTP service
  (FastAPI on uvicorn); every other setting comes from ``NETWORK_SECURITY_*`` variables (see
  ``network_security.service.settings``).
- anything else runs the project's pipelines like ``kedro run`` does, e.g.
  ``python -m network_security --pipeline training``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def _serve(argv: list[str]) -> int:
    """Parse the ``serve`` options and run the service until interrupted."""
    import uvicorn
    from pydantic import ValidationError

    from network_security.sanitize import redact
    from network_security.service.app import create_app
    from network_security.service.settings import ServiceSettings, settings_error_message

    parser = argparse.ArgumentParser(
        prog="network-security serve",
        description="Serve phishing predictions over HTTP (docs at http://HOST:PORT/docs).",
    )
    parser.add_argument(
        "--host", help="interface to bind (default: NETWORK_SECURITY_HOST or 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, help="port (default: NETWORK_SECURITY_PORT or 8000)")
    parser.add_argument(
        "--project-path",
        type=Path,
        help="the Kedro project root (default: NETWORK_SECURITY_PROJECT_PATH, or the project "
        "containing the working directory)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default: info)")
    options = parser.parse_args(argv)
    overrides = {
        key: value
        for key, value in (
            ("host", options.host),
            ("port", options.port),
            ("project_path", options.project_path and options.project_path.resolve()),
        )
        if value is not None
    }
    try:
        settings = ServiceSettings(**overrides)
    except ValidationError as error:
        parser.exit(2, f"network-security serve: {settings_error_message(error)}\n")
    logging.basicConfig(
        level=options.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        app = create_app(settings)
    except Exception as error:  # noqa: BLE001 - the project cannot be opened: say why, no trace
        reason = redact(f"{type(error).__name__}: {error}")
        parser.exit(2, f"network-security serve: cannot open the Kedro project at "
                    f"{settings.project_path}: {reason}\n")  # fmt: skip
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=options.log_level,
        proxy_headers=False,
    )
    return 0


def _run_pipelines(argv: list[str]) -> int | None:
    """Run the project's pipelines with kedro's ``run`` command (the packaged-project entry)."""
    from kedro.framework.cli.utils import find_run_command
    from kedro.framework.project import configure_project

    package_name = Path(__file__).parent.name
    configure_project(package_name)
    run = find_run_command(package_name)
    return run(args=argv, standalone_mode=True)


def main(argv: list[str] | None = None) -> int | None:
    """Entry point of ``network-security`` and ``python -m network_security``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["serve"]:
        return _serve(args[1:])
    if args[:1] == ["run"]:
        args = args[1:]
    return _run_pipelines(args)


if __name__ == "__main__":
    sys.exit(main())
