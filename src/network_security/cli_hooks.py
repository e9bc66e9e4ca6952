"""Kedro CLI hooks of the project (entry point ``kedro.cli_hooks`` in pyproject.toml).

Kedro loads CLI hooks before its plugins and before it parses a command, so importing this
module is the earliest point where the project can silence the third-party warnings a bare
``kedro run`` would print (``network_security.warning_filters``).
"""

from __future__ import annotations

from network_security.warning_filters import silence_third_party_warnings

silence_third_party_warnings()
