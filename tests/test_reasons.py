"""``network_security.reasons``: reasons per verdict from the served model's own probabilities,
on a soft vote (with the engineered indicator counts) fitted on the committed synthetic sample."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    VotingClassifier,
)
from sklearn.pipeline import Pipeline

from network_security import reasons as reasons_module
from network_security.features import IndicatorCountFeatures
from network_security.model import PhishingModel
from network_security.reasons import REASONS_COLUMN, reason_settings, with_allowed_values
from network_security.schema import allowed_values, feature_columns, target_column
from network_security.scoring import (
    InputValidationError,
    check_inference_frame,
    score_features,
    score_frame,
    verdict_reasons,
)

ROOT = Path(__file__).resolve().parents[1]
PIECE = r"[A-Za-z_]+=-?\d \([+-]\d\.\d\d\)"
TEXT = re.compile(rf"^(?:{PIECE}(?:; {PIECE})*)?$")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "conf/base/parameters.yml").read_text())["schema"]


@pytest.fixture
def scoring(schema) -> dict[str, Any]:
    """The project's scoring parameters with the schema's allowed values for the reasons."""
    params = yaml.safe_load((ROOT / "conf/base/parameters_inference.yml").read_text())["scoring"]
    return with_allowed_values(params, schema)


@pytest.fixture(scope="module")
def sample(schema) -> pd.DataFrame:
    return pd.read_csv(ROOT / "data/01_raw/phishing_sample.csv")


@pytest.fixture(scope="module")
def model(sample, schema) -> PhishingModel:
    """A soft vote of categorical boosting and extra trees after the indicator counts (the
    shape training builds), compiled and verified equal to ``predict_proba``."""
    features = feature_columns(schema)
    counts = IndicatorCountFeatures(features)
    boosting = HistGradientBoostingClassifier(
        max_iter=40, categorical_features="from_dtype", random_state=0
    )
    extra = ExtraTreesClassifier(40, max_depth=10, random_state=0)
    vote = VotingClassifier(
        [
            ("boosting", Pipeline([("counts", counts), ("trees", boosting)])),
            ("extra", Pipeline([("counts", IndicatorCountFeatures(features)), ("trees", extra)])),
        ],
        voting="soft",
    ).fit(sample[features], sample[target_column(schema)])
    model = PhishingModel(vote, features, threshold=0.5, version="reasons-1")
    assert model.compiled is not None
    return model


@pytest.fixture(scope="module")
def sites(sample, schema) -> pd.DataFrame:
    """400 checked rows of the sample, with a URL column."""
    frame = sample.sample(400, random_state=5)[feature_columns(schema)].reset_index(drop=True)
    frame.insert(0, "url", [f"https://site-{i}.test/" for i in range(len(frame))])
    return check_inference_frame(frame, schema)


def _with(frame: pd.DataFrame, row: int, column: str, value: int) -> pd.DataFrame:
    one = frame.iloc[[row]].copy()
    one[column] = value
    return one


def _parse(text: str) -> list[tuple[str, int, str]]:
    found = re.findall(r"([A-Za-z_]+)=(-?\d) \(([+-]\d\.\d\d)\)", text)
    return [(name, int(value), sign) for name, value, sign in found]


def test_reasons_text_has_the_exact_form_and_matches_the_structured_reasons(model, sites, scoring):
    scored = score_frame(model, sites, scoring)
    assert scored.columns[-1] == REASONS_COLUMN
    features = sites[model.feature_columns].to_numpy()
    verdicts = score_features(model, features, scoring)
    structured = verdict_reasons(model, features, verdicts, scoring).records()
    blocked = scored["recommended_action"] != "allow"
    assert blocked.any() and (~blocked).any()
    for text, reasons, phishing in zip(scored[REASONS_COLUMN], structured, blocked, strict=True):
        assert TEXT.match(text), text
        assert 1 <= len(reasons) <= 3  # every row of this batch has a reason
        expected = "; ".join(
            f"{r['indicator']}={r['value']} ({r['contribution']:+.2f})" for r in reasons
        )
        assert text == expected
        contributions = [r["contribution"] for r in reasons]
        assert all(c > 0 for c in contributions) if phishing else all(c < 0 for c in contributions)
        assert "0.00)" not in text  # a change that rounds to 0.00 is no reason
        assert sorted(contributions, key=abs, reverse=True) == contributions  # strongest first


def test_setting_a_blocked_rows_first_reason_to_its_best_other_value_lowers_p(
    model, sites, scoring, schema
):
    scored = score_frame(model, sites, scoring)
    blocked = scored.index[scored["recommended_action"] == "block"]
    assert len(blocked) >= 50
    allowed = allowed_values(schema)
    lowered = 0
    for row in blocked:
        name, value, sign = _parse(scored.at[row, REASONS_COLUMN])[0]
        assert sign.startswith("+")
        others = [v for v in allowed[name] if v != value]
        changed = pd.concat([_with(sites, row, name, v) for v in others])
        best = model.phishing_probability(changed[model.feature_columns]).min()
        lowered += best < scored.at[row, "phishing_probability"]
    assert lowered == len(blocked)  # 100 %


def test_contributions_equal_a_direct_rescoring_and_are_the_top_ones(model, sites, scoring, schema):
    """Each row's reasons against ``predict_proba`` with each indicator alone set to its
    legitimate value (``review``/``block``) or its phishing value (``allow``)."""
    rows = sites.head(40)
    features = rows[model.feature_columns].to_numpy()
    verdicts = score_features(model, features, scoring)
    got = verdict_reasons(model, features, verdicts, scoring).records()
    toward_legitimate = np.asarray(verdicts.actions)[verdicts.band] == "allow"
    changes = [
        (row, name, min(values) if toward_legitimate[row] else max(values))
        for row in range(len(rows))
        for name, values in allowed_values(schema).items()
    ]
    changed = pd.concat([_with(rows, row, name, v) for row, name, v in changes])
    direct = pd.DataFrame(changes, columns=["row", "name", "value"]).assign(
        p=model.phishing_probability(changed[model.feature_columns], compiled=False)
    )
    p = model.phishing_probability(rows[model.feature_columns], compiled=False)
    assert toward_legitimate.any() and (~toward_legitimate).any()
    for row, reasons in enumerate(got):
        sign = -1 if toward_legitimate[row] else 1
        mine = direct[direct["row"] == row].set_index("name")
        unchanged = mine["value"] == rows.iloc[row][mine.index].to_numpy()
        strength = (sign * (p[row] - mine["p"]))[~unchanged]
        strength = strength[np.rint(strength * 100) >= 1]  # shown as 0.01 or more
        strength = strength.sort_values(ascending=False, kind="stable").head(3)
        assert [r["indicator"] for r in reasons] == strength.index.tolist()
        np.testing.assert_allclose(
            [r["contribution"] for r in reasons], sign * strength.to_numpy(), rtol=0, atol=1e-9
        )
        assert [r["value"] for r in reasons] == [int(rows.iloc[row][n]) for n in strength.index]


def test_reasons_are_the_same_over_small_blocks(model, sites, scoring, monkeypatch):
    whole = score_frame(model, sites, scoring)[REASONS_COLUMN]
    monkeypatch.setattr(reasons_module, "BLOCK_ROWS", 7)
    pd.testing.assert_series_equal(score_frame(model, sites, scoring)[REASONS_COLUMN], whole)


def test_top_k_and_the_switch(model, sites, scoring):
    scoring["reasons"]["top_k"] = 1
    one = score_frame(model, sites, scoring)[REASONS_COLUMN]
    assert (one.str.count("; ") == 0).all() and (one != "").all()
    scoring["reasons"]["enabled"] = False
    assert REASONS_COLUMN not in score_frame(model, sites, scoring).columns


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"enabled": True, "top_k": 0}, "top_k must be a whole number from 1"),
        ({"enabled": True, "top_k": "3"}, "top_k must be a whole number from 1"),
        ({"enabled": True, "top_k": 3}, "allowed values were not passed"),
        (["enabled"], "must be a mapping"),
    ],
)
def test_malformed_reasons_settings_are_refused_with_what_to_do(block, message):
    with pytest.raises(ValueError, match=message):
        reason_settings({"reasons": block})


def test_an_input_reasons_column_is_refused_when_reasons_are_added(model, sites, scoring):
    with pytest.raises(InputValidationError, match=r"\['reasons'\]"):
        score_frame(model, sites.assign(reasons="x"), scoring)


def test_repeated_rows_get_the_reasons_of_their_own_direction(model, sites, scoring):
    """A batch that repeats feature vectors, some toward phishing and some toward legitimate,
    explained at once, equals each row explained alone."""
    settings = reason_settings(scoring)
    rows = sites[model.feature_columns].head(20).to_numpy()
    batch = np.concatenate([rows, rows[::-1], rows[:5]])
    probability = model.phishing_probability_of_matrix(batch)
    toward_phishing = np.random.default_rng(0).random(len(batch)) < 0.5
    together = reasons_module.explain(model, batch, probability, toward_phishing, settings)
    for i in range(len(batch)):
        alone = reasons_module.explain(
            model, batch[i : i + 1], probability[i : i + 1], toward_phishing[i : i + 1], settings
        )
        assert together.records()[i] == alone.records()[0]
    assert together.texts().to_pylist() != [""] * len(batch)
