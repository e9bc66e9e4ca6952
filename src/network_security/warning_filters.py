"""Third-party warnings every run would print and the project cannot fix, silenced in one place.

Applied by the project settings (Kedro sessions, the service), by the project's Kedro CLI hooks
(so the warnings raised while ``kedro`` loads its plugins and parses ``--pipeline`` are caught
too) and by the test suite (tests/conftest.py). Warnings the project itself causes are fixed,
not listed here.
"""

from __future__ import annotations

import logging
import re
import warnings

QUIET_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Kedro 1.7's and kedro-mlflow's own OmegaConf resolvers (globals, runtime_params, oc.env):
    # omegaconf deprecates the registration call they make.
    (r"register_new_resolver\(\) is deprecated", UserWarning),
    # mlflow, on kedro-mlflow's KedroPipelineModel, which has no type hints on predict().
    (r".*Add type hints to the `predict` method", UserWarning),
    # Kedro 1.7 renamed `kedro run --pipeline` to `--pipelines`; the documented single-pipeline
    # commands (`kedro run --pipeline training`) keep working and stay as they are.
    (r"Option '--pipeline' is deprecated", DeprecationWarning),
    # mlflow, when kedro-mlflow logs the inference pipeline of a training run: a hint about
    # integer columns in the signature it infers (the schema's features are integers, never
    # missing: a check refuses missing cells before the model sees them)...
    (r"(?s).*Inferred schema contains integer column", UserWarning),
    # ...and about the input example kedro-mlflow does not pass (it infers the signature from
    # the `model_input_example` dataset instead).
    (r"(?s).*An input example was not provided when logging the model", UserWarning),
)
"""(message regular expression, category) of each silenced warning."""

QUIET_LOG_RECORDS: tuple[tuple[str, str], ...] = (
    # mlflow's own logger, when kedro-mlflow logs its KedroPipelineModel object (pickled with
    # CloudPickle: the way kedro-mlflow 2.x logs every pipeline model).
    ("mlflow.pyfunc", r"Passing a Python object as `python_model`"),
)
"""(logger, message regular expression) of each silenced third-party log line."""


class _QuietRecordsFilter(logging.Filter):
    """Drops the log records whose message matches one of ``patterns``."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self._patterns = tuple(re.compile(pattern) for pattern in patterns)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(pattern.search(text) for pattern in self._patterns)


class _QuietWarningsFilter(_QuietRecordsFilter):
    """Drops the ``py.warnings`` log records of ``QUIET_WARNINGS``: mlflow re-enables its own
    warnings inside its code (``simplefilter("once")``), past any ``ignore`` filter, and Kedro
    routes warnings to logging."""

    def __init__(self) -> None:
        super().__init__(tuple(message.removeprefix(".*") for message, _ in QUIET_WARNINGS))


def silence_third_party_warnings() -> None:
    """Ignore the warnings of ``QUIET_WARNINGS`` in this process (idempotent)."""
    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    py_warnings = logging.getLogger("py.warnings")
    if not any(isinstance(f, _QuietWarningsFilter) for f in py_warnings.filters):
        py_warnings.addFilter(_QuietWarningsFilter())
    for name, pattern in QUIET_LOG_RECORDS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietRecordsFilter) for f in logger.filters):
            logger.addFilter(_QuietRecordsFilter((pattern,)))
