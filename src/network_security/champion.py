"""The one path to the champion: registry alias -> verified local cache -> loaded model.

The champion is a version of the registered MLflow model ``network_security`` (the whole
inference pipeline, logged by kedro-mlflow's ``pipeline_ml_factory``) that carries the registry
alias ``champion``. The inference pipeline (catalog entry ``champion_model``), the promotion
step of training and the HTTP service all get it through :func:`load_champion`.

A pickle runs code when it is loaded, so the local cache (``data/06_models/champion.pkl``) is
never unpickled on trust. Its bytes are checked first, against a digest kept where writing the
cache file does not reach:

- **registered champion**: the SHA-256 of the exact bytes of the cache is a tag of the
  registry version (``champion_sha256``), recorded when the version is registered and again at
  promotion. The cache is loaded only when its SHA-256 equals the tag of the alias's version;
  otherwise the model is fetched again from the registry (its bytes checked against the same
  tag) and the cache rewritten atomically.
- **registry unreachable (offline), or no alias (tracking disabled, an unregistered model)**:
  the cache is loaded only when it matches its signature, ``champion.pkl.sig`` beside it: an
  HMAC-SHA256 of its bytes under a private key of this user (a 0600 file,
  ``~/.config/network_security/champion.key`` or the file named by
  ``NETWORK_SECURITY_CHAMPION_KEY_FILE``), made on the first cache write. Writing the cache or
  its signature without that key gives a cache that is refused, with an error that says what
  to do (reconnect the registry, or retrain). A service that runs as another user than the
  training needs the same key file (the environment variable), or the registry.

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``): a crash leaves
the previous cache or the new one, never a half-written file.

:func:`promote` is the other direction, used once per training run after kedro-mlflow has
registered the run's model: record the digest, move the alias, then (last step) write the cache.

Errors (``ChampionError``) carry two messages: the full one (paths, causes) for logs and the
command line, and ``public``, a short one without paths or exception text for HTTP clients.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import pickle
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from network_security.errors import ExpectedError
from network_security.model import PhishingModel
from network_security.private_files import PRIVATE_FILE_MODE, private_dir
from network_security.sanitize import redact

logger = logging.getLogger(__name__)

REGISTERED_MODEL_NAME = "network_security"
CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT = "candidate_model"
"""The inference pipeline's input that holds the ``PhishingModel`` inside a registered version."""

DIGEST_TAG = "champion_sha256"
"""Model-version tag: the SHA-256 (hex) of the bytes the cache holds for that version."""

SIGNATURE_SUFFIX = ".sig"
KEY_FILE_ENV = "NETWORK_SECURITY_CHAMPION_KEY_FILE"

UNAVAILABLE = "The champion model could not be loaded; the service log says why."


class ChampionError(ExpectedError, RuntimeError):
    """The champion could not be read or written; the message says what to do.

    ``public`` is the same news for HTTP clients: no file path, no exception text.
    """

    def __init__(self, message: str, public: str = UNAVAILABLE) -> None:
        super().__init__(message)
        self.public = public


class UntrustedCacheError(ChampionError):
    """The cache's bytes do not match the digest or signature recorded for them."""


@dataclass(frozen=True)
class Champion:
    """A loaded champion and where it came from (``registry`` or ``cache``)."""

    model: PhishingModel
    version: str
    origin: str


def _client(tracking_uri: str | None) -> Any:
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


# ------------------------------------------------------------------------------ integrity


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data``, hexadecimal."""
    return hashlib.sha256(data).hexdigest()


def signing_key_path() -> Path:
    """The file of this user's cache-signing key (``NETWORK_SECURITY_CHAMPION_KEY_FILE``)."""
    if configured := os.environ.get(KEY_FILE_ENV):
        return Path(configured).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "network_security" / "champion.key"


def _signing_key(create: bool) -> bytes | None:
    """The signing key; made (0600, never replacing one that exists) when ``create``."""
    path = signing_key_path()
    if not path.exists():
        if not create:
            return None
        private_dir(path.parent)
        handle, temporary = tempfile.mkstemp(prefix=".champion.key.", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="ascii") as file:
                file.write(secrets.token_hex(32))
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, PRIVATE_FILE_MODE)
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
        logger.info("Made the key that signs champion caches: %s", path)
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def signature_path(cache_path: Path) -> Path:
    """The signature file beside the cache ``cache_path``."""
    cache_path = Path(cache_path)
    return cache_path.with_name(cache_path.name + SIGNATURE_SUFFIX)


def _signature(data: bytes, key: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _check_signature(path: Path, data: bytes) -> None:
    """Raise ``UntrustedCacheError`` unless ``data`` (the bytes of ``path``) matches its
    signature under this user's key."""
    key = _signing_key(create=False)
    try:
        recorded = signature_path(path).read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        recorded = ""
    if key is not None and hmac.compare_digest(recorded, _signature(data, key)):
        return
    cause = (
        f"there is no signing key at {signing_key_path()} (set {KEY_FILE_ENV} to the key of "
        "the user who trained)"
        if key is None
        else f"it does not match its signature {signature_path(path).name} (it was changed, or "
        "written by other means than the champion path)"
    )
    raise UntrustedCacheError(
        f"The champion cache {path} is not loaded: {cause}. Connect the model registry so the "
        "champion is fetched again, or retrain with `kedro run --pipeline training`.",
        public=f"The cached champion {path.name} failed its integrity check and was not "
        "loaded; the service log says what to do.",
    )


# ------------------------------------------------------------------------------ the cache


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: a temporary file beside it, fsync, rename, fsync the folder.

    Readers see either the previous file or the complete new one, whatever happens meanwhile.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
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


def write_cache(model: PhishingModel | bytes, path: Path) -> str:
    """Write ``model`` (or the bytes of its pickle) to the cache ``path``, signed; atomic.

    The signature is written first, then the cache: an interrupted write leaves a cache that
    is refused offline and fetched again online, never one that is trusted wrongly.

    Returns:
        The SHA-256 of the bytes written.
    """
    path = Path(path)
    data = model if isinstance(model, bytes) else pickle.dumps(model, pickle.HIGHEST_PROTOCOL)
    key = _signing_key(create=True)
    _atomic_write(signature_path(path), _signature(data, key).encode("ascii"))
    _atomic_write(path, data)
    return sha256_hex(data)


def _unpickle(data: bytes, source: str, name: str) -> PhishingModel:
    """The ``PhishingModel`` in ``data`` (already verified), read from ``source``."""
    try:
        model = pickle.loads(data)  # noqa: S301 - verified bytes (digest or signature)
    except Exception as error:  # noqa: BLE001 - any unreadable pickle is reported the same way
        raise ChampionError(
            f"{source} cannot be read ({type(error).__name__}: {error}). Delete it: the "
            "champion is fetched again from the model registry, or retrain with "
            "`kedro run --pipeline training`.",
            public=f"The champion {name} cannot be read; the service log says what to do.",
        ) from error
    if not isinstance(model, PhishingModel):
        raise ChampionError(
            f"{source} holds a {type(model).__name__}, not a PhishingModel. Delete it and "
            "retrain with `kedro run --pipeline training`.",
            public=f"The champion {name} holds no model (not a PhishingModel); the service log "
            "says what to do.",
        )
    return model


def read_cache(path: Path, expected_sha256: str | None = None) -> PhishingModel | None:
    """The cached champion at ``path``, or ``None`` when there is none.

    The bytes are checked before they are unpickled: against ``expected_sha256`` (the digest
    the registry recorded for the alias's version) when given, else against the signature
    beside the cache.

    Raises:
        UntrustedCacheError: When the bytes do not match.
        ChampionError: When the verified bytes do not hold a ``PhishingModel``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if expected_sha256 is None:
        _check_signature(path, data)
    elif not hmac.compare_digest(sha256_hex(data), expected_sha256):
        raise UntrustedCacheError(
            f"The champion cache {path} does not match the SHA-256 the model registry "
            "recorded for the champion's version.",
            public=f"The cached champion {path.name} failed its integrity check.",
        )
    return _unpickle(data, f"The champion cache {path}", path.name)


# ------------------------------------------------------------------------------ the registry


def _alias_version(tracking_uri: str | None, registered_model_name: str, alias: str) -> Any:
    """The registry's ``ModelVersion`` carrying ``alias``, or ``None`` when there is none.

    Raises:
        ChampionError: When the registry cannot be reached.
    """
    from mlflow.exceptions import MlflowException

    try:
        return _client(tracking_uri).get_model_version_by_alias(registered_model_name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        cause = error.message
    except Exception as error:  # noqa: BLE001 - a store that cannot be opened at all
        cause = type(error).__name__
    raise ChampionError(
        f"The model registry at {redact(tracking_uri)} could not be asked for "
        f"'{registered_model_name}@{alias}' ({cause}).",
        public="The model registry could not be reached and no verified cached champion is "
        "available; the service log says what to do.",
    )


def champion_version(
    tracking_uri: str | None,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    alias: str = CHAMPION_ALIAS,
) -> str | None:
    """The version that carries ``alias``, or ``None`` when the registry has no such alias.

    Raises:
        ChampionError: When the registry cannot be reached.
    """
    version = _alias_version(tracking_uri, registered_model_name, alias)
    return None if version is None else str(version.version)


def registered_model_bytes(
    tracking_uri: str | None, registered_model_name: str, version: str
) -> bytes:
    """The bytes of the pickled ``PhishingModel`` inside a registered version (not loaded).

    The version is the inference pipeline kedro-mlflow logged; its ``MLmodel`` file names the
    artifact that holds ``candidate_model``. Only that file and ``MLmodel`` are downloaded.
    """
    import mlflow
    import yaml

    try:
        # the version's own artifact location: a models:/ URI would be resolved against the
        # process-wide registry URI, not ``tracking_uri``
        client = _client(tracking_uri)
        base = client.get_model_version_download_uri(registered_model_name, version)
        with tempfile.TemporaryDirectory(prefix="champion-") as folder:

            def download(path: str) -> Path:
                return Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=f"{base}/{path}",
                        dst_path=folder,
                        tracking_uri=tracking_uri,
                    )
                )

            flavor = yaml.safe_load(download("MLmodel").read_text())["flavors"]["python_function"]
            return download(flavor["artifacts"][MODEL_ARTIFACT]["path"]).read_bytes()
    except Exception as error:  # noqa: BLE001 - reported with what to do
        raise ChampionError(
            f"Version {version} of the registered model '{registered_model_name}' could not be "
            f"fetched from {redact(tracking_uri)} ({type(error).__name__}: {error}).",
            public="The champion could not be fetched from the model registry; the service "
            "log says why.",
        ) from error


def _cache_of_version(cache_path: Path, digest: str, version: str) -> PhishingModel | None:
    """The cache when its bytes have the registry's ``digest`` for ``version``, else ``None``."""
    try:
        cached = read_cache(cache_path, expected_sha256=digest)
    except ChampionError as error:
        logger.warning("%s Fetching version %s from the model registry again.", error, version)
        return None
    if cached is not None and str(cached.version) != version:
        logger.warning(
            "The champion cache %s holds version %s, not %s; fetching it again.",
            cache_path, cached.version, version,
        )  # fmt: skip
        return None
    return cached


def _fetch(
    cache_path: Path, tracking_uri: str | None, name: str, version: str, digest: str | None
) -> PhishingModel:
    """Version ``version`` from the registry, checked against ``digest``, written to the cache."""
    data = registered_model_bytes(tracking_uri, name, version)
    if digest is not None and not hmac.compare_digest(sha256_hex(data), digest):
        raise ChampionError(
            f"Version {version} of '{name}' in the model registry at {redact(tracking_uri)} does "
            f"not match the SHA-256 recorded on it ({DIGEST_TAG}): it was changed after it was "
            "registered, and is not loaded. Promote another version, or retrain with "
            "`kedro run --pipeline training`.",
            public="The champion in the model registry failed its integrity check and was not "
            "loaded; the service log says what to do.",
        )
    model = _unpickle(data, f"Version {version} of '{name}'", f"version {version}")
    write_cache(data, cache_path)
    logger.info("Champion is version %s of '%s'; cached at %s.", version, name, cache_path)
    return model


def _offline(cache_path: Path, unreachable: ChampionError) -> Champion:
    """The signed cache when the registry cannot be reached; refused when it does not verify."""
    try:
        cached = read_cache(cache_path)
    except ChampionError as refused:
        raise type(refused)(f"{unreachable} {refused}", public=refused.public) from refused
    if cached is None:
        raise unreachable
    logger.warning(
        "%s Using the cached champion (version %s) at %s.", unreachable, cached.version, cache_path
    )
    return Champion(cached, str(cached.version), "cache")


def load_champion(
    cache_path: Path,
    tracking_uri: str | None,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    alias: str = CHAMPION_ALIAS,
) -> Champion | None:
    """The champion: the registry's ``alias`` version, through the verified local cache.

    Returns ``None`` when there is no champion at all (no alias and no cache).

    Raises:
        ChampionError: When the champion cannot be loaded or verified (see the module
            docstring); the message says what to do.
    """
    cache_path = Path(cache_path)
    try:
        registered = _alias_version(tracking_uri, registered_model_name, alias)
    except ChampionError as error:
        return _offline(cache_path, error)
    if registered is None:  # no alias: an unregistered champion (tracking disabled), or none
        cached = read_cache(cache_path)
        return None if cached is None else Champion(cached, str(cached.version), "cache")
    version, digest = str(registered.version), registered.tags.get(DIGEST_TAG)
    if digest is None:
        logger.warning(
            "Version %s of '%s' has no %s tag: the cache cannot be checked, the model is fetched "
            "from the registry each time. Promote the version again to record it.",
            version, registered_model_name, DIGEST_TAG,
        )  # fmt: skip
    elif (cached := _cache_of_version(cache_path, digest, version)) is not None:
        return Champion(cached, version, "cache")
    model = _fetch(cache_path, tracking_uri, registered_model_name, version, digest)
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


def record_digest(tracking_uri: str | None, registered_model_name: str, version: str) -> bytes:
    """Tag version ``version`` with the SHA-256 of its model's bytes (``DIGEST_TAG``).

    Returns:
        Those bytes: what the cache holds when the version is the champion.
    """
    data = registered_model_bytes(tracking_uri, registered_model_name, version)
    _client(tracking_uri).set_model_version_tag(
        registered_model_name, version, DIGEST_TAG, sha256_hex(data)
    )
    return data


def tag_registered_version(
    model: PhishingModel, tracking_uri: str | None, registered_model_name: str
) -> None:
    """Tag the registered version with the model's metrics, provenance and digest."""
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
    record_digest(tracking_uri, registered_model_name, str(model.version))


def promote(
    model: PhishingModel,
    cache_path: Path,
    tracking_uri: str | None,
    registered_model_name: str = REGISTERED_MODEL_NAME,
    alias: str = CHAMPION_ALIAS,
) -> None:
    """Make ``model`` (a registered version, or an unregistered one) the champion.

    For a registered version: record the SHA-256 of its model's bytes on the version, move
    the registry alias (that is the promotion), then write those bytes to the cache (last,
    atomic). With an unregistered model (tracking disabled) only the signed cache is written.
    """
    data: PhishingModel | bytes = model
    if str(model.version).isdigit():
        data = record_digest(tracking_uri, registered_model_name, str(model.version))
        _client(tracking_uri).set_registered_model_alias(
            registered_model_name, alias, str(model.version)
        )
        logger.info(
            "Alias '%s' of '%s' now points at version %s.", alias, registered_model_name,
            model.version,
        )  # fmt: skip
    write_cache(data, cache_path)
