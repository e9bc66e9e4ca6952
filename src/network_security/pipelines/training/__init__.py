"""training pipeline: duplicate-aware model selection, evaluation, MLflow registry, champion."""

from network_security.pipelines.training.pipeline import create_pipeline, log_inference_model

__all__ = ["create_pipeline", "log_inference_model"]
