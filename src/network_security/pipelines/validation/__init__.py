"""Validation pipeline: schema checks with quarantine, validation report and drift report."""

from network_security.pipelines.validation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
