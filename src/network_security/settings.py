"""Project settings: https://docs.kedro.org/en/stable/kedro_project_setup/settings.html"""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from network_security.warning_filters import silence_third_party_warnings

# first: importing the hooks imports kedro-mlflow, whose model class makes MLflow warn
silence_third_party_warnings()

from network_security.context import ProjectContext  # noqa: E402
from network_security.dask_cluster import DaskClusterHook  # noqa: E402
from network_security.hooks import (  # noqa: E402
    EmbeddedMongoHook,
    MongoSnapshotHook,
    ProjectMlflowHook,
    PromotionHook,
)
from network_security.training_lock import TrainingLockHook  # noqa: E402

# TrainingLockHook after PromotionHook: both act last in after_pipeline_run (trylast), in the
# order they are listed, so the training lock is held until the promotion is done.
# ProjectMlflowHook is kedro-mlflow's hook, in place of the plugin's own instance (disabled
# below); listed last, it is called first, as the plugin's hooks were (registered after these).
# DaskClusterHook before TrainingLockHook: both act first in before_pipeline_run (tryfirst),
# the later one listed first, so the training lock is taken before a cluster is started.
HOOKS = (
    DaskClusterHook(),
    EmbeddedMongoHook(),
    MongoSnapshotHook(),
    PromotionHook(),
    TrainingLockHook(),
    ProjectMlflowHook(),
)
# (the distribution's name as its metadata spells it: kedro_mlflow for the wheels of 2.x)
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")

# Kedro's context, creating conf/local/credentials.yml from its template when missing
CONTEXT_CLASS = ProjectContext

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
    # conf/base/mlflow.yml reads MLFLOW_TRACKING_URI (with a local default) through oc.env
    "custom_resolvers": {"oc.env": oc.env},
}
