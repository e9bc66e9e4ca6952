"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Each package under ``pipelines/`` is one modular pipeline with its own namespace (the
    collapsible groups of ``kedro viz``): ingestion, validation, feature_engineering, training,
    inference. Datasets that cross pipelines keep their plain names, so they compose with ``+``.

    - ``training`` is validation + feature_engineering + model training: from the records in
      MongoDB to a registered, evaluated model (and a new champion when it earns it).
    - ``__default__`` is ingestion, then training, then inference on the demo batch, scored by
      the model in use after the run's promotion decision (``model_in_use``).

    Both are kedro-mlflow ``PipelineML`` objects, so each run also logs the inference pipeline
    as one MLflow model. They are composed with ``+`` first and wrapped once: adding to a
    ``PipelineML`` (or ``sum()`` over pipelines that include one) returns a plain ``Pipeline``
    without that behaviour. Their parts come from each package's ``create_pipeline()`` rather
    than from ``find_pipelines``, which (Kedro 1.7) only discovers the pipelines named on the
    command line. For the same reason they are built, and their packages imported, only when
    the run asks for them: ``kedro run --pipeline ingestion`` imports the ingestion package
    alone (not scikit-learn, pandera or plotly).
    """
    pipelines = find_pipelines(raise_errors=True)
    if "training" not in pipelines:
        return pipelines
    from network_security.pipelines import (
        feature_engineering,
        inference,
        ingestion,
        training,
        validation,
    )

    data_preparation = validation.create_pipeline() + feature_engineering.create_pipeline()
    scoring = inference.create_pipeline()
    pipelines["training"] = training.log_inference_model(
        data_preparation + training.create_pipeline(), scoring
    )
    if not {"ingestion", "inference"} <= pipelines.keys():  # not every pipeline was asked for
        return pipelines
    # The demo batch of `kedro run` is scored by the model in use after this run's decision.
    scoring_after_training = Pipeline(scoring, inputs={"champion_model": "model_in_use"})
    pipelines["__default__"] = training.log_inference_model(
        ingestion.create_pipeline()
        + data_preparation
        + training.create_pipeline(model_in_use=True)
        + scoring_after_training,
        scoring,
    )
    return pipelines
