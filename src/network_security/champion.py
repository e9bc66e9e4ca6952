"""The one path to the champion: registry alias -> atomic local cache -> loaded model.

The champion is a version of the registered MLflow model ``network_security`` (the whole
inference pipeline, logged by kedro-mlflow's ``pipeline_ml_factory``) that carries the registry
alias ``champion``. The inference pipeline (catalog entry ``champion_model``), the promotion
step of training and the HTTP service all get it through :func:`load_champion`:

1. ask the registry which version carries the alias;
2. when the local cache (``data/06_models/champion.pkl``) already holds that version, load it;
   otherwise take the ``PhishingModel`` out of that registered version and write it to the cache
   atomically (temporary file in the same folder, fsync, ``os.replace``);
3. when the registry cannot be reached or has no alias (tracking disabled, offline use), fall
   back to the cache as it is.

:func:`promote` is the other direction, used once per training run after kedro-mlflow has
registered the run's model: move the alias, then (last step) write the cache atomically. A crash
at any step leaves either the previous champion or the new one, never a half-written file.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from network_security.errors import ExpectedError
from network_security.model import PhishingModel
from network_security.sanitize import redact

logger = logging.getLogger(__name__)

REGISTERED_MODEL_NAME = "network_security"
CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT = "candidate_model"
"""The inference pipeline's input that holds the ``PhishingModel`` inside a registered version."""


class ChampionError(ExpectedError, RuntimeError):
    """The champion could not be read or written; the message says what to do."""


@dataclass(frozen=True)
class Champion:
    """A loaded champion and where it came from (``registry`` or ``cache``)."""

    model: PhishingModel
    version: str
    origin: str


def _client(tracking_uri: str | None) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


# ------------------------------------------------------------------------------ the cache


def read_cache(path: Path) -> PhishingModel | None:
    """The cached champion at ``path``, or ``None`` when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            model = pickle.load(handle)  # noqa: S301 - the project's own cache file
    except Exception as error:  # noqa: BLE001 - any unreadable cache is reported the same way
        raise ChampionError(
            f"The champion cache {path} cannot be read ({type(error).__name__}: {error}). "
            "Delete it: the champion is downloaded again from the model registry, or retrain "
            "with `kedro run --pipeline training`."
        ) from error
    if not isinstance(model, PhishingModel):
        raise ChampionError(
            f"The champion cache {path} holds a {type(model).__name__}, not a PhishingModel. "
            "Delete it and retrain with `kedro run --pipeline training`."
        )
    return model


def write_cache(model: PhishingModel, path: Path) -> None:
    """Write ``model`` to ``path`` atomically: a temporary file beside it, fsync, rename.

    Readers see either the previous file or the complete new one, whatever happens meanwhile.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            pickle.dump(model, file, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# ------------------------------------------------------------------------------ the registry


def champion_version(
    tracking_uri: str | None,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    alias: str = CHAMPION_ALIAS,
) -> str | None:
    """The version that carries ``alias``, or ``None`` when the registry has no such alias.

    Raises:
        ChampionError: When the registry cannot be reached.
    """
    from mlflow.exceptions import MlflowException

    try:
        version = _client(tracking_uri).get_model_version_by_alias(registered_model_name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise ChampionError(
            f"The model registry at {redact(tracking_uri)} could not be asked for "
            f"'{registered_model_name}@{alias}': {error.message}"
        ) from error
    except Exception as error:  # noqa: BLE001 - a store that cannot be opened at all
        raise ChampionError(
            f"The model registry at {redact(tracking_uri)} could not be reached "
            f"({type(error).__name__})."
        ) from error
    return str(version.version)


def download_registered_model(
    tracking_uri: str | None, registered_model_name: str, version: str
) -> PhishingModel:
    """The ``PhishingModel`` inside version ``version`` of the registered inference pipeline."""
    import mlflow

    uri = f"models:/{registered_model_name}/{version}"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_registry_uri(tracking_uri)
        pipeline_model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
        model = pipeline_model.loaded_catalog.load(MODEL_ARTIFACT)
    except Exception as error:  # noqa: BLE001 - reported with what to do
        raise ChampionError(
            f"Version {version} of the registered model '{registered_model_name}' could not be "
            f"loaded from {redact(tracking_uri)} ({type(error).__name__}: {error})."
        ) from error
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    if not isinstance(model, PhishingModel):
        raise ChampionError(
            f"Version {version} of '{registered_model_name}' holds a {type(model).__name__} as "
            f"'{MODEL_ARTIFACT}', not a PhishingModel; retrain with "
            "`kedro run --pipeline training`."
        )
    return model


def load_champion(
    cache_path: Path,
    tracking_uri: str | None,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    alias: str = CHAMPION_ALIAS,
) -> Champion | None:
    """The champion: the registry's ``alias`` version, through the local cache.

    Returns ``None`` when there is no champion at all (no alias and no cache).

    Raises:
        ChampionError: When the alias points at a version that cannot be loaded, or the cache
            is unreadable and the registry cannot replace it.
    """
    try:
        version = champion_version(tracking_uri, registered_model_name, alias)
    except ChampionError as error:
        cached = read_cache(cache_path)
        if cached is None:
            raise
        logger.warning(
            "%s Using the cached champion (version %s) at %s.", error, cached.version, cache_path
        )
        return Champion(cached, str(cached.version), "cache")
    if version is None:
        cached = read_cache(cache_path)
        if cached is None:
            return None
        return Champion(cached, str(cached.version), "cache")
    try:
        cached = read_cache(cache_path)
    except ChampionError as error:
        logger.warning("%s Downloading version %s again.", error, version)
        cached = None
    if cached is not None and str(cached.version) == version:
        return Champion(cached, version, "cache")
    model = download_registered_model(tracking_uri, registered_model_name, version)
    write_cache(model, cache_path)
    logger.info(
        "Champion is version %s of '%s'; cached at %s.", version, registered_model_name, cache_path
    )
    return Champion(model, version, "registry")


def check_registered_version(
    model: PhishingModel, tracking_uri: str | None, registered_model_name: str
) -> None:
    """Check that ``model.version`` of the registered model came from ``model``'s MLflow run.

    The version number is stamped into the model before kedro-mlflow registers it (so every
    prediction names it); a registration by someone else in between would shift the numbers.

    Raises:
        ChampionError: When that version does not exist or belongs to another run.
    """
    run_id = model.params.get("mlflow_run_id")
    try:
        registered = _client(tracking_uri).get_model_version(
            registered_model_name, str(model.version)
        )
    except Exception as error:  # noqa: BLE001 - reported with what to do
        raise ChampionError(
            f"Version {model.version} of '{registered_model_name}' is not in the registry at "
            f"{redact(tracking_uri)} ({type(error).__name__}); the run's model was not "
            "registered. Run the training again."
        ) from error
    if registered.run_id != run_id:
        raise ChampionError(
            f"Version {model.version} of '{registered_model_name}' belongs to run "
            f"{registered.run_id}, not to this run ({run_id}): another registration happened "
            "during the run. Nothing was promoted; run the training again."
        )


def tag_registered_version(
    model: PhishingModel, tracking_uri: str | None, registered_model_name: str
) -> None:
    """Tag the registered version with the model's metrics and provenance."""
    tags = {
        "candidate": model.params.get("candidate", ""),
        "fitted_on": f"{model.params.get('fitted_on')} ({model.params.get('training_rows')} rows)",
        "evaluated_as": model.params.get("evaluated_as", ""),
        "decision_threshold": f"{model.threshold:.4f}",
        "trained_at": model.trained_at,
        **{name: f"{value:.6f}" for name, value in model.metrics.items()},
    }
    client = _client(tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(registered_model_name, str(model.version), key, str(value))


def promote(
    model: PhishingModel,
    cache_path: Path,
    tracking_uri: str | None,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    alias: str = CHAMPION_ALIAS,
) -> None:
    """Make ``model`` (a registered version, or an unregistered one) the champion.

    The registry alias moves first (that is the promotion); writing the local cache is the last
    step, atomic. With an unregistered model (tracking disabled) only the cache is written.
    """
    if str(model.version).isdigit():
        _client(tracking_uri).set_registered_model_alias(
            registered_model_name, alias, str(model.version)
        )
        logger.info(
            "Alias '%s' of '%s' now points at version %s.", alias, registered_model_name,
            model.version,
        )  # fmt: skip
    write_cache(model, cache_path)
