"""The error budget in the service: ``/model`` shows the champion's operating points, the
predictions follow them, and the HTML pages show the budget at the top."""

from __future__ import annotations

from copy import copy

import pytest

POINTS = {
    "allow_below": 0.05,
    "block_above": 0.93,
    "max_missed_phishing": 0.01,
    "max_false_block": 0.01,
    "expected_missed_phishing": 0.0072,
    "expected_false_block": 0.0061,
    "expected_review_share": 0.128,
}


@pytest.fixture
def budget_client(make_client, write_champion, champion, tmp_path):
    """A client whose champion carries operating points chosen within a budget."""
    model = copy(champion)
    model.operating_points = dict(POINTS)
    model.version = "test-budget-1"
    path = tmp_path / "champion.pkl"
    write_champion(model, path)
    return make_client(model_path=path)


def test_model_shows_the_operating_points_and_the_budget(budget_client):
    info = budget_client.get("/model").json()
    assert info["operating_points"] == {**POINTS, "source": "training"}


def test_model_without_points_shows_the_threshold_it_decides_at(client, champion):
    points = client.get("/model").json()["operating_points"]
    assert points["source"] == "threshold"
    assert points["allow_below"] == points["block_above"] == champion.threshold
    assert points["expected_review_share"] is None


def test_predictions_follow_the_champion_points(budget_client, batch):
    records = batch.drop(columns="url").to_dict(orient="records")
    rows = budget_client.post("/predict", json={"records": records}).json()["predictions"]
    for row in rows:
        p = row["phishing_probability"]
        action = "allow" if p < 0.05 else "block" if p > 0.93 else "review"
        assert row["recommended_action"] == action
    assert {row["recommended_action"] for row in rows} >= {"allow", "block"}


def test_pages_show_the_budget_and_the_expected_review_share(budget_client, batch):
    page = budget_client.get("/predict").text
    assert 'id="budget"' in page
    assert "at most 1.0 % of phishing sites" in page
    assert "expected review share 12.8 %" in page
    upload = {"file": ("batch.csv", batch.to_csv(index=False).encode(), "text/csv")}
    scored = budget_client.post("/predict", files=upload, headers={"Accept": "text/html"}).text
    assert "expected review share 12.8 %" in scored
    assert scored.index('id="budget"') < scored.index('id="predictions"')
