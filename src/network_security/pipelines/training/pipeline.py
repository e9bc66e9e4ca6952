"""Training pipeline: model inputs -> selected, evaluated, registered model -> promotion decision
(namespace ``training``).

``create_pipeline()`` joins three sub-pipelines with ``+``, one per module: selection
(``selection.py``: grouped CV, the configuration, its threshold and fits), evaluation
(``evaluation.py``: test metrics, charts, importances, MLflow metrics) and promotion
(``promotion.py``: quality gate, packaged model, promotion decision). Its inputs are
``model_input_train``, ``model_input_test``, ``validated_records`` and the ``champion_model``;
the ``training`` parameters are parsed once into a typed ``TrainingParams``
(``training.settings``). The selected configuration is fit twice: on the training split
(``fitted_model``, evaluated on the held-out split) and on all validated records
(``production_model``, the one that is registered). The project's ``training`` and
``__default__`` pipelines wrap the full composition in ``log_inference_model(...)``,
kedro-mlflow's ``pipeline_ml_factory``: after a successful run the inference pipeline, with this
run's model inside, is logged and registered as a new version of the MLflow model
``network_security``; ``network_security.hooks.PromotionHook`` then moves the alias ``champion``
to it when ``promotion_decision`` says so. Build such compositions with ``+`` first and wrap
them once: adding to a ``PipelineML`` (or ``sum()`` over pipelines that include one) silently
turns it back into a plain ``Pipeline``.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline
from kedro_mlflow.pipeline import pipeline_ml_factory
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from network_security.champion import REGISTERED_MODEL_NAME
from network_security.drift import build_drift_reference
from network_security.model_requirements import pip_requirements
from network_security.pipelines.training.decisions import choose_operating_points
from network_security.pipelines.training.evaluation import (
    collect_mlflow_metrics,
    compute_feature_importances,
    evaluate_model,
    plot_confusion_matrix,
    plot_feature_importances,
    plot_roc_curve,
)
from network_security.pipelines.training.params import parse_training_parameters
from network_security.pipelines.training.promotion import (
    apply_quality_gate,
    build_input_example,
    decide_promotion,
    describe_model_fits,
    package_model_for_registry,
    select_model_in_use,
)
from network_security.pipelines.training.selection import (
    build_model_selection_report,
    choose_threshold,
    fit_evaluation_model,
    fit_production_model,
    search_candidates,
    select_best_candidate,
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

SPLIT_AND_BEST = [
    "best_candidate", "threshold_choice", "params:schema", "settings", "operating_points"
]  # fmt: skip
"""The inputs both fits share after their records."""

OUT_OF_FOLD = ["oof_probabilities", "model_input_train", "best_candidate"]
"""The selected candidate's out-of-fold probabilities and the rows they score."""


def selection_pipeline() -> Pipeline:
    """Parameters -> grouped CV -> the configuration, its threshold and operating points, its
    two fits, the report."""
    return Pipeline(
        [
            Node(parse_training_parameters, "params:training", "settings", name="parse_parameters"),
            Node(
                search_candidates,
                ["model_input_train", "params:schema", "settings"],
                ["cv_results", "oof_probabilities"],
                name="search_candidates",
            ),
            Node(
                select_best_candidate,
                ["cv_results", "settings"],
                "best_candidate",
                name="select_best_candidate",
            ),
            Node(
                choose_threshold,
                [*OUT_OF_FOLD, "params:schema", "settings"],
                "threshold_choice",
                name="choose_threshold",
            ),  # fmt: skip
            Node(
                choose_operating_points,
                [*OUT_OF_FOLD, "threshold_choice", "params:schema", "settings"],
                "operating_points",
                name="choose_operating_points",
            ),  # fmt: skip
            Node(
                fit_evaluation_model,
                ["model_input_train", *SPLIT_AND_BEST],
                "fitted_model",
                name="fit_evaluation_model",
            ),
            Node(
                fit_production_model,
                ["validated_records", *SPLIT_AND_BEST],
                "production_model",
                name="fit_production_model",
            ),
            Node(
                build_model_selection_report,
                ["cv_results", "best_candidate", "threshold_choice"],
                "model_selection_report",
                name="build_model_selection_report",
            ),
        ]
    )


def evaluation_pipeline() -> Pipeline:
    """The evaluation model on the held-out split: metrics, charts, importances, MLflow metrics."""
    on_test = ["fitted_model", "model_input_test", "params:schema"]
    return Pipeline(
        [
            Node(evaluate_model, on_test, "test_metrics", name="evaluate_model"),
            Node(
                plot_confusion_matrix,
                on_test,
                "confusion_matrix_chart",
                name="plot_confusion_matrix",
            ),  # fmt: skip
            Node(plot_roc_curve, on_test, "roc_curve_chart", name="plot_roc_curve"),
            Node(
                compute_feature_importances,
                [*on_test, "settings"],
                "feature_importances",
                name="compute_feature_importances",
            ),
            Node(
                plot_feature_importances,
                "feature_importances",
                "feature_importance_chart",
                name="plot_feature_importances",
            ),
            Node(
                collect_mlflow_metrics,
                [
                    "test_metrics",
                    "best_candidate",
                    "threshold_choice",
                    "cv_results",
                    "quality_gate",
                    "operating_points",
                ],
                "training_metrics",
                name="collect_mlflow_metrics",
            ),  # fmt: skip
        ]
    )


def promotion_pipeline(model_in_use: bool = False) -> Pipeline:
    """Quality gate, the model packaged for the registry, and the promotion decision."""
    nodes = [
        Node(
            apply_quality_gate,
            ["test_metrics", "settings"],
            "quality_gate",
            name="apply_quality_gate",
        ),  # fmt: skip
        Node(
            build_input_example, "params:schema", INFERENCE_MODEL_INPUT, name="build_input_example"
        ),  # fmt: skip
        Node(
            build_drift_reference,
            ["validated_records", "params:schema"],
            "drift_reference",
            name="build_drift_reference",
        ),
        Node(
            package_model_for_registry,
            ["production_model", "fitted_model", "test_metrics", "quality_gate", "drift_reference"],
            "candidate_model",
            name="register_model",
        ),  # fmt: skip
        Node(
            describe_model_fits,
            ["fitted_model", "production_model"],
            "model_fits",
            name="describe_model_fits",
        ),
        Node(
            decide_promotion,
            [
                "fitted_model",
                "quality_gate",
                "champion_model",
                "model_input_test",
                "params:schema",
                "settings",
            ],
            "promotion_decision",
            name="decide_promotion",
        ),  # fmt: skip
    ]
    if model_in_use:
        nodes.append(
            Node(
                select_model_in_use,
                ["candidate_model", "promotion_decision", "champion_model"],
                "model_in_use",
                name="select_model_in_use",
            )
        )
    return Pipeline(nodes)


def create_pipeline(*, model_in_use: bool = False, **kwargs) -> Pipeline:
    """The ``training`` modular pipeline: selection + evaluation + promotion.

    Inputs and outputs keep their names (``INPUTS``, ``OUTPUTS``); the internals
    (``settings``, ``cv_results``, ``oof_probabilities``, ``best_candidate``,
    ``threshold_choice``, ``operating_points``, ``fitted_model``, ``production_model``,
    ``test_metrics``, ``quality_gate``) are in-memory datasets of the namespace,
    ``training.cv_results`` and so on.

    Args:
        model_in_use: Also pick ``model_in_use``, the model that scores after this run's
            decision (the candidate when promoted, else the champion): ``__default__`` scores
            its demo batch with it. ``kedro run --pipeline training`` scores nothing, so a run
            that promotes nothing on a project with no champion yet still ends normally.
    """
    outputs = OUTPUTS | ({"model_in_use"} if model_in_use else set())
    return Pipeline(
        selection_pipeline() + evaluation_pipeline() + promotion_pipeline(model_in_use),
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
