"""The project's Kedro context: Kedro's own, plus the git-ignored local credentials file created
from its committed template before any configuration is read.

Every session makes a context, with or without hooks (``kedro viz`` runs without them by default),
so a fresh clone's catalog always finds ``mongo_credentials``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from attrs import define
from kedro.framework.context import KedroContext

from network_security.private_files import restrict_to_owner, write_private_text

logger = logging.getLogger(__name__)

CREDENTIALS = Path("conf/local/credentials.yml")
CREDENTIALS_TEMPLATE = Path("conf/local/credentials.yml.example")


def ensure_local_credentials(project_path: Path) -> None:
    """Create conf/local/credentials.yml (ignored by git) from its committed template if missing.

    The template holds no secret, only ``${oc.env:MONGODB_URI,''}``, so a fresh clone runs as is
    and the file is there to edit for a literal URI.
    """
    target, template = project_path / CREDENTIALS, project_path / CREDENTIALS_TEMPLATE
    if target.exists():
        restrict_to_owner(target)  # 0600: it may hold a literal URI with a password
    elif template.exists():
        write_private_text(target, template.read_text(encoding="utf-8"))
        logger.info("Created %s (mode 0600) from %s", CREDENTIALS, CREDENTIALS_TEMPLATE)


@define(slots=False)
class ProjectContext(KedroContext):
    """``KedroContext`` that makes sure conf/local/credentials.yml exists (see above)."""

    def __attrs_post_init__(self) -> None:
        ensure_local_credentials(Path(self.project_path))
