"""What leaves the project as text or JSON: credentials redacted, values JSON can hold.

The one redactor (``redact``) and the one JSON sanitiser (``jsonable``) of the project: log
lines, error messages, MLflow tags, reports and HTTP responses go through these.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

_CREDENTIALS_IN_URI = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^@/\s]+@")


def redact(text: Any) -> str:
    """``text`` (a URI, or any message holding URIs) with each ``user:password@`` as ``***@``."""
    return _CREDENTIALS_IN_URI.sub(r"\g<scheme>***@", str(text))


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
