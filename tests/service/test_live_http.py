"""The issue's "done when" through real HTTP: ``network-security serve`` on a loopback port."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest

JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def upload_bytes(batch: pd.DataFrame) -> bytes:
    return batch.to_csv(index=False).encode("utf-8")


def test_health_is_200(http, champion):
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json()["model_version"] == champion.version


def test_root_serves_the_openapi_docs(http):
    response = http.get("/", follow_redirects=True)
    assert response.status_code == 200
    assert str(response.url).endswith("/docs")
    assert http.get("/openapi.json").json()["info"]["title"] == "network_security"


def test_model_info(http, champion):
    info = http.get("/model").json()
    assert info["version"] == champion.version
    assert set(info["metrics"]) >= {"accuracy", "roc_auc"}


def test_csv_upload_with_accept_json_gives_one_prediction_per_row(http, batch, upload_bytes):
    response = http.post(
        "/predict", files={"file": ("batch.csv", upload_bytes, "text/csv")}, headers=JSON
    )
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == len(batch)
    assert all(0.0 <= p["phishing_probability"] <= 1.0 for p in predictions)
    assert [p["url"] for p in predictions] == batch["url"].tolist()


def test_csv_upload_without_accept_gives_html_with_a_table(http, batch, upload_bytes):
    response = http.post("/predict", files={"file": ("batch.csv", upload_bytes, "text/csv")})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<table" in response.text
    assert response.text.count('<tr class="risk-') == len(batch)


def test_json_records_return_predictions(http, batch, champion):
    records = json.loads(batch.to_json(orient="records"))
    response = http.post("/predict", json={"records": records})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == champion.version
    assert len(body["predictions"]) == len(batch)
    assert {p["prediction"] for p in body["predictions"]} <= {-1, 1}


def test_csv_missing_ssl_final_state_is_422_naming_it(http, batch):
    data = batch.drop(columns=["SSLfinal_State"]).to_csv(index=False).encode()
    response = http.post("/predict", files={"file": ("no_ssl.csv", data)}, headers=JSON)
    assert response.status_code == 422
    assert "SSLfinal_State" in response.json()["detail"]


def test_garbage_upload_is_4xx(http):
    garbage = bytes(range(256)) * 16
    response = http.post("/predict", files={"file": ("garbage.bin", garbage)}, headers=JSON)
    assert 400 <= response.status_code < 500
    assert response.json()["detail"]


def test_json_record_with_a_text_value_is_4xx(http, batch):
    records = json.loads(batch.head(3).to_json(orient="records"))
    records[1]["SSLfinal_State"] = "secure"
    response = http.post("/predict", json={"records": records})
    assert 400 <= response.status_code < 500
    assert "SSLfinal_State" in response.json()["detail"]


def test_upload_over_the_limit_is_413(http, batch):
    data = pd.concat([batch] * 200).to_csv(index=False).encode()  # > 400 kB limit
    assert len(data) > 400_000
    response = http.post("/predict", files={"file": ("big.csv", data)}, headers=JSON)
    assert response.status_code == 413


def test_too_many_rows_is_413(http, batch):
    data = pd.concat([batch] * 81).to_csv(index=False).encode()  # 2,025 rows > 2,000
    response = http.post("/predict", files={"file": ("rows.csv", data)}, headers=JSON)
    assert response.status_code == 413


def test_train_without_a_token_or_with_a_wrong_one_is_refused(http):
    assert http.post("/train").status_code in {401, 403}
    wrong = http.post("/train", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code in {401, 403}


def test_get_train_is_405(http):
    assert http.get("/train").status_code == 405


def test_train_with_the_token_starts_a_job_that_reports_its_status(http, api_token):
    """The live server's training pipeline does not exist: a real run that fails, reported."""
    auth = {"Authorization": f"Bearer {api_token}"}
    started = http.post("/train", headers=auth)
    assert started.status_code == 202
    job_id = started.json()["job_id"]
    status = http.get(f"/train/{job_id}", headers=auth)
    assert status.status_code == 200
    assert status.json()["job_id"] == job_id
    assert status.json()["status"] in {"queued", "running", "failed"}
