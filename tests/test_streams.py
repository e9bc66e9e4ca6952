"""Progress reports: rows done, rows/s and the time left, from rows or from parts, as log
lines or, on a terminal, as a live progress bar."""

from __future__ import annotations

import gc
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console

from network_security import scoring
from network_security.streams import (
    ChunkStream,
    CountedStream,
    Progress,
    _Bars,
    stream_size,
    with_progress,
)

SRC = Path(__file__).resolve().parents[1] / "src"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_reports_rows_rate_and_time_left_from_the_total_rows(caplog):
    clock = Clock()
    progress = Progress("Scored", "big.csv", total_rows=1_000_000, min_interval=0, clock=clock)
    clock.now += 10
    with caplog.at_level(logging.INFO):
        progress.update(250_000)
    assert caplog.messages[-1] == (
        "Scored 250,000 rows of 1,000,000 (25%) of big.csv: 25,000 rows/s, about 30 s left"
    )
    clock.now += 20
    progress.update(250_000)
    assert round(progress.seconds_left(), 6) == 30.0
    assert "about 30 s left" in progress.line()


def test_estimated_totals_are_marked_and_parts_give_the_time_left_without_a_total(caplog):
    clock = Clock()
    estimated = Progress("Stored", "db", total_rows=2_000, exact=False, clock=clock)
    clock.now += 1
    estimated.update(500)
    assert "of ~2,000 (25%)" in estimated.line()
    by_parts = Progress("Scored", "parts", total_steps=4, min_interval=0, clock=clock)
    clock.now += 60
    with caplog.at_level(logging.INFO):
        by_parts.update(1_000)
    assert caplog.messages[-1].endswith("1/4 parts of parts: 17 rows/s, about 3 min 00 s left")
    unknown = Progress("Checked", "stream", clock=clock)
    clock.now += 1
    unknown.update(10)
    assert unknown.line().endswith("time left unknown")


def test_fast_steps_are_reported_together_and_the_last_step_always(caplog):
    clock = Clock()
    progress = Progress("Checked", "f.csv", total_rows=40, min_interval=2.0, clock=clock)
    with caplog.at_level(logging.INFO):
        for _ in range(4):
            clock.now += 0.5
            progress.update(10)
    assert [m.split(" of ")[0] for m in caplog.messages] == ["Checked 10 rows", "Checked 40 rows"]


def test_with_progress_passes_chunks_on_unchanged_and_logs_each(caplog):
    chunks = [pd.DataFrame({"a": range(i, i + 3)}) for i in (0, 3, 6)]
    stream = ChunkStream(chunks, "three.csv")
    with caplog.at_level(logging.INFO):
        tracked = with_progress(stream, "Scored", total_rows=9, exact=True)
        assert stream_size(tracked) == (9, True)
        out = list(tracked)
    assert all(a is b for a, b in zip(out, chunks, strict=True))
    lines = [m for m in caplog.messages if m.startswith("Scored")]
    assert lines[0].startswith("Scored 3 rows of 9 (33%) of three.csv")
    assert lines[-1].startswith("Scored 9 rows of three.csv in")
    assert stream_size(CountedStream([], "x")) == (None, True)
    assert stream_size(stream) == (None, False)


def terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=120), screen


def test_on_a_terminal_progress_is_a_live_bar_and_the_totals_one_log_line(caplog):
    console, screen = terminal()
    with caplog.at_level(logging.INFO):
        progress = Progress("Scored", "big.csv", total_rows=1_000, min_interval=0, console=console)
        progress.update(400)
        drawn = screen.getvalue()
        assert "Scored big.csv" in drawn and "40%" in drawn and "400 rows" in drawn
        assert caplog.messages == []  # the bar, not a log line per step
        progress.update(600)
        progress.finish()
    assert [m.split(" in ")[0] for m in caplog.messages] == ["Scored 1,000 rows of big.csv"]
    assert _Bars._displays == {}  # the live display is stopped with its last bar


def test_bars_of_several_streams_share_one_display_and_an_abandoned_one_goes(caplog):
    console, screen = terminal()
    checked = Progress("Checked", "a.csv", total_rows=10, console=console)
    stored = Progress("Stored", "db", total_steps=4, console=console)  # no LiveError
    checked.update(5)
    stored.update(100)
    assert len(_Bars._displays) == 1
    assert "Checked a.csv" in screen.getvalue() and "Stored db" in screen.getvalue()
    checked.finish()
    del stored  # a stream that failed half-way: no finish
    gc.collect()
    assert _Bars._displays == {}


def test_streams_sit_below_scoring_which_re_exports_the_chunk_stream():
    assert scoring.ChunkStream is ChunkStream and issubclass(CountedStream, ChunkStream)
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, network_security.streams; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    ).stdout
    assert "'network_security.streams'" in imported
    assert "network_security.scoring" not in imported and "network_security.model" not in imported
