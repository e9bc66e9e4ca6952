"""The one base class of the errors a user can fix from their message alone.

An ``ExpectedError`` says what is wrong (file, row, column, value; parameter; host) and what to
do. ``kedro run`` (the project's ``run`` command, ``network_security.cli``) ends with that
message alone and a non-zero exit code when one is behind a failure, even wrapped by Kedro (a
``DatasetError`` whose ``__cause__`` it is); any other error keeps its traceback.

Subclasses: the input checks' ``InputValidationError``, the validation and drift gates'
errors, ``ChampionError``, ``TrainingLockBusy``, and the ones below.
"""

from __future__ import annotations

from kedro.io import DatasetError


class ExpectedError(Exception):
    """An error whose message is the whole story: what is wrong and what to do."""


class ParameterError(ExpectedError, DatasetError, ValueError):
    """A parameter or catalog setting with a value the project cannot use.

    Also a ``DatasetError`` (settings are read when datasets are built) and a ``ValueError``.
    """


class ServiceUnavailableError(ExpectedError, DatasetError):
    """A server the run needs (the database, a Dask scheduler) cannot be reached or refuses the
    credentials: the message names the host, never a password."""


def expected_error(error: BaseException | None) -> ExpectedError | None:
    """The ``ExpectedError`` behind ``error``: itself, or the first one down its chain of
    explicit causes (``raise ... from``, as Kedro wraps a dataset's or a node's error).

    An error raised *while handling* an expected one (``__context__`` only) is unexpected: it
    is not looked through, so its traceback is kept.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ExpectedError):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None
