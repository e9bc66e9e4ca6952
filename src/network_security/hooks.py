"""Project hooks: the embedded database for sessions without ``MONGODB_URI``, started only when
a MongoDB dataset is used."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

from network_security.datasets.mongo_dataset import MongoDataset
from network_security.embedded_mongo import EmbeddedMongo

logger = logging.getLogger(__name__)

EMBEDDED_STORAGE = Path("data/mongo")


def _may_be(catalog: Any, name: str, class_name: Callable[[str], bool]) -> bool:
    """Whether dataset ``name`` may be of a class whose name passes ``class_name``, judged by
    its configured type when it has one (no import)."""
    configured = catalog.config_resolver.config.get(name, {}).get("type")
    return not isinstance(configured, str) or class_name(configured.rpartition(".")[2])


def datasets_of_type(catalog: Any, classes: tuple[type, ...]) -> list[str]:
    """The names of the datasets of ``catalog`` that are instances of ``classes``.

    Unlike ``catalog.filter(by_type=...)``, which imports the class of every dataset of the
    catalog (for an ingestion run: the champion's scikit-learn, plotly, ...), a dataset not
    built yet is looked at only when its configured type has the name of one of ``classes``.
    """
    wanted = {cls.__name__ for cls in classes}
    return [
        name
        for name in catalog
        if _may_be(catalog, name, wanted.__contains__) and isinstance(catalog.get(name), classes)
    ]


def mongo_datasets_without_uri(catalog: Any, names: Iterable[str] | None = None) -> list[Any]:
    """The MongoDB datasets of ``catalog`` (those named in ``names``, if given) with no URI."""
    found = []
    for name in datasets_of_type(catalog, (MongoDataset,)):
        if names is None or name in names:
            dataset = catalog.get(name)
            if not dataset.has_uri:
                found.append(dataset)
    return found


class EmbeddedMongoHook:
    """A SecantusDB server (data in ``data/mongo`` of the project) for MongoDB datasets that
    have no URI (``MONGODB_URI`` unset and no literal URI in conf/local/credentials.yml).

    Nothing starts when the context or the catalog is created, so commands that never touch
    MongoDB (``kedro mlflow ui``, ``kedro jupyter``, ``kedro ipython``, ``kedro viz``,
    ``kedro run --pipeline inference``) start no database:

    - ``kedro run``: started before the pipeline when one of its datasets is a MongoDataset
      without a URI; stopped when the pipeline finishes or fails.
    - interactive sessions (``kedro ipython``, a Jupyter kernel, ``kedro viz run --include-hooks``
      previews): started on the first load or save of such a dataset, stopped at interpreter
      exit (or when the process that started it dies).
    """

    def __init__(self) -> None:
        self._storage: Path | None = None
        self._project: Path | None = None
        self._server: EmbeddedMongo | None = None
        self._started_by_run = False
        self._lock = threading.Lock()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        storage = Path(context.project_path) / EMBEDDED_STORAGE
        if storage != self._storage:
            self.stop()  # a session on another project in this process
            self._storage = storage
            self._project = Path(context.project_path)

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        for dataset in mongo_datasets_without_uri(catalog):
            dataset.set_uri_provider(self.uri)

    @hook_impl(tryfirst=True)  # the server boots while the other hooks prepare the run
    def before_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        if not mongo_datasets_without_uri(catalog, pipeline.datasets()):
            return
        with self._lock:
            if self._server is None:  # else an interactive session started it: it stays up
                self._start(wait=False)  # waited for by the first dataset that connects
                self._started_by_run = True

    @hook_impl
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        self._stop_after_run(pipeline, catalog)

    @hook_impl
    def on_pipeline_error(self, pipeline: Any, catalog: Any) -> None:
        self._stop_after_run(pipeline, catalog)

    def uri(self) -> str:
        """The embedded server's URI, started on first use (the provider given to datasets)."""
        with self._lock:
            if self._server is None:
                self._start()
            self._server.wait_until_ready()
            return self._server.uri

    def _start(self, wait: bool = True) -> None:
        if self._project is None:
            raise RuntimeError("No Kedro context yet: the embedded server's folder is unknown.")
        logger.info("MONGODB_URI is not set: starting the embedded SecantusDB on %s", self._storage)
        # private files, and authentication with the project's random password (conf/local)
        self._server = EmbeddedMongo.for_project(self._project).start(wait=wait)

    def _stop_after_run(self, pipeline: Any, catalog: Any) -> None:
        if not self._started_by_run:
            return
        used = pipeline.datasets()
        for name in datasets_of_type(catalog, (MongoDataset,)):
            if name in used:
                catalog.get(name).release()  # close its client: the server is about to stop
        self.stop()

    def stop(self) -> None:
        """Stop the embedded server if it runs (it is also stopped at interpreter exit)."""
        with self._lock:
            server, self._server, self._started_by_run = self._server, None, False
        if server is not None:
            server.stop()


class _CatalogView:
    """Some datasets of a catalog: ``items()`` gives them; reads and assignments by name go to
    the catalog."""

    def __init__(self, catalog: Any, names: list[str]) -> None:
        self._catalog = catalog
        self._names = names

    def items(self) -> list[tuple[str, Any]]:
        return [(name, self._catalog.get(name)) for name in self._names]

    def __getitem__(self, name: str) -> Any:
        return self._catalog[name]

    def __setitem__(self, name: str, dataset: Any) -> None:
        self._catalog[name] = dataset


def _mlflow_datasets(catalog: Any, pipeline: Any) -> _CatalogView:
    """The datasets of ``pipeline`` whose class is named ``Mlflow...``: the ones kedro-mlflow
    switches logging off for (and on again) around a pipeline it does not track."""

    def mlflow(name: str) -> bool:
        return name.startswith("Mlflow")

    names = [
        name
        for name in sorted(pipeline.datasets())
        if name in catalog
        and _may_be(catalog, name, mlflow)
        and mlflow(type(catalog.get(name)).__name__)
    ]
    return _CatalogView(catalog, names)


class ProjectMlflowHook(MlflowHook):
    """kedro-mlflow's hook (registered in ``settings.HOOKS`` in place of the plugin's own
    instance), logging each parameter once per run, and building only the catalog's MLflow
    metric datasets when the catalog is created.

    kedro-mlflow names the metric datasets after their catalog entries, and switches logging
    off and on around a pipeline it does not track, by going through every dataset of the
    catalog: building them all imported what only training uses (scikit-learn through the
    champion's dataset, plotly, ...) into every run. Here it is given only the datasets it acts on.

    kedro-mlflow logs the parameters of every node before it runs, and the same ones come back
    node after node (``params:schema`` goes to 16 nodes): a training run made 892
    ``log_param`` calls, a database transaction each, for 76 parameters (about 1.5 s). A
    parameter already logged in the run with the same value is not sent again.
    """

    @hook_impl
    def after_catalog_created(  # noqa: PLR0913 - kedro's hook specification
        self,
        catalog: Any,
        conf_catalog: dict[str, Any],
        conf_creds: dict[str, Any],
        parameters: dict[str, Any],
        save_version: str,
        load_versions: dict[str, str],
    ) -> None:
        from kedro_mlflow.io.metrics import (
            MlflowMetricDataset,
            MlflowMetricHistoryDataset,
            MlflowMetricsHistoryDataset,
        )

        metrics = (MlflowMetricDataset, MlflowMetricHistoryDataset, MlflowMetricsHistoryDataset)
        view = _CatalogView(catalog, datasets_of_type(catalog, metrics))
        super().after_catalog_created(
            view, conf_catalog, conf_creds, parameters, save_version, load_versions
        )

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        # kedro-mlflow uses the catalog here only to switch logging off (untracked pipelines)
        super().before_pipeline_run(run_params, pipeline, _mlflow_datasets(catalog, pipeline))

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if not self._is_mlflow_enabled:  # only to switch logging on again
            catalog = _mlflow_datasets(catalog, pipeline)
        super().after_pipeline_run(run_params, pipeline, catalog)

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any
    ) -> None:
        if not self._is_mlflow_enabled:
            catalog = _mlflow_datasets(catalog, pipeline)
        super().on_pipeline_error(error, run_params, pipeline, catalog)

    def _log_param(self, name: str, value: Any) -> None:
        logged = self.__dict__.setdefault("_logged_params", {})
        key, text = (self.run_id, name), str(value)
        if logged.get(key) == text:
            return
        super()._log_param(name, value)
        logged[key] = text


class MongoSnapshotHook:
    """During a pipeline run, each MongoDB dataset of the pipeline is read once: its nodes all
    get the same snapshot of the collection (``MongoDataset.hold_snapshot``), not one read each
    (validation has four nodes reading ``phishing_records``). Loads outside a run (a notebook,
    ``kedro ipython``) always read the collection."""

    @hook_impl
    def before_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        self._hold(pipeline, catalog, True)

    @hook_impl
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        self._hold(pipeline, catalog, False)

    @hook_impl
    def on_pipeline_error(self, pipeline: Any, catalog: Any) -> None:
        self._hold(pipeline, catalog, False)

    @staticmethod
    def _hold(pipeline: Any, catalog: Any, hold: bool) -> None:
        used = pipeline.datasets()
        for name in datasets_of_type(catalog, (MongoDataset,)):
            if name in used:
                catalog.get(name).hold_snapshot(hold)


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
