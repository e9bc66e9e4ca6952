"""The inference pipeline's wiring, in memory: a stream of text chunks and the champion ->
scored predictions (no MLflow, no files)."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline as SkPipeline
from synthetic import make_batch  # scripts/synthetic.py (pytest pythonpath)

from network_security.model import PhishingModel
from network_security.pipelines.inference import create_pipeline
from network_security.schema import feature_columns, target_column
from network_security.scoring import ChunkStream

VERDICTS = [
    "prediction",
    "label",
    "phishing_probability",
    "risk_level",
    "recommended_action",
    "model_version",
    "reasons",
]


@pytest.fixture
def champion(synthetic_records, schema) -> PhishingModel:
    """A small random forest fit on synthetic records, wrapped as the champion is."""
    records = synthetic_records(800, seed=23)
    features = feature_columns(schema)
    estimator = SkPipeline(
        [("classifier", RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0))]
    ).fit(records[features], records[target_column(schema)])
    return PhishingModel(estimator=estimator, feature_columns=features, version="wiring-1")


def test_inference_scores_a_chunked_batch_with_the_champion(
    run_in_memory, synthetic_profile, champion, schema
):
    batch = make_batch(synthetic_profile, schema, 90, seed=29)
    text = batch.astype(str)  # as the CSV dataset reads it
    stream = ChunkStream([text.iloc[:40], text.iloc[40:]], source="memory.csv")

    pipeline = create_pipeline()
    assert {n.namespace for n in pipeline.nodes} == {"inference"}
    outputs = run_in_memory(pipeline, {"inference_batch": stream, "champion_model": champion})

    assert set(outputs) == {"inference.checked_inference_batch", "inference_predictions"}
    scored = pd.concat(list(outputs["inference_predictions"]), ignore_index=True)
    assert list(scored.columns) == ["url", *feature_columns(schema), *VERDICTS]
    assert scored["url"].tolist() == batch["url"].tolist()  # extra columns kept, in order
    features = feature_columns(schema)
    expected = champion.estimator.predict_proba(batch[features])[:, 0]  # classes: -1, 1
    assert scored["phishing_probability"].to_numpy() == pytest.approx(expected, abs=1e-6)
    assert set(scored["prediction"]) <= {-1, 1}
    assert (scored["prediction"] == -1).tolist() == (expected >= champion.threshold).tolist()
    assert set(scored["model_version"]) == {"wiring-1"}
