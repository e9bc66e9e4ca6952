"""The ingestion pipeline."""

from network_security.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
