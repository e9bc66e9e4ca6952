"""Files and folders only their owner may read: local credentials, the embedded database.

Whatever the umask, a folder made here is 0700 and a file 0600. A file or folder that already
exists with looser permissions (made by an older version, or by hand) is tightened, with a log
line saying so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def restrict_to_owner(path: Path, mode: int = PRIVATE_FILE_MODE) -> None:
    """Remove the group's and others' access to ``path`` (to ``mode``) if they have any."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        os.chmod(path, mode)
        logger.warning(
            "%s was readable by other users (mode %04o); set it to %04o", path, current, mode
        )


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents), the folder itself 0700; tighten it if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    restrict_to_owner(path, PRIVATE_DIR_MODE)
    return path


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, as a 0600 file (never readable by others, even
    for a moment: the temporary file is created 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, PRIVATE_FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def open_private_append(path: Path) -> IO[bytes]:
    """``path`` opened for appending bytes, created 0600 (tightened if it exists)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    try:
        restrict_to_owner(path)
    except BaseException:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "ab")
