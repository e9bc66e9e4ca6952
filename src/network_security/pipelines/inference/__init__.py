"""Inference pipeline: a CSV of new sites -> checked rows -> verdicts with risk and action."""

from network_security.pipelines.inference.pipeline import create_pipeline

__all__ = ["create_pipeline"]
