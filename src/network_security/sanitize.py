"""What leaves the project as text or JSON: credentials redacted, values JSON can hold.

The one redactor (``redact``) and the one JSON sanitiser (``jsonable``, and ``dumps`` for the
service's responses, by orjson: the same values as ``jsonable``, made into bytes) of the
project: log lines, error messages, MLflow tags, reports and HTTP responses go through these.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from typing import Any

import numpy as np

# Both patterns start only at a fixed text (``://``) or at the start of a name, and their
# repeats are possessive: a scan never backtracks, so redacting costs linear time whatever the
# line holds (a pattern that tried a scheme at every letter was quadratic on long lines).
_CREDENTIALS_IN_URI = re.compile(r"://[^@/\s]++@")
_PARAMETER = re.compile(r"(?<![\w.-])([\w.-]++)=([^\s&#;,'\"<>?=]++)")
_SECRET_NAME = re.compile(
    r"passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|signature"
    r"|credential|session[_-]?id|^(?:pass|key|sig|auth)$",
    re.IGNORECASE,
)


def _hide_secret_value(match: re.Match[str]) -> str:
    name = match.group(1)
    return f"{name}=***" if _SECRET_NAME.search(name) else match.group(0)


def redact(text: Any) -> str:
    """``text`` (a URI, or any message holding URIs) with each ``user:password@`` as ``***@``
    and the value of each ``name=value`` whose name says it is a secret (``password=``,
    ``token=``, ``api_key=``, ``client_secret=``, ... as in a query string) as ``***``."""
    hidden = _CREDENTIALS_IN_URI.sub("://***@", str(text))
    return _PARAMETER.sub(_hide_secret_value, hidden) if "=" in hidden else hidden


def jsonable(value: Any) -> Any:
    """``value`` with what JSON cannot hold made plain: numpy scalars become Python numbers,
    NaN and infinities ``None``, tuples and sets lists, other objects their ``str``."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # a numpy scalar
    return item() if callable(item) else str(value)


def dumps(value: Any) -> bytes:
    """``value`` as JSON bytes, what JSON cannot hold made plain as ``jsonable`` does (NaN and
    infinities null, numpy values as numbers, other objects as their text); fast (orjson, of
    the ``service`` extra)."""
    import orjson

    numpy = orjson.OPT_SERIALIZE_NUMPY
    with contextlib.suppress(orjson.JSONEncodeError):
        return orjson.dumps(value, default=_plain, option=numpy)
    try:  # keys that are not text (twice as slow, hence not the first try)
        return orjson.dumps(value, default=_plain, option=numpy | orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # text orjson refuses (a lone surrogate): escaped instead
        return json.dumps(jsonable(value), ensure_ascii=True, allow_nan=False).encode()
