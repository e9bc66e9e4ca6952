"""``network_security.scoring``: the input checks and the scoring function the pipeline and the
service share, on the committed synthetic sample and a model fitted on it."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from network_security.model import PhishingModel
from network_security.reasons import REASONS_COLUMN, with_allowed_values
from network_security.schema import feature_columns, target_column
from network_security.scoring import (
    OUTPUT_COLUMNS,
    ChunkStream,
    InputValidationError,
    check_chunks,
    check_feature_matrix,
    check_inference_frame,
    operating_points_of,
    score_chunks,
    score_frame,
)

CONF = Path(__file__).resolve().parents[1] / "conf" / "base"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return yaml.safe_load((CONF / "parameters.yml").read_text())["schema"]


@pytest.fixture
def scoring(schema: dict[str, Any]) -> dict[str, Any]:
    params = yaml.safe_load((CONF / "parameters_inference.yml").read_text())["scoring"]
    return with_allowed_values(params, schema)


@pytest.fixture(scope="module")
def records(sample_data_path: Path) -> pd.DataFrame:
    return pd.read_csv(sample_data_path)


@pytest.fixture(scope="module")
def model(records: pd.DataFrame, schema: dict[str, Any]) -> PhishingModel:
    features = feature_columns(schema)
    estimator = Pipeline(
        [("classifier", RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0))]
    ).fit(records[features], records[target_column(schema)])
    return PhishingModel(estimator, features, threshold=0.5, version="unit-7")


@pytest.fixture
def sites(records: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    """300 sample feature vectors as text cells (as read from a CSV), with an id and a URL."""
    frame = records.sample(300, random_state=3)[feature_columns(schema)].astype(str)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "site_id", [f"{i:05d}" for i in range(len(frame))])
    frame["url"] = [f"http://example-{i}.test/" for i in range(len(frame))]
    return frame


# ------------------------------------------------------------------ check_inference_frame


def test_check_types_features_as_int64_and_keeps_extra_columns_untouched(sites, schema):
    checked = check_inference_frame(sites, schema)
    features = feature_columns(schema)
    assert list(checked.columns) == list(sites.columns)
    assert all(checked[name].dtype == "int64" for name in features)
    assert checked[features].to_numpy().tolist() == sites[features].astype(int).to_numpy().tolist()
    pd.testing.assert_series_equal(checked["site_id"], sites["site_id"])  # "00007" stays text
    pd.testing.assert_series_equal(checked["url"], sites["url"])


def test_check_accepts_numeric_frames_and_ignores_a_result_column(records, schema):
    checked = check_inference_frame(records.head(50), schema)
    assert checked[target_column(schema)].equals(records[target_column(schema)].head(50))
    floats = records.head(50)[feature_columns(schema)].astype("float64")
    assert check_inference_frame(floats, schema)["URL_Length"].dtype == "int64"


def test_check_accepts_padded_and_integral_decimal_text(sites, schema):
    sites.loc[0, "URL_Length"] = " -1 "
    sites.loc[1, "URL_Length"] = "1.0"
    checked = check_inference_frame(sites, schema)
    assert checked.loc[[0, 1], "URL_Length"].tolist() == [-1, 1]


@pytest.mark.parametrize(
    ("cell", "problem", "words"),
    [
        ("abc", "not_integer", "is not an integer"),
        ("0.5", "not_integer", "is not an integer"),
        ("7", "not_allowed", "is not an allowed value"),
        ("123456789012345678901234", "not_allowed", "is not an allowed value"),
        ("", "missing_value", "missing value"),
        ("NA", "missing_value", "missing value"),
    ],
)
def test_a_bad_cell_is_reported_with_column_row_value_and_counts(
    sites, schema, cell, problem, words
):
    sites.loc[[41, 99, 250], "SSLfinal_State"] = cell
    with pytest.raises(InputValidationError) as caught:
        check_inference_frame(sites, schema, source="batch.csv", row_offset=1000)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.column, error.row, error.problem) == ("SSLfinal_State", 1042, problem)
    assert error.value == cell
    assert error.rows_affected == 3
    message = str(error)
    for part in ("batch.csv", "'SSLfinal_State'", "row 1042", words, "3 row(s)", "1042, 1100"):
        assert part in message
    assert "allowed values are -1, 0, 1" in message


def test_the_earliest_bad_row_is_reported_first(sites, schema):
    sites.loc[80, "having_IP_Address"] = "x"  # earlier column, later row
    sites.loc[12, "Statistical_report"] = "0"  # later column, earlier row; 0 is not allowed
    with pytest.raises(InputValidationError) as caught:
        check_inference_frame(sites, schema)
    assert (caught.value.column, caught.value.row) == ("Statistical_report", 13)
    assert "2 row(s) of rows 1-300 have at least one invalid cell, in 2 column(s)" in str(
        caught.value
    )


def test_missing_columns_are_named_with_a_hint_for_a_near_miss(sites, schema):
    frame = sites.drop(columns=["URL_Length", "SFH"]).rename(columns={"port": "Port"})
    with pytest.raises(InputValidationError) as caught:
        check_inference_frame(frame, schema, source="new.csv")
    error = caught.value
    assert (error.column, error.row, error.value, error.problem) == (
        "URL_Length",
        None,
        None,
        "missing_column",
    )
    message = str(error)
    assert "new.csv: missing column 'URL_Length'" in message
    assert "3 of the 30 feature columns" in message
    assert "'Port' -> 'port'" in message


def test_an_empty_frame_is_refused(sites, schema):
    with pytest.raises(InputValidationError, match="no data rows") as caught:
        check_inference_frame(sites.head(0), schema)
    assert caught.value.problem == "no_rows"


def test_boolean_cells_are_not_integers(records, schema):
    frame = records.head(5).copy()
    frame["Favicon"] = frame["Favicon"] > 0
    with pytest.raises(InputValidationError, match="'Favicon', row 1: value 'True'"):
        check_inference_frame(frame, schema)


# ------------------------------------------------------------------ score_frame


def test_score_adds_the_verdict_columns(sites, schema, model, scoring):
    scored = score_frame(model, check_inference_frame(sites, schema), scoring)
    assert list(scored.columns) == [*sites.columns, *OUTPUT_COLUMNS, REASONS_COLUMN]
    assert len(scored) == len(sites)
    probability = model.phishing_probability(check_inference_frame(sites, schema))
    np.testing.assert_array_equal(scored["phishing_probability"].to_numpy(), probability)
    assert scored["phishing_probability"].between(0, 1).all()
    expected = model.predict(check_inference_frame(sites, schema))
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), expected)
    assert set(scored["prediction"]) == {-1, 1}
    words = np.where(scored["prediction"] == -1, "phishing", "legitimate")
    assert scored["label"].tolist() == words.tolist()
    assert set(scored["model_version"]) == {"unit-7"}
    assert set(scored["risk_level"]) <= {"low", "medium", "high", "critical"}


def with_points(model: PhishingModel, threshold: float, allow: float, block: float):
    """``model``'s estimator with its own threshold and operating points."""
    points = {"allow_below": allow, "block_above": block}
    return PhishingModel(
        model.estimator, model.feature_columns, threshold=threshold, operating_points=points
    )


def test_actions_and_risk_levels_follow_the_model_operating_points(sites, schema, model, scoring):
    checked = check_inference_frame(sites, schema)
    p = model.phishing_probability(checked)
    allow, threshold, block = (float(np.quantile(p, q, method="lower")) for q in (0.2, 0.5, 0.8))
    scored = score_frame(with_points(model, threshold, allow, block), checked, scoring)
    expected = np.select(
        [p < allow, p > block, p >= threshold], ["low", "critical", "high"], "medium"
    )
    assert scored["risk_level"].tolist() == expected.tolist()
    action = {"low": "allow", "medium": "review", "high": "review", "critical": "block"}
    assert scored["recommended_action"].tolist() == [action[level] for level in expected]
    # strict at both points: a probability equal to a point is reviewed
    assert scored.loc[p == allow, "recommended_action"].eq("review").all()
    assert scored.loc[p == block, "recommended_action"].eq("review").all()
    assert (p == allow).any() and (p == block).any()
    assert set(scored["risk_level"]) == {"low", "medium", "high", "critical"}
    # the prediction stays the binary verdict at the threshold
    np.testing.assert_array_equal(scored["prediction"], np.where(p >= threshold, -1, 1))


def test_a_model_without_operating_points_decides_at_its_threshold(sites, schema, model, scoring):
    checked = check_inference_frame(sites, schema)
    p = model.phishing_probability(checked)
    threshold = float(np.median(p))
    old = PhishingModel(model.estimator, model.feature_columns, threshold=threshold)
    assert old.operating_points is None
    scored = score_frame(old, checked, scoring)
    expected = np.select([p < threshold, p > threshold], ["allow", "block"], "review")
    assert scored["recommended_action"].tolist() == expected.tolist()
    assert operating_points_of(old) == {
        "allow_below": threshold,
        "block_above": threshold,
        "source": "threshold",
    }


def test_a_pickle_from_before_operating_points_loads_and_decides_at_its_threshold(
    sites, schema, model, scoring
):
    old = PhishingModel(model.estimator, model.feature_columns, threshold=0.5)
    del old.__dict__["operating_points"]  # the fields an older release pickled
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.operating_points is None
    scored = score_frame(loaded, check_inference_frame(sites, schema), scoring)
    p = scored["phishing_probability"]
    assert scored.loc[p < 0.5, "recommended_action"].eq("allow").all()
    assert scored.loc[p > 0.5, "recommended_action"].eq("block").all()


def test_points_that_never_fire_send_every_site_to_review(sites, schema, model, scoring):
    checked = check_inference_frame(sites, schema)
    scored = score_frame(with_points(model, 0.5, 0.0, 1.0), checked, scoring)
    assert scored["recommended_action"].eq("review").all()


def test_score_refuses_a_frame_that_already_has_verdict_columns(sites, schema, model, scoring):
    scored = score_frame(model, check_inference_frame(sites, schema), scoring)
    with pytest.raises(InputValidationError, match="predictions file") as caught:
        score_frame(model, scored, scoring)
    assert caught.value.column == "prediction"


# ------------------------------------------------------------------ streams


def test_scoring_in_chunks_equals_scoring_at_once(sites, schema, model, scoring):
    whole = score_frame(model, check_inference_frame(sites, schema), scoring)
    chunks = ChunkStream((sites.iloc[i : i + 45] for i in range(0, len(sites), 45)), "s.csv")
    streamed = pd.concat(list(score_chunks(model, check_chunks(chunks, schema), scoring)))
    pd.testing.assert_frame_equal(streamed, whole)


def test_a_bad_cell_in_a_later_chunk_reports_its_row_in_the_file(sites, schema):
    sites.loc[123, "web_traffic"] = "high"
    chunks = ChunkStream([sites.iloc[:100], sites.iloc[100:200], sites.iloc[200:]], "s.csv")
    checked = iter(check_chunks(chunks, schema))
    assert len(next(checked)) == 100
    with pytest.raises(InputValidationError) as caught:
        next(checked)
    assert (caught.value.row, caught.value.value) == (124, "high")
    assert "s.csv: column 'web_traffic', row 124" in str(caught.value)


def test_a_stream_without_rows_is_refused(schema):
    with pytest.raises(InputValidationError, match="no data rows"):
        list(check_chunks(ChunkStream([], "empty.csv"), schema))


# ------------------------------------------------------------------ values of any size or type


@pytest.mark.parametrize(
    "text", ["18446744073709551615", "18446744073709551617", "9223372036854775808", "1e300"]
)
def test_a_huge_number_read_by_pandas_is_refused_not_wrapped(sites, schema, text):
    """pandas reads 18446744073709551615 as uint64; cast to int64 it would wrap to -1."""
    sites["Favicon"] = "1"
    sites.loc[7, "Favicon"] = text
    frame = pd.read_csv(io.StringIO(sites.to_csv(index=False)))  # numbers inferred
    with pytest.raises(InputValidationError) as caught:
        check_inference_frame(frame, schema, source="typed.csv")
    error = caught.value
    assert (error.column, error.row, error.problem) == ("Favicon", 8, "not_allowed")
    assert "typed.csv: column 'Favicon', row 8" in str(error)


def test_booleans_among_integers_are_not_integers(sites, schema):
    """True == 1 to a hash table: a boolean must not pass as the integer 1."""
    frame = check_inference_frame(sites, schema)
    frame["URL_Length"] = frame["URL_Length"].astype(object)
    frame.loc[5, "URL_Length"] = True
    with pytest.raises(InputValidationError) as caught:
        check_inference_frame(frame, schema)
    assert (caught.value.column, caught.value.row, caught.value.value) == (
        "URL_Length",
        6,
        "True",
    )
    assert caught.value.problem == "not_integer"


def test_an_unsigned_matrix_beyond_int64_is_refused(schema):
    matrix = np.ones((3, len(feature_columns(schema))), dtype=np.uint64)
    matrix[2, 9] = np.uint64(2**64 - 1)
    with pytest.raises(InputValidationError) as caught:
        check_feature_matrix(matrix, schema, source="records")
    assert (caught.value.column, caught.value.row) == (feature_columns(schema)[9], 3)
    assert caught.value.value == "18446744073709551615"
