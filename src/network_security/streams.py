"""Row streams and progress reports over long runs.

- ``ChunkStream`` is a lazy stream of DataFrame chunks (the rows of one file, in order), the
  form every large input takes between the readers, the checks, the scoring and the writers.
- ``CountedStream`` is a ``ChunkStream`` that also carries ``total_rows``: exact when a pass
  over the data counted them (ingestion checks the whole file before storing anything),
  estimated from the file size otherwise (``exact=False``).
- ``Progress`` reports rows done, rows/s and the time left: as a live progress bar (rich's, as
  Kedro's log handler uses) when the console is a terminal, else as log lines, one per chunk or
  partition at most every ``min_interval`` seconds.
- ``with_progress`` passes a stream's chunks on unchanged, reporting progress as they go.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pandas as pd
import rich
from rich.console import Console
from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

logger = logging.getLogger(__name__)


class ChunkStream:
    """A lazy stream of DataFrame chunks (the rows of one file, in order).

    Iterating yields the chunks. ``source`` names where the rows come from, for error messages.
    A stream built from a re-iterable (such as a file reader) can be iterated again; one built
    from a generator only once. Kedro's ``MemoryDataset`` passes it on without copying.
    """

    def __init__(self, chunks: Iterable[pd.DataFrame], source: str = "input") -> None:
        self._chunks = chunks
        self.source = source

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return iter(self._chunks)

    def __deepcopy__(self, memo: dict[int, Any]) -> ChunkStream:
        return self

    def __copy__(self) -> ChunkStream:
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r})"


class CountedStream(ChunkStream):
    """A ``ChunkStream`` with the number of rows it holds (``None`` when unknown).

    Attributes:
        total_rows: How many data rows the stream yields, or ``None``.
        exact: Whether ``total_rows`` was counted (True) or estimated (False).
    """

    def __init__(
        self,
        chunks: Iterable[pd.DataFrame],
        source: str = "input",
        total_rows: int | None = None,
        exact: bool = True,
    ) -> None:
        super().__init__(chunks, source)
        self.total_rows = total_rows
        self.exact = exact

    def __repr__(self) -> str:
        return f"CountedStream(source={self.source!r}, total_rows={self.total_rows!r})"


def stream_size(stream: object) -> tuple[int | None, bool]:
    """``(total_rows, exact)`` of a stream, ``(None, False)`` when it does not say."""
    total = getattr(stream, "total_rows", None)
    return (int(total) if total is not None else None), bool(getattr(stream, "exact", False))


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


class _Bars:
    """The live progress bars of one console: one rich display, started with the first bar
    and stopped with the last (rich allows one live display at a time)."""

    _lock = threading.Lock()
    _displays: dict[int, RichProgress] = {}

    @classmethod
    def add(cls, console: Console, description: str, total: float | None) -> Callable[..., None]:
        """Add a bar; return its ``update(completed=..., rows=...)`` (``update(done=True)``
        removes it)."""
        with cls._lock:
            display = cls._displays.get(id(console))
            if display is None:
                display = RichProgress(
                    TextColumn("[progress.description]{task.description}"),
                    BarColumn(),
                    TaskProgressColumn(),
                    TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                )
                display.start()
                cls._displays[id(console)] = display
            task = display.add_task(description, total=total, rows=0, rate=0.0)

        def update(done: bool = False, **fields: Any) -> None:
            with cls._lock:
                if done:
                    display.remove_task(task)
                    if not display.task_ids:
                        display.stop()
                        cls._displays.pop(id(console), None)
                else:
                    display.update(task, refresh=True, **fields)

        return update


class Progress:
    """Report rows done, rows/s and an estimate of the time left.

    On a terminal, a live progress bar; otherwise one log line per step at most every
    ``min_interval`` seconds. ``finish`` logs the totals either way. The time left comes from
    the total rows when known (exact or estimated), else from the number of steps (partitions)
    when that is known, else it is not shown.

    Example::

        progress = Progress("Scored", "data/new.csv", total_rows=1_000_000)
        for chunk in chunks:
            ...
            progress.update(len(chunk))
        progress.finish()
    """

    def __init__(  # noqa: PLR0913
        self,
        action: str,
        source: str,
        total_rows: int | None = None,
        exact: bool = True,
        total_steps: int | None = None,
        min_interval: float = 2.0,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.perf_counter,
        console: Console | None = None,
    ) -> None:
        """Start the clock (and the bar, on a terminal).

        Args:
            action: What is done to the rows, as a past participle ("Scored", "Stored").
            source: What the rows are (a file, a collection), for the log line.
            total_rows: The rows expected in all, if known.
            exact: Whether ``total_rows`` is a count (else an estimate, shown with ``~``).
            total_steps: The chunks or partitions expected, if known.
            min_interval: Seconds between two progress lines at least (fast steps are
                reported together; the last step is always reported).
            log: The logger to write to (this module's by default).
            clock: Seconds as a float (for tests).
            console: The rich console to draw the bar on (Kedro's, ``rich.get_console()``, by
                default); no bar when it is not a terminal.
        """
        self.action = action
        self.source = source
        self.total_rows = total_rows
        self.exact = exact
        self.total_steps = total_steps
        self.rows = 0
        self.steps = 0
        self._min_interval = min_interval
        self._log = log or logger
        self._clock = clock
        self._started = clock()
        self._last_line: float | None = None
        console = console or rich.get_console()
        self._bar: Callable[..., None] | None = None
        if console.is_terminal:
            self._bar = _Bars.add(console, f"{action} {source}", total_rows or total_steps)
            # a stream abandoned half-way (an error) takes its bar with it
            self._close = weakref.finalize(self, self._bar, done=True)

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return self._clock() - self._started

    def rate(self) -> float:
        """Rows per second so far."""
        elapsed = self.elapsed
        return self.rows / elapsed if elapsed > 0 else 0.0

    def seconds_left(self) -> float | None:
        """Estimated seconds to the end, ``None`` when nothing says how much is left."""
        elapsed = self.elapsed
        if self.total_rows is not None and self.rows and elapsed > 0:
            return max(self.total_rows - self.rows, 0) / (self.rows / elapsed)
        if self.total_steps and self.steps:
            return max(self.total_steps - self.steps, 0) * elapsed / self.steps
        return None

    def line(self) -> str:
        """The progress line for the current state."""
        done = f"{self.action} {self.rows:,} rows"
        if self.total_rows:
            approx = "" if self.exact else "~"
            share = min(self.rows / self.total_rows, 1.0)
            done += f" of {approx}{self.total_rows:,} ({share:.0%})"
        if self.total_steps:
            done += f", {self.steps}/{self.total_steps} parts"
        left = self.seconds_left()
        eta = f"about {_duration(left)} left" if left is not None else "time left unknown"
        return f"{done} of {self.source}: {self.rate():,.0f} rows/s, {eta}"

    def update(self, rows: int, steps: int = 1) -> None:
        """Count ``rows`` more rows (and ``steps`` more chunks); move the bar, or log the
        progress line unless the last one is less than ``min_interval`` seconds old (the last
        step always logs)."""
        self.rows += int(rows)
        self.steps += steps
        if self._bar is not None:
            completed = self.rows if self.total_rows else self.steps
            self._bar(completed=completed, rows=self.rows, rate=self.rate())
            return
        now = self._clock()
        last = (self.total_steps is not None and self.steps >= self.total_steps) or (
            self.total_rows is not None and self.exact and self.rows >= self.total_rows
        )
        if last or self._last_line is None or now - self._last_line >= self._min_interval:
            self._last_line = now
            self._log.info("%s", self.line())

    def finish(self, rows: int | None = None) -> None:
        """Remove the bar and log the totals: rows (``rows`` when the caller counted them
        otherwise), time and rate."""
        if self._bar is not None:
            self._close()
        if rows is not None:
            self.rows = int(rows)
        self._log.info(
            "%s %s rows of %s in %s (%s rows/s)",
            self.action,
            f"{self.rows:,}",
            self.source,
            _duration(self.elapsed),
            f"{self.rate():,.0f}",
        )


def with_progress(
    stream: ChunkStream, action: str, total_rows: int | None = None, exact: bool = True
) -> CountedStream:
    """The same chunks, lazily, reporting progress after each one is consumed."""

    def tracked() -> Iterator[pd.DataFrame]:
        progress = Progress(action, stream.source, total_rows=total_rows, exact=exact)
        for chunk in stream:
            yield chunk
            progress.update(len(chunk))  # the consumer is done with it: it asks for the next
        progress.finish()

    return CountedStream(tracked(), stream.source, total_rows, exact)
