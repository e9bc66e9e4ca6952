"""Validation pipeline: MongoDB records -> checked, quarantined, reported and drift-tested.

Order matters for what is on disk when a gate stops the run: the rejected records and the
validation report are saved before ``enforce_validation_gate``. Drift is measured against the
reference the champion carries (``network_security.drift``).
"""

from kedro.pipeline import Pipeline, node

from network_security.drift import (
    compute_drift_report,
    enforce_drift_gate,
    plot_drift,
    resolve_drift_reference,
)
from network_security.pipelines.validation.nodes import (
    build_validation_report,
    enforce_validation_gate,
    find_schema_violations,
    quarantine_rejected_records,
    select_valid_records,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Build the validation pipeline (input ``phishing_records``, output ``validated_records``)."""
    return Pipeline(
        [
            node(
                find_schema_violations,
                inputs=["phishing_records", "params:schema", "params:validation"],
                outputs="schema_violations",
                name="find_schema_violations",
            ),
            node(
                quarantine_rejected_records,
                inputs=["phishing_records", "schema_violations", "params:schema"],
                outputs="rejected_records",
                name="quarantine_rejected_records",
            ),
            node(
                select_valid_records,
                inputs=["phishing_records", "schema_violations", "params:schema"],
                outputs="valid_records",
                name="select_valid_records",
            ),
            node(
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
            ),
            node(
                enforce_validation_gate,
                inputs=["valid_records", "validation_report"],
                outputs="quality_checked_records",
                name="enforce_validation_gate",
            ),
            node(
                resolve_drift_reference,
                inputs=["quality_checked_records", "champion_model", "params:schema"],
                outputs="drift_reference",
                name="resolve_drift_reference",
            ),
            node(
                compute_drift_report,
                inputs=[
                    "quality_checked_records",
                    "drift_reference",
                    "params:schema",
                    "params:validation.drift",
                ],
                outputs="drift_report",
                name="compute_drift_report",
            ),
            node(
                plot_drift,
                inputs="drift_report",
                outputs="drift_chart",
                name="plot_drift",
            ),
            node(
                enforce_drift_gate,
                inputs=["quality_checked_records", "drift_report", "params:validation.drift"],
                outputs="validated_records",
                name="enforce_drift_gate",
            ),
        ]
    )
