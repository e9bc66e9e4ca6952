"""feature_engineering pipeline: a train/test split that keeps duplicate vectors together."""

from network_security.pipelines.feature_engineering.pipeline import create_pipeline

__all__ = ["create_pipeline"]
