"""What the service holds between requests (``ServiceState``), read once from the Kedro project
through Kedro's own bootstrap and session, and the FastAPI dependency that hands it to a route
(``State``: the state of the app that serves the request)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from network_security.service.champion import ChampionStore, LoadedModel
from network_security.service.inputs import RequestProblem
from network_security.service.records import records_model
from network_security.service.settings import ServiceSettings
from network_security.service.training import TrainingRunner

NO_MODEL = (
    "No champion model is available yet (no alias 'champion' in the model registry and no "
    "cached copy {name!r}): train one with `kedro run --pipeline training` in the project, "
    "or POST /train."
)
MODEL_UNREADABLE = (
    "The champion model could not be loaded (from the model registry or its cached copy "
    "{name!r}); the service log says why. Train one with `kedro run --pipeline training` in "
    "the project, or POST /train."
)


@dataclass
class ServiceState:
    """What the service holds between requests: its settings, the project's schema and
    scoring parameters, the JSON body model made from the schema, the champion, the training
    runner and the scoring slots."""

    settings: ServiceSettings
    schema: dict[str, Any]
    scoring: dict[str, Any]
    records: type[BaseModel]
    champion: ChampionStore
    runner: TrainingRunner
    slots: asyncio.Semaphore

    def model(self) -> LoadedModel:
        """The champion, or a 503 that says how to get one (the file's name only: its path and
        why it could not be loaded are in the log, not in answers)."""
        if (loaded := self.champion.current()) is None:
            text = MODEL_UNREADABLE if self.champion.last_error else NO_MODEL
            raise RequestProblem(503, text.format(name=self.champion.path.name))
        return loaded


def _project_configuration(settings: ServiceSettings) -> tuple[dict[str, Any], Path, Any]:
    """The project's parameters, the champion cache's path and kedro-mlflow's configuration,
    through a Kedro session (relative paths in the configuration are the project's)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project = settings.project_path
    bootstrap_project(project)
    with contextlib.chdir(project), KedroSession.create(project, env=settings.kedro_env) as session:
        context = session.load_context()
        cache = settings.model_path or Path(
            context.catalog.get("champion_model")._describe()["filepath"]
        )
        return context.params, cache, getattr(context, "mlflow", None)


def load_project(settings: ServiceSettings) -> ServiceState:
    """The project through Kedro's session: parameters, catalog, kedro-mlflow's store."""
    settings = settings.model_copy(update={"project_path": settings.project_path.resolve()})
    project = settings.project_path
    params, cache, mlflow_config = _project_configuration(settings)
    if missing := [key for key in ("schema", "scoring") if key not in params]:
        raise RuntimeError(
            f"The project's parameters (conf/) have no {' or '.join(missing)}: "
            "expected in conf/base/parameters*.yml; the service cannot score."
        )
    uri = mlflow_config.server.mlflow_tracking_uri if mlflow_config else None
    if uri and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{project / uri.removeprefix('sqlite:///')}"
    champion = ChampionStore(project / cache.expanduser(), uri, settings.champion_refresh_seconds)
    experiment = mlflow_config.tracking.experiment.name if mlflow_config else "network_security"
    return ServiceState(
        settings=settings,
        schema=params["schema"],
        scoring=params["scoring"],
        records=records_model(params["schema"], settings.max_rows, settings.max_columns),
        champion=champion,
        runner=TrainingRunner(settings, champion, uri, experiment),
        slots=asyncio.Semaphore(settings.max_concurrent_predictions),
    )


async def get_state(request: Request) -> ServiceState:
    """The state of the app serving ``request`` (``create_app`` puts it in ``app.state``);
    ``async`` so FastAPI calls it in the event loop, not in a worker thread."""
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]
"""A route's parameter for the service's state."""
