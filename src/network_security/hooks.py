"""Project hooks: local credentials from their template, and the embedded database for runs
without ``MONGODB_URI``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from network_security.embedded_mongo import EmbeddedMongo
from network_security.private_files import restrict_to_owner, write_private_text

logger = logging.getLogger(__name__)

MONGODB_URI = "MONGODB_URI"
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


class EmbeddedMongoHook:
    """Make the database reachable for a session: local credentials from their template, and
    SecantusDB started for the run when ``MONGODB_URI`` is not set (stopped afterwards).

    The server keeps its data in ``data/mongo`` of the project, so records persist between runs.
    It is stopped when the pipeline finishes or fails, and at interpreter exit for sessions that
    never run a pipeline (``kedro viz``, ``kedro jupyter``).
    """

    def __init__(self) -> None:
        self._server: EmbeddedMongo | None = None

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook, which resolves credentials
    def after_context_created(self, context: Any) -> None:
        ensure_local_credentials(Path(context.project_path))
        if os.environ.get(MONGODB_URI) or self._server is not None:
            return
        server = EmbeddedMongo.for_project(context.project_path)
        logger.info(
            "MONGODB_URI is not set: starting the embedded SecantusDB on %s", server.storage_path
        )
        self._server = server.start()
        os.environ[MONGODB_URI] = self._server.uri

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._stop()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        if os.environ.get(MONGODB_URI) == server.uri:
            del os.environ[MONGODB_URI]
        server.stop()


class PromotionHook:
    """After a training run: make the run's registered model the champion when it earned it.

    kedro-mlflow registers the run's inference pipeline (with ``candidate_model`` inside) when the
    run ends, in its own ``after_pipeline_run``; this hook runs after it (``trylast``) and reads
    the run's ``promotion_decision`` as the node returned it. It checks that the registered
    version is the one stamped into the model, tags that version with its metrics and
    provenance, then, if promoted, moves the registry alias and writes the local cache
    (``network_security.champion.promote``, atomic, last). The outcome is recorded as tags of
    the MLflow run (``promotion.outcome``: promoted / not_promoted / failed).
    """

    def __init__(self) -> None:
        self._decision: dict[str, Any] | None = None

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._decision = None

    @hook_impl
    def after_node_run(self, outputs: dict[str, Any]) -> None:
        if "promotion_decision" in outputs:
            self._decision = outputs["promotion_decision"]

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._decision = None

    @hook_impl(trylast=True)  # after kedro-mlflow has logged and registered the model
    def after_pipeline_run(self, catalog: Any) -> None:
        decision, self._decision = self._decision, None
        if decision is None:
            return
        from network_security.champion import ChampionError

        champion = catalog.get("champion_model")
        model = catalog.load("candidate_model")
        try:
            outcome = champion.commit_promotion(model, decision)
        except (ChampionError, OSError) as error:
            logger.error("Promotion of version %s failed: %s", model.version, error)
            champion.record_outcome(model, "failed", str(error))
            raise
        champion.record_outcome(model, outcome, decision.get("reason", ""))
