"""The Dask cluster of a run on the Dask engine: connected before the pipeline, closed after it.

``DaskClusterHook`` acts only when a dataset of the pipeline is an ``EngineDataset`` set to the
``dask`` engine (``--params inference_engine=dask``); the pandas engine never imports Dask. It
reads the ``dask_cluster`` parameters (conf/base/parameters_inference.yml):

- ``scheduler``: the address of a running ``distributed`` scheduler (``tcp://HOST:PORT``), from
  ``--params dask_scheduler=...``; an unreachable one fails within ``connect_timeout`` seconds
  with ``DaskClusterError`` naming it, before the pipeline starts.
- without one, a ``LocalCluster`` sized to the machine (``local_cluster``: its arguments, such as
  ``n_workers`` from ``--params dask_workers=N``), started for the run and stopped after it.

The client is the default one while the pipeline runs, so the Dask datasets and ``to_parquet``
compute on it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from kedro.framework.hooks import hook_impl

from network_security.datasets.engine import EngineDataset

logger = logging.getLogger(__name__)

ENGINE = "dask"


class DaskClusterError(RuntimeError):
    """The Dask scheduler of a run cannot be reached; the message names it and what to do."""


def dask_setup(worker: Any) -> None:
    """Worker preload (local clusters): only warnings from ``distributed`` in the worker."""
    logging.getLogger("distributed").setLevel(logging.WARNING)


def uses_dask_engine(pipeline: Any, catalog: Any) -> bool:
    """Whether a dataset of ``pipeline`` is an ``EngineDataset`` set to the Dask engine."""
    for name in pipeline.datasets():
        if "EngineDataset" in (catalog.get_type(name) or ""):
            dataset = catalog.get(name)
            if isinstance(dataset, EngineDataset) and dataset.engine == ENGINE:
                return True
    return False


def connect(settings: dict[str, Any]) -> contextlib.ExitStack:
    """A ``distributed.Client`` (the default client until the returned stack is closed) on the
    scheduler of ``settings``, or on a LocalCluster started for it.

    Raises:
        DaskClusterError: When the scheduler cannot be reached within ``connect_timeout``.
    """
    from distributed import Client, LocalCluster

    scheduler = str(settings.get("scheduler") or "").strip()
    timeout = float(settings.get("connect_timeout") or 30)
    stack = contextlib.ExitStack()
    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except (OSError, TimeoutError) as exc:
            raise DaskClusterError(
                f"Could not connect to the Dask scheduler at {scheduler} within {timeout:g} s "
                f"({type(exc).__name__}: {exc}). Start it (`dask scheduler`, then `dask worker "
                "<address>` on each machine), or set dask_scheduler to its address "
                "(tcp://HOST:PORT), or leave it unset to use a local cluster."
            ) from exc
        logger.info("Connected to the Dask scheduler at %s", scheduler)
    else:
        arguments = {
            "dashboard_address": None,
            "preload": [__name__],  # dask_setup: quiet worker processes
            **{k: v for k, v in (settings.get("local_cluster") or {}).items() if v is not None},
        }
        with contextlib.ExitStack() as starting:  # stops the cluster if the client fails
            cluster = starting.enter_context(LocalCluster(**arguments))
            client = Client(cluster)
            stack.push(starting.pop_all())
        threads = client.nthreads()
        logger.info(
            "Started a local Dask cluster: %d worker(s), %d thread(s) in all",
            len(threads),
            sum(threads.values()),
        )
    stack.callback(client.close)  # closed first, then the cluster
    return stack


class DaskClusterHook:
    """Connect the Dask client before a run on the Dask engine; close it after the run."""

    def __init__(self) -> None:
        self._context: Any = None
        self._cluster: contextlib.ExitStack | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._context = context

    @hook_impl(tryfirst=True)  # fails before other hooks take resources for the run
    def before_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        if uses_dask_engine(pipeline, catalog):
            params = self._context.params if self._context is not None else {}
            self._cluster = connect(dict(params.get("dask_cluster") or {}))

    @hook_impl
    def after_pipeline_run(self) -> None:
        self.close()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the client, and stop the local cluster if this hook started one."""
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()
