"""The project's one redactor: credentials in URIs never reach messages or logs."""

from __future__ import annotations

import re

_CREDENTIALS_IN_URI = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^@/\s]+@")


def redact_uri(text: str | None) -> str:
    """``text`` (a URI, or a message holding URIs) with ``user:password@`` replaced by ``***@``."""
    return _CREDENTIALS_IN_URI.sub(r"\g<scheme>***@", str(text))
