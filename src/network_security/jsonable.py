"""The project's one JSON sanitiser: any value as JSON (numpy values as Python numbers,
NaN and infinities as null, other objects as their text), by orjson."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson

_NUMPY, _NON_STR_KEYS = orjson.OPT_SERIALIZE_NUMPY, orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    item = getattr(value, "item", None)  # a numpy scalar
    return item() if callable(item) else str(value)


def dumps(value: Any) -> bytes:
    """``value`` as JSON bytes; what JSON cannot hold made plain (see the module docstring)."""
    with contextlib.suppress(orjson.JSONEncodeError):
        return orjson.dumps(value, default=_default, option=_NUMPY)
    try:  # keys that are not text (twice as slow, hence not the first try)
        return orjson.dumps(value, default=_default, option=_NUMPY | _NON_STR_KEYS)
    except orjson.JSONEncodeError:  # text orjson refuses (a lone surrogate): escaped instead
        text = json.dumps(value, default=_default, ensure_ascii=True)
        plain = json.loads(text, parse_constant=lambda _: None)  # NaN, Infinity -> null
        return json.dumps(plain, ensure_ascii=True).encode()


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON-compatible Python values (dicts, lists, str, int, float, None)."""
    return orjson.loads(dumps(value))
