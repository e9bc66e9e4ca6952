"""The one champion path against a real (temporary, SQLite) MLflow store and registered versions
of the project's own inference pipeline: alias -> verified atomic cache -> model, promotion, what
is left after a promotion fails at each of its steps, and caches that were tampered with."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog, MemoryDataset
from kedro_mlflow.mlflow import KedroPipelineModel
from sklearn.ensemble import RandomForestClassifier

from network_security import champion as champion_path
from network_security.champion import (
    DIGEST_TAG,
    ChampionError,
    UntrustedCacheError,
    check_registered_version,
    load_champion,
    promote,
    read_cache,
    sha256_hex,
    signature_path,
    tag_registered_version,
    write_cache,
)
from network_security.datasets.mlflow_registry import MlflowRegisteredModelDataset
from network_security.model import PhishingModel
from network_security.pipelines.training.promotion import build_input_example
from network_security.reasons import with_allowed_values
from network_security.schema import feature_columns
from network_security.scoring import check_inference_frame, score_frame
from network_security.service.champion import ChampionStore

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scoring(schema) -> dict[str, Any]:
    conf = PROJECT_ROOT / "conf" / "base" / "parameters_inference.yml"
    return with_allowed_values(yaml.safe_load(conf.read_text())["scoring"], schema)


@pytest.fixture(scope="module")
def logged_inference():
    """The inference pipeline exactly as ``training`` logs it (``candidate_model`` inside)."""
    from network_security.pipeline_registry import register_pipelines

    bootstrap_project(PROJECT_ROOT)
    return register_pipelines()["training"].inference


def _model(schema: dict[str, Any], seed: int) -> PhishingModel:
    columns = feature_columns(schema)
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(rng.choice([-1, 1], size=(300, len(columns))), columns=columns)
    labels = np.where(features["SSLfinal_State"] + features["URL_Length"] > 0, 1, -1)
    estimator = RandomForestClassifier(n_estimators=5, random_state=seed).fit(features, labels)
    return PhishingModel(estimator=estimator, feature_columns=columns, trained_at=f"seed {seed}")


@pytest.fixture
def register(mlflow_store, schema, scoring, logged_inference, tmp_path):
    """``register(model) -> the stamped model``: a new version of a registered model of this
    test, made as kedro-mlflow makes it (the inference pipeline with the model inside)."""
    name = f"test_champion_{uuid.uuid4().hex[:8]}"
    experiment = mlflow.get_experiment_by_name("network_security")

    def make(model: PhishingModel) -> PhishingModel:
        dataset = MlflowRegisteredModelDataset(str(tmp_path / f"{uuid.uuid4().hex}.pkl"), name)
        catalog = DataCatalog(
            {
                "candidate_model": dataset,
                "params:schema": MemoryDataset(schema),
                "params:scoring": MemoryDataset(scoring),
                "model_input_example": MemoryDataset(build_input_example(schema)),
            }
        )
        with mlflow.start_run(experiment_id=experiment.experiment_id):
            dataset.save(model)
            pipeline_model = KedroPipelineModel(
                pipeline=logged_inference, catalog=catalog, input_name="model_input_example"
            )
            artifacts = pipeline_model.extract_pipeline_artifacts(tmp_path)
            mlflow.pyfunc.log_model(
                name="inference_pipeline",
                python_model=pipeline_model,
                artifacts=artifacts,
                registered_model_name=name,
            )
        stamped = dataset.load()
        check_registered_version(stamped, mlflow_store, name)  # as the promotion step does
        tag_registered_version(stamped, mlflow_store, name)
        return stamped

    make.name = name
    return make


def test_the_champion_follows_the_alias_through_an_atomic_cache(
    register, mlflow_store, schema, monkeypatch
):
    cache = Path(mlflow_store.removeprefix("sqlite:///")).parent / f"{uuid.uuid4().hex}.pkl"
    assert load_champion(cache, mlflow_store, register.name) is None  # nothing promoted yet

    first = register(_model(schema, 1))
    promote(first, cache, mlflow_store, register.name)
    loaded = load_champion(cache, mlflow_store, register.name)
    assert (loaded.version, loaded.origin) == (first.version, "cache")
    assert read_cache(cache).trained_at == "seed 1"

    # the alias moved elsewhere (another machine promoted, or by hand): the cache follows it
    second = register(_model(schema, 2))
    assert int(second.version) == int(first.version) + 1
    mlflow.MlflowClient(mlflow_store).set_registered_model_alias(
        register.name, "champion", second.version
    )
    loaded = load_champion(cache, mlflow_store, register.name)
    assert (loaded.version, loaded.origin) == (second.version, "registry")
    assert loaded.model.trained_at == "seed 2"
    assert read_cache(cache).version == second.version
    assert [p.name for p in cache.parent.glob(f".{cache.name}.*")] == []  # no temporary left

    # a truncated cache is replaced from the registry; offline, the cache is used as it is
    cache.write_bytes(cache.read_bytes()[:100])
    assert load_champion(cache, mlflow_store, register.name).origin == "registry"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    offline = "http://127.0.0.1:9"  # nothing listens on the discard port
    loaded = load_champion(cache, offline, register.name)
    assert (loaded.version, loaded.origin) == (second.version, "cache")
    cache.unlink()
    with pytest.raises(ChampionError, match="could not be"):
        load_champion(cache, offline, register.name)


def test_a_version_registered_by_another_run_is_refused(register, mlflow_store, schema):
    model = register(_model(schema, 3))
    model.params = {**model.params, "mlflow_run_id": "another-run"}
    with pytest.raises(ChampionError, match="belongs to run"):
        check_registered_version(model, mlflow_store, register.name)


def _serves(store: ChampionStore, schema, scoring) -> str:
    """Score one row with what the service serves; the model version that answered."""
    loaded = store.refresh()
    row = build_input_example(schema).head(1)
    scored = score_frame(loaded.model, check_inference_frame(row, schema), scoring)
    assert scored["phishing_probability"].between(0, 1).all()
    return str(scored["model_version"].iloc[0])


def test_a_failed_promotion_leaves_a_champion_that_loads_and_serves(
    register, mlflow_store, schema, scoring, tmp_path, monkeypatch
):
    cache = tmp_path / "champion.pkl"
    old = register(_model(schema, 4))
    promote(old, cache, mlflow_store, register.name)

    def served() -> str:
        return str(load_champion(cache, mlflow_store, register.name).version)

    # step 1 fails: the alias cannot be moved -> the previous champion, untouched
    new = register(_model(schema, 5))
    client_class = type(mlflow.MlflowClient())
    original = client_class.set_registered_model_alias

    def refuse(*args, **kwargs):
        raise OSError("injected: registry unreachable while moving the alias")

    monkeypatch.setattr(client_class, "set_registered_model_alias", refuse)
    with pytest.raises(OSError, match="injected"):
        promote(new, cache, mlflow_store, register.name)
    monkeypatch.setattr(client_class, "set_registered_model_alias", original)
    assert served() == old.version
    assert read_cache(cache).version == old.version

    # step 2 fails: the alias moved, then the cache write fails -> the cache still holds the
    # previous model whole; the champion path serves the new version (the alias is the truth)
    def fail_replace(source, target):
        raise OSError("injected: disk full at rename")

    monkeypatch.setattr(champion_path.os, "replace", fail_replace)
    with pytest.raises(OSError, match="injected"):
        promote(new, cache, mlflow_store, register.name)
    monkeypatch.undo()
    assert read_cache(cache).version == old.version  # intact, not truncated
    assert [p.name for p in tmp_path.glob(".champion.pkl.*")] == []
    assert served() == new.version
    assert read_cache(cache).version == new.version  # repaired from the registry

    # step 3: the process is killed in the middle of writing the cache
    newest = register(_model(schema, 6))
    (tmp_path / "newest.pkl").write_bytes(pickle.dumps(newest))
    script = (
        "import os, pickle, signal, sys\n"
        "from network_security import champion\n"
        "model = pickle.load(open(sys.argv[1], 'rb'))\n"
        "def die(fd):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "champion.os.fsync = die\n"
        "champion.promote(model, sys.argv[2], sys.argv[3], sys.argv[4])\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "newest.pkl"), str(cache)]
        + [mlflow_store, register.name],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert read_cache(cache).version == new.version  # the old file is whole
    assert served() == newest.version  # the alias had moved before the kill
    store = ChampionStore(cache, mlflow_store)
    store_name = register.name
    monkeypatch.setattr(
        "network_security.service.champion.load_champion",
        lambda path, uri: load_champion(path, uri, store_name),
    )
    assert _serves(store, schema, scoring) == newest.version


def test_write_cache_replaces_whole_files_only(tmp_path, schema):
    cache = tmp_path / "models" / "champion.pkl"
    first, second = _model(schema, 7), _model(schema, 8)
    write_cache(first, cache)
    write_cache(second, cache)
    assert read_cache(cache).trained_at == "seed 8"
    assert sorted(p.name for p in cache.parent.iterdir()) == ["champion.pkl", "champion.pkl.sig"]
    write_cache(b"not a pickle", cache)  # signed, but not a model
    with pytest.raises(ChampionError, match="cannot be read"):
        read_cache(cache)
    cache.write_bytes(b"not a pickle either")  # not through write_cache: not signed
    with pytest.raises(UntrustedCacheError, match="does not match its signature"):
        read_cache(cache)


class _WritesAMarker:
    """Unpickling this writes a file: what a hostile pickle could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def _tamper(cache: Path, marker: Path) -> bytes:
    """Replace the cache with a hostile pickle, and its signature with a plain SHA-256."""
    hostile = pickle.dumps(_WritesAMarker(marker))
    cache.write_bytes(hostile)
    signature_path(cache).write_text(sha256_hex(hostile))
    return hostile


def test_a_tampered_cache_is_never_unpickled_and_is_replaced_from_the_registry(
    register, mlflow_store, schema, tmp_path, monkeypatch
):
    cache, marker = tmp_path / "champion.pkl", tmp_path / "unpickled.txt"
    model = register(_model(schema, 9))
    promote(model, cache, mlflow_store, register.name)
    client = mlflow.MlflowClient(mlflow_store)
    digest = client.get_model_version(register.name, model.version).tags[DIGEST_TAG]
    assert sha256_hex(cache.read_bytes()) == digest  # the exact bytes of the cache

    _tamper(cache, marker)
    loaded = load_champion(cache, mlflow_store, register.name)
    assert (loaded.version, loaded.origin) == (model.version, "registry")
    assert loaded.model.trained_at == "seed 9"
    assert not marker.exists()
    assert sha256_hex(cache.read_bytes()) == digest  # rewritten from the registry
    assert load_champion(cache, mlflow_store, register.name).origin == "cache"

    # offline, the registry cannot say which bytes are right: a tampered cache is refused
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    offline = "http://127.0.0.1:9"  # nothing listens on the discard port
    assert load_champion(cache, offline, register.name).version == model.version  # intact
    hostile = _tamper(cache, marker)
    with pytest.raises(ChampionError) as refused:
        load_champion(cache, offline, register.name)
    message = str(refused.value)
    assert "could not be asked" in message and "is not loaded" in message
    assert "Connect the model registry" in message and "kedro run --pipeline training" in message
    assert str(tmp_path) not in refused.value.public and "champion.pkl" in refused.value.public
    assert not marker.exists()
    assert cache.read_bytes() == hostile  # refused, not replaced: there is nothing to replace it

    # without an alias (an unregistered champion), an unsigned cache is refused the same way
    client.delete_registered_model_alias(register.name, "champion")
    with pytest.raises(UntrustedCacheError, match="does not match its signature"):
        load_champion(cache, mlflow_store, register.name)
    assert not marker.exists()


def test_a_registered_model_changed_in_the_artifact_store_is_refused(
    register, mlflow_store, schema, tmp_path
):
    cache, marker = tmp_path / "champion.pkl", tmp_path / "unpickled.txt"
    model = register(_model(schema, 10))
    promote(model, cache, mlflow_store, register.name)
    client = mlflow.MlflowClient(mlflow_store)
    folder = Path(
        client.get_model_version_download_uri(register.name, model.version).removeprefix("file://")
    )
    (stored,) = [
        path for path in (folder / "artifacts").glob("*.pkl") if not path.name.startswith("params")
    ]
    stored.write_bytes(pickle.dumps(_WritesAMarker(marker)))
    cache.unlink()
    with pytest.raises(ChampionError, match="does not match the SHA-256 recorded on it"):
        load_champion(cache, mlflow_store, register.name)
    assert not marker.exists() and not cache.exists()
