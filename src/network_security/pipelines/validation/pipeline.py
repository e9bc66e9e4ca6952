"""Validation pipeline: MongoDB records -> checked, quarantined, reported and drift-tested
(namespace ``validation``).

Order matters for what is on disk when a gate stops the run: the rejected records and the
validation report are saved before ``enforce_validation_gate``. Drift is measured against the
reference the champion carries (``network_security.drift``).
"""

from kedro.pipeline import Node, Pipeline

from network_security.drift import enforce_drift_gate, measure_drift, plot_drift
from network_security.pipelines.validation.nodes import (
    build_validation_report,
    enforce_validation_gate,
    find_schema_violations,
    quarantine_rejected_records,
    select_valid_records,
)

REPORTS = {"rejected_records", "validation_report", "drift_report", "drift_chart"}
"""The files validation writes (catalog entries under their own names, outside the namespace)."""


def _check_pipeline() -> Pipeline:
    """Schema checks -> quarantine, valid records, the report, then the validation gate."""
    return Pipeline(
        [
            Node(
                find_schema_violations,
                inputs=["phishing_records", "params:schema", "params:validation"],
                outputs="schema_violations",
                name="find_schema_violations",
            ),
            Node(
                quarantine_rejected_records,
                inputs=["phishing_records", "schema_violations", "params:schema"],
                outputs="rejected_records",
                name="quarantine_rejected_records",
            ),
            Node(
                select_valid_records,
                inputs=["phishing_records", "schema_violations", "params:schema"],
                outputs="valid_records",
                name="select_valid_records",
            ),
            Node(
                build_validation_report,
                inputs=[
                    "phishing_records",
                    "schema_violations",
                    "rejected_records",
                    "params:schema",
                    "params:validation",
                ],
                outputs="validation_report",
                name="build_validation_report",
            ),  # fmt: skip
            Node(
                enforce_validation_gate,
                inputs=["valid_records", "validation_report"],
                outputs="quality_checked_records",
                name="enforce_validation_gate",
            ),
        ]
    )


def _drift_pipeline() -> Pipeline:
    """The checked records against the champion's reference -> report, chart, drift gate."""
    return Pipeline(
        [
            Node(
                measure_drift,
                inputs=[
                    "quality_checked_records",
                    "champion_model",
                    "params:schema",
                    "params:validation.drift",
                ],
                outputs="drift_report",
                name="measure_drift",
            ),  # fmt: skip
            Node(plot_drift, inputs="drift_report", outputs="drift_chart", name="plot_drift"),
            Node(
                enforce_drift_gate,
                inputs=["quality_checked_records", "drift_report", "params:validation.drift"],
                outputs="validated_records",
                name="enforce_drift_gate",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """The ``validation`` modular pipeline: ``phishing_records`` and ``champion_model`` ->
    ``validated_records`` (+ the quarantine, the validation and drift reports, the drift chart).

    Its in-memory intermediates are ``validation.schema_violations``,
    ``validation.valid_records`` and ``validation.quality_checked_records``.
    """
    return Pipeline(
        _check_pipeline() + _drift_pipeline(),
        namespace="validation",
        inputs={"phishing_records", "champion_model"},
        outputs={"validated_records", *REPORTS},
        parameters={"schema", "validation", "validation.drift"},
    )
