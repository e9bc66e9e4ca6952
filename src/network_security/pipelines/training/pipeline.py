"""Training pipeline: model inputs -> selected, evaluated, registered model -> promotion decision
(namespace ``training``).

``create_pipeline()`` holds the model-training nodes (inputs ``model_input_train``,
``model_input_test``, ``validated_records`` and the ``champion_model``). The selected
configuration is fit twice: on the training split (``fitted_model``, evaluated on the held-out
split) and on all validated records (``production_model``, the one that is registered). The
project's ``training`` and ``__default__`` pipelines wrap the full composition in
``log_inference_model(...)``, kedro-mlflow's ``pipeline_ml_factory``: after a successful run the
inference pipeline, with this run's model inside, is logged and registered as a new version of
the MLflow model ``network_security``; ``network_security.hooks.PromotionHook`` then moves the
alias ``champion`` to it when ``promotion_decision`` says so. Build such compositions with ``+``
first and wrap them once: adding to a ``PipelineML`` (or ``sum()`` over pipelines that include
one) silently turns it back into a plain ``Pipeline``.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline
from kedro_mlflow.pipeline import pipeline_ml_factory
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from network_security.champion import REGISTERED_MODEL_NAME
from network_security.drift import build_drift_reference
from network_security.model_requirements import pip_requirements
from network_security.pipelines.training.nodes import (
    apply_quality_gate,
    build_input_example,
    build_model_selection_report,
    choose_threshold,
    collect_mlflow_metrics,
    compute_feature_importances,
    decide_promotion,
    describe_model_fits,
    evaluate_model,
    fit_evaluation_model,
    fit_production_model,
    package_model_for_registry,
    plot_confusion_matrix,
    plot_feature_importances,
    plot_roc_curve,
    search_candidates,
    select_best_candidate,
    select_model_in_use,
)

INFERENCE_MODEL_NAME = "inference_pipeline"
"""Name of the logged inference pipeline model in each run: ``runs:/<run id>/<this>``."""

INFERENCE_MODEL_INPUT = "model_input_example"
"""The features DataFrame the logged inference pipeline scores (its example is persisted)."""


INPUTS = {"model_input_train", "model_input_test", "validated_records", "champion_model"}
"""What the training nodes read from the other pipelines and the catalog."""

OUTPUTS = {
    INFERENCE_MODEL_INPUT,
    "candidate_model",
    "drift_reference",
    "promotion_decision",
    "model_fits",
    "training_metrics",
    "model_selection_report",
    "feature_importances",
    "confusion_matrix_chart",
    "roc_curve_chart",
    "feature_importance_chart",
}
"""What the training nodes write under their own names: catalog entries (the registered
``candidate_model`` and the MLflow artifacts, metrics and charts) and the drift reference packed
into the model. The ``PromotionHook`` reads ``promotion_decision`` and ``candidate_model`` by
these names."""


def create_pipeline(*, model_in_use: bool = False, **kwargs) -> Pipeline:
    """The ``training`` modular pipeline: the model-training nodes.

    Inputs and outputs keep their names (``INPUTS``, ``OUTPUTS``); the selection internals
    (``cv_results``, ``oof_probabilities``, ``best_candidate``, ``threshold_choice``,
    ``fitted_model``, ``production_model``, ``test_metrics``, ``quality_gate``) are in-memory
    datasets of the namespace, ``training.cv_results`` and so on.

    Args:
        model_in_use: Also pick ``model_in_use``, the model that scores after this run's
            decision (the candidate when promoted, else the champion): ``__default__`` scores
            its demo batch with it. ``kedro run --pipeline training`` scores nothing, so a run
            that promotes nothing on a project with no champion yet still ends normally.
    """
    nodes = [
        Node(
            search_candidates,
            inputs=["model_input_train", "params:schema", "params:training"],
            outputs=["cv_results", "oof_probabilities"],
            name="search_candidates",
        ),
        Node(
            select_best_candidate,
            inputs=["cv_results", "params:training"],
            outputs="best_candidate",
            name="select_best_candidate",
        ),
        Node(
            choose_threshold,
            inputs=[
                "oof_probabilities",
                "model_input_train",
                "best_candidate",
                "params:schema",
                "params:training",
            ],
            outputs="threshold_choice",
            name="choose_threshold",
        ),
        Node(
            fit_evaluation_model,
            inputs=[
                "model_input_train",
                "best_candidate",
                "threshold_choice",
                "params:schema",
                "params:training",
            ],
            outputs="fitted_model",
            name="fit_evaluation_model",
        ),
        Node(
            fit_production_model,
            inputs=[
                "validated_records",
                "best_candidate",
                "threshold_choice",
                "params:schema",
                "params:training",
            ],
            outputs="production_model",
            name="fit_production_model",
        ),
        Node(
            evaluate_model,
            inputs=["fitted_model", "model_input_test", "params:schema"],
            outputs="test_metrics",
            name="evaluate_model",
        ),
        Node(
            plot_confusion_matrix,
            inputs=["fitted_model", "model_input_test", "params:schema"],
            outputs="confusion_matrix_chart",
            name="plot_confusion_matrix",
        ),
        Node(
            plot_roc_curve,
            inputs=["fitted_model", "model_input_test", "params:schema"],
            outputs="roc_curve_chart",
            name="plot_roc_curve",
        ),
        Node(
            compute_feature_importances,
            inputs=["fitted_model", "model_input_test", "params:schema", "params:training"],
            outputs="feature_importances",
            name="compute_feature_importances",
        ),
        Node(
            plot_feature_importances,
            inputs="feature_importances",
            outputs="feature_importance_chart",
            name="plot_feature_importances",
        ),
        Node(
            build_model_selection_report,
            inputs=["cv_results", "best_candidate", "threshold_choice"],
            outputs="model_selection_report",
            name="build_model_selection_report",
        ),
        Node(
            apply_quality_gate,
            inputs=["test_metrics", "params:training"],
            outputs="quality_gate",
            name="apply_quality_gate",
        ),
        Node(
            collect_mlflow_metrics,
            inputs=[
                "test_metrics",
                "best_candidate",
                "threshold_choice",
                "cv_results",
                "quality_gate",
            ],
            outputs="training_metrics",
            name="collect_mlflow_metrics",
        ),
        Node(
            build_input_example,
            inputs="params:schema",
            outputs=INFERENCE_MODEL_INPUT,
            name="build_input_example",
        ),
        Node(
            build_drift_reference,
            inputs=["validated_records", "params:schema"],
            outputs="drift_reference",
            name="build_drift_reference",
        ),
        Node(
            package_model_for_registry,
            inputs=[
                "production_model",
                "fitted_model",
                "test_metrics",
                "quality_gate",
                "drift_reference",
            ],
            outputs="candidate_model",
            name="register_model",
        ),
        Node(
            describe_model_fits,
            inputs=["fitted_model", "production_model"],
            outputs="model_fits",
            name="describe_model_fits",
        ),
        Node(
            decide_promotion,
            inputs=[
                "fitted_model",
                "quality_gate",
                "champion_model",
                "model_input_test",
                "params:schema",
                "params:training",
            ],
            outputs="promotion_decision",
            name="decide_promotion",
        ),
    ]
    outputs = set(OUTPUTS)
    if model_in_use:
        nodes.append(
            Node(
                select_model_in_use,
                inputs=["candidate_model", "promotion_decision", "champion_model"],
                outputs="model_in_use",
                name="select_model_in_use",
            )
        )
        outputs.add("model_in_use")
    return Pipeline(
        nodes,
        namespace="training",
        inputs=INPUTS,
        outputs=outputs,
        parameters={"schema", "training"},
    )


def log_inference_model(training: Pipeline, inference: Pipeline) -> PipelineML:
    """``training`` as a kedro-mlflow ``PipelineML`` that logs and registers ``inference``.

    ``inference`` is the project's inference pipeline (``inference_batch`` + ``champion_model``
    -> ``inference_predictions``). The logged copy reads a features DataFrame instead of the CSV
    (``model_input_example``, also its signature and example) and this run's
    ``candidate_model`` instead of the champion, so each registered version is the whole
    inference pipeline with the model its run trained: ``mlflow.pyfunc.load_model(
    "models:/network_security@champion").predict(frame)`` returns what
    ``kedro run --pipeline inference`` writes for the same rows.
    """
    logged_inference = Pipeline(
        inference,
        inputs={"inference_batch": INFERENCE_MODEL_INPUT, "champion_model": "candidate_model"},
        outputs={"inference_predictions": "mlflow_predictions"},
    )
    return pipeline_ml_factory(
        training=training,
        inference=logged_inference,
        input_name=INFERENCE_MODEL_INPUT,
        log_model_kwargs={
            "name": INFERENCE_MODEL_NAME,
            "registered_model_name": REGISTERED_MODEL_NAME,
            "signature": "auto",
            "pip_requirements": pip_requirements(),
        },
    )
