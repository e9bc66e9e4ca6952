"""The service through its HTTP interface (in-process): every endpoint, limit and bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from pydantic import ValidationError

from network_security.service.rendering import wants_json
from network_security.service.settings import ServiceSettings

OUTPUT_COLUMNS = {
    "prediction",
    "label",
    "phishing_probability",
    "risk_level",
    "recommended_action",
    "model_version",
}
JSON = {"Accept": "application/json"}


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def upload(client, data: bytes, name: str = "batch.csv", headers: dict | None = None):
    return client.post("/predict", files={"file": (name, data, "text/csv")}, headers=headers)


def records_of(batch: pd.DataFrame) -> list[dict]:
    return json.loads(batch.to_json(orient="records"))


# ---------------------------------------------------------------- docs, health, model


def test_root_redirects_to_the_openapi_docs(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code in {302, 307}
    assert response.headers["location"] == "/docs"
    docs = client.get("/")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_openapi_documents_both_request_bodies_of_predict(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert "post" in spec["paths"]["/train"]
    assert "get" not in spec["paths"]["/train"]


def test_health_reports_the_loaded_model(client, champion):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() | {"service_version": None} == {
        "status": "ok",
        "service_version": None,
        "model_loaded": True,
        "model_version": champion.version,
        "training_running": False,
    }


def test_model_gives_version_training_time_and_metrics(client, champion):
    response = client.get("/model")
    assert response.status_code == 200
    info = response.json()
    assert info["version"] == champion.version
    assert info["trained_at"] == champion.trained_at
    assert info["metrics"] == pytest.approx(champion.metrics)
    assert info["metrics"]["accuracy"] > 0.85
    assert info["feature_columns"] == champion.feature_columns


def test_without_a_champion_predict_and_model_answer_503_saying_how_to_train(
    make_client, tmp_path, batch
):
    client = make_client(model_path=tmp_path / "missing" / "champion.pkl")
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["model_loaded"] is False
    for response in (
        client.get("/model"),
        upload(client, csv_bytes(batch), headers=JSON),
        client.post("/predict", json={"records": records_of(batch)}),
    ):
        assert response.status_code == 503
        assert "kedro run --pipeline training" in response.json()["detail"]
        assert "POST /train" in response.json()["detail"]


def test_a_503_names_the_champion_file_but_not_its_path_nor_why_it_failed(
    make_client, tmp_path, batch
):
    """The path and the exception's text are for the log; an anonymous client gets neither."""
    missing = make_client(model_path=tmp_path / "missing" / "champion.pkl")
    corrupt_path = tmp_path / "corrupt" / "champion.pkl"
    corrupt_path.parent.mkdir()
    corrupt_path.write_bytes(b"this is not a pickle")
    corrupt = make_client(model_path=corrupt_path)
    for client in (missing, corrupt):
        for response in (
            client.get("/model"),
            client.post("/predict", json={"records": records_of(batch)}),
            upload(client, csv_bytes(batch), headers=JSON),
        ):
            assert response.status_code == 503
            detail = response.json()["detail"]
            assert "'champion.pkl'" in detail
            assert str(tmp_path) not in response.text
            assert "Unpickling" not in detail and "load key" not in detail
            assert "kedro run --pipeline training" in detail
    assert "could not be loaded" in corrupt.get("/model").json()["detail"]


def test_a_request_for_another_host_name_is_refused(make_client, make_settings):
    """Against DNS rebinding: a page of another site that resolves its name to the service's
    address sends that name as Host."""
    client = make_client()  # allows "testserver", TestClient's host name
    assert client.get("/health").status_code == 200
    refused = client.get("/health", headers={"Host": "rebound.example"})
    assert refused.status_code == 400
    assert "Invalid host header" in refused.text
    upload = client.post("/predict", json={"records": []}, headers={"Host": "rebound.example"})
    assert upload.status_code == 400
    defaults = make_settings(allowed_hosts=None, host="10.1.2.3")
    assert defaults.allowed_hosts == ["10.1.2.3", "localhost", "127.0.0.1"]
    local = make_client(allowed_hosts=None)  # the defaults: 127.0.0.1 and localhost
    assert local.get("/health").status_code == 400  # as "testserver"
    for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1"):
        assert local.get("/health", headers={"Host": host}).status_code == 200, host
    subdomains = make_client(allowed_hosts=["*.example.org"])
    assert subdomains.get("/health", headers={"Host": "soc.example.org"}).status_code == 200
    assert subdomains.get("/health", headers={"Host": "example.net"}).status_code == 400


def _eventually(probe, timeout: float = 30.0):
    """Poll ``probe()`` until it returns a truthy value (the champion refreshes in the
    background); the value."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, "not picked up in time"
        time.sleep(0.05)
    return value


def test_a_new_champion_is_picked_up_without_restart(
    make_client, tmp_path, champion, batch, make_champion, write_champion
):
    path = tmp_path / "champion.pkl"
    client = make_client(model_path=path, champion_refresh_seconds=0.05)
    assert client.post("/predict", json={"records": records_of(batch)}).status_code == 503
    write_champion(champion, path)
    first = _eventually(
        lambda: (
            (r := client.post("/predict", json={"records": records_of(batch)})).status_code == 200
            and r
        )
    )
    assert first.json()["model_version"] == champion.version
    write_champion(make_champion("test-champion-2", seed=1), path)
    _eventually(lambda: client.get("/model").json()["version"] == "test-champion-2")
    second = client.post("/predict", json={"records": records_of(batch)})
    assert {p["model_version"] for p in second.json()["predictions"]} == {"test-champion-2"}


def test_a_corrupt_champion_file_answers_503_naming_the_file(make_client, tmp_path, batch):
    path = tmp_path / "champion.pkl"
    path.write_bytes(b"this is not a pickle")
    client = make_client(model_path=path)
    response = client.post("/predict", json={"records": records_of(batch)})
    assert response.status_code == 503
    assert "champion.pkl" in response.json()["detail"]


# ---------------------------------------------------------------- predict: success


def test_csv_upload_with_accept_json_gives_one_prediction_per_row(client, batch, champion):
    response = upload(client, csv_bytes(batch), headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["model_version"] == champion.version
    assert body["rows"] == len(batch)
    predictions = body["predictions"]
    assert len(predictions) == len(batch)
    assert OUTPUT_COLUMNS | {"url"} | set(champion.feature_columns) <= set(predictions[0])
    assert [p["url"] for p in predictions] == batch["url"].tolist()
    probabilities = np.array([p["phishing_probability"] for p in predictions])
    expected = champion.phishing_probability(batch)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert {p["prediction"] for p in predictions} <= {-1, 1}
    np.testing.assert_array_equal([p["prediction"] for p in predictions], champion.predict(batch))


def test_csv_upload_without_accept_gives_an_html_table_marked_by_risk(client, batch):
    response = upload(client, csv_bytes(batch))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<table" in html
    assert html.count('<tr class="risk-') == len(batch)
    assert "phishing_probability" in html
    assert batch["url"].iloc[0] in html
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert "<table" in upload(client, csv_bytes(batch), headers={"Accept": browser}).text


def test_html_output_escapes_what_the_upload_contains(client, batch):
    hostile = batch.head(2).copy()
    hostile["url"] = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>']
    response = upload(client, csv_bytes(hostile), name="<b>evil</b>.csv")
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "<img src=x" not in response.text
    assert "<b>evil</b>" not in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_json_records_give_predictions_with_the_inference_columns(client, batch, champion):
    response = client.post("/predict", json={"records": records_of(batch)})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == champion.version
    assert len(body["predictions"]) == len(batch)
    first = body["predictions"][0]
    assert OUTPUT_COLUMNS | {"url"} | set(feature_columns_of(batch)) <= set(first)
    np.testing.assert_allclose(
        [p["phishing_probability"] for p in body["predictions"]],
        champion.phishing_probability(batch),
        rtol=1e-6,
    )


def feature_columns_of(batch: pd.DataFrame) -> list[str]:
    return [c for c in batch.columns if c != "url"]


def test_json_records_accept_whole_floats_and_refuse_numbers_as_text(client, batch, champion):
    records = records_of(batch.head(3))
    records[1] = {k: (float(v) if k != "url" else v) for k, v in records[1].items()}
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200
    np.testing.assert_allclose(
        [p["phishing_probability"] for p in response.json()["predictions"]],
        champion.phishing_probability(batch.head(3)),
        rtol=1e-6,
    )
    # the documented schema says integers: text is refused, as the schema says (fuzzing checks)
    records[2] = {k: (str(v) if k != "url" else v) for k, v in records[2].items()}
    refused = client.post("/predict", json={"records": records})
    assert refused.status_code == 422
    assert refused.json()["row"] == 3
    assert "not text" in refused.json()["detail"]


def test_upload_form_page(client):
    response = client.get("/predict")
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in response.text
    assert 'name="file"' in response.text


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", True),
        ("application/json, text/plain, */*", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("text/html;q=0.5, application/json", True),
        ("application/json;q=0", False),
        ("application/json;q=abc", False),
        ("text/*, application/json;q=0.9", False),
    ],
)
def test_accept_negotiation(accept, expected):
    assert wants_json(accept) is expected


# ---------------------------------------------------------------- predict: limits


def test_upload_over_the_byte_limit_is_413(make_client, batch):
    client = make_client(max_upload_bytes=1_000)
    data = csv_bytes(batch)  # ~ 2.5 KB
    response = upload(client, data, headers=JSON)
    assert response.status_code == 413
    assert "1000" in response.json()["detail"]
    big = {"records": records_of(pd.concat([batch] * 2))}
    assert client.post("/predict", json=big).status_code == 413


def test_declared_content_length_over_the_limit_is_refused_before_reading(make_client):
    client = make_client(max_upload_bytes=1_000)
    response = client.post(
        "/predict",
        content=b"x" * 200_000,
        headers={"Content-Type": "application/json", "Content-Length": "200000"},
    )
    assert response.status_code == 413


def test_chunked_body_over_the_limit_is_413(make_client):
    client = make_client(max_upload_bytes=1_000)

    def chunks():
        for _ in range(50):
            yield b"{" * 10_000

    response = client.post(
        "/predict", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_too_many_rows_is_413(make_client, batch):
    client = make_client(max_rows=10)
    response = upload(client, csv_bytes(batch), headers=JSON)
    assert response.status_code == 413
    assert "10 data rows" in response.json()["detail"]
    response = client.post("/predict", json={"records": records_of(batch)})
    assert response.status_code == 413
    assert "at most 10" in response.json()["detail"]


def test_too_many_columns_is_413(make_client, batch):
    client = make_client(max_columns=31)
    wide = batch.assign(extra_1=1, extra_2=2)
    assert upload(client, csv_bytes(wide), headers=JSON).status_code == 413
    assert client.post("/predict", json={"records": records_of(wide)}).status_code == 413


def test_exactly_at_the_row_limit_is_accepted(make_client, batch):
    client = make_client(max_rows=len(batch))
    assert upload(client, csv_bytes(batch), headers=JSON).status_code == 200


# ---------------------------------------------------------------- predict: schema errors


def test_csv_missing_a_feature_column_is_422_naming_it(client, batch):
    response = upload(client, csv_bytes(batch.drop(columns=["SSLfinal_State"])), headers=JSON)
    assert response.status_code == 422
    body = response.json()
    assert "SSLfinal_State" in body["detail"]
    assert body["column"] == "SSLfinal_State"


def test_csv_missing_a_column_as_html_is_422_page_naming_it(client, batch):
    response = upload(client, csv_bytes(batch.drop(columns=["SSLfinal_State"])))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "SSLfinal_State" in response.text


@pytest.mark.parametrize(("value", "row"), [("abc", 3), ("7", 5), ("", 1), ("1.5", 2)])
def test_csv_bad_cell_is_422_naming_column_and_row(client, batch, value, row):
    bad = batch.astype(str)
    bad.loc[row - 1, "Favicon"] = value
    response = upload(client, csv_bytes(bad), headers=JSON)
    assert response.status_code == 422
    body = response.json()
    assert body["column"] == "Favicon"
    assert body["row"] == row
    assert "Favicon" in body["detail"]
    assert str(row) in body["detail"]


@pytest.mark.parametrize(
    ("value", "expected_status"),
    [("phishing", 422), ("7", 422), (True, 422), (None, 422), (0.5, 422), ([1], 422), ({}, 422)],
)
def test_json_record_with_a_bad_value_is_422_naming_field_and_record(
    client, batch, value, expected_status
):
    records = records_of(batch.head(4))
    records[2]["web_traffic"] = value
    response = client.post("/predict", json={"records": records})
    assert response.status_code == expected_status
    body = response.json()
    assert body["column"] == "web_traffic"
    assert body["row"] == 3
    assert "web_traffic" in body["detail"]


def test_json_record_missing_a_field_is_422_naming_it(client, batch):
    records = records_of(batch.head(4))
    del records[1]["SSLfinal_State"]
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 422
    assert response.json()["column"] == "SSLfinal_State"
    assert response.json()["row"] == 2


# ---------------------------------------------------------------- predict: nasty input

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
NASTY_UPLOADS = {
    "png": PNG_HEADER,
    "random_bytes": np.random.default_rng(0).bytes(5_000),
    "nul_bytes": b"having_IP_Address\x00,URL_Length\n1,1\n",
    "latin1": "URL_Length,caf\xe9\n1,1\n".encode("latin-1"),
    "utf16": "having_IP_Address,URL_Length\n1,1\n".encode("utf-16"),
    "empty": b"",
    "whitespace": b"  \n\n \r\n",
    "prose": b"hello, this is not the file you are looking for",
    "ragged": b"a,b,c\n1,2,3\n1,2\n",
    "ragged_first_row": b"a,b\n1,2,3\n",
    "unterminated_quote": b'a,b\n"1,2\n',
    "stray_quote": b'a,b\n1"x,2\n',
    "duplicate_columns": b"a,a\n1,2\n",
    "nameless_column": b"a,,b\n1,2,3\n",
    "huge_field": b"a\n" + b"x" * 300_000 + b"\n",
    "only_header_features": None,  # filled in below
    "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x00" * 40,
    "html": b"<html><body><script>alert(1)</script></body></html>",
    "json_as_csv": b'{"records": [{"a": 1}]}',
    "semicolon_csv": None,  # filled in below
}


@pytest.mark.parametrize("name", sorted(NASTY_UPLOADS))
def test_nasty_uploads_get_a_4xx_with_a_message(client, batch, name):
    data = NASTY_UPLOADS[name]
    if name == "only_header_features":
        data = csv_bytes(batch.head(0))
    if name == "semicolon_csv":
        data = csv_bytes(batch).replace(b",", b";")
    for headers in (JSON, None):
        response = upload(client, data, headers=headers)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        if headers:
            assert response.json()["detail"]


NASTY_BODIES = [
    ("application/json", b"{not json"),
    ("application/json", b""),
    ("application/json", b"null"),
    ("application/json", b"[]"),
    ("application/json", b'"records"'),
    ("application/json", b'{"records": {}}'),
    ("application/json", b'{"records": []}'),
    ("application/json", b'{"records": [1, 2]}'),
    ("application/json", b'{"records": [[1, 2]]}'),
    ("application/json", b'{"records": [{}]}'),
    ("application/json", b'{"records": [{"having_IP_Address": NaN}]}'),
    ("application/json", b'{"rows": []}'),
    ("application/json", b'{"records": [], "extra": 1}'),
    ("application/json", b"[" * 100_000 + b"]" * 100_000),
    ("application/json", b'{"records": [{"a": ' + b"[" * 5_000 + b"]" * 5_000 + b"}]}"),
    ("application/json", b'{"records": [{"having_IP_Address": 1e999}]}'),
    ("application/json", b'{"records": [{"having_IP_Address": 123456789012345678901234567890}]}'),
    ("application/json", '{"records": [{"\u00e9": "\ud800"}]}'.encode("utf-8", "surrogatepass")),
    ("application/json", b"\xff\xfe\x00\x00"),
    ("text/plain", b"having_IP_Address\n1\n"),
    ("text/csv", b"having_IP_Address\n1\n"),
    ("application/x-www-form-urlencoded", b"file=abc"),
    ("multipart/form-data", b"no boundary here"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nbroken"),
    ("multipart/form-data; boundary=xyz", b"--xyz--\r\n"),
    ("", b"something"),
]


@pytest.mark.parametrize(("content_type", "body"), NASTY_BODIES)
def test_nasty_bodies_get_a_4xx(client, content_type, body):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/predict", content=body, headers=headers | JSON)
    assert 400 <= response.status_code < 500, (content_type, body[:60], response.text[:300])


def test_upload_in_the_wrong_field_or_with_two_files_is_4xx(client, batch):
    data = csv_bytes(batch)
    wrong_field = client.post("/predict", files={"csv": ("b.csv", data)}, headers=JSON)
    assert wrong_field.status_code == 422
    assert "'file'" in wrong_field.json()["detail"]
    text_field = client.post("/predict", data={"file": "1,2,3"}, files={"x": ("x", b"")})
    assert text_field.status_code in {400, 422}
    two_files = client.post(
        "/predict", files=[("file", ("a.csv", data)), ("file", ("b.csv", data))], headers=JSON
    )
    assert 400 <= two_files.status_code < 500


def test_predict_rejects_other_methods(client):
    assert client.put("/predict").status_code == 405
    assert client.delete("/predict").status_code == 405


# ---------------------------------------------------------------- train: auth and jobs


def test_train_is_disabled_when_no_token_is_configured(client, api_token):
    response = client.post("/train", headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 403
    assert "NETWORK_SECURITY_API_TOKEN" in response.json()["detail"]
    assert client.post("/train").status_code == 403


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic {token}", "Bearer wrong-token", "Bearer {token}x",
     "Bearer {token_but_last}", "Bearer sécret", "bearer{token}"],
)  # fmt: skip
def test_train_without_the_right_token_is_401(make_client, api_token, authorization):
    client = make_client(api_token=api_token)
    if authorization is not None:
        authorization = authorization.format(token=api_token, token_but_last=api_token[:-1])
    headers = {} if authorization is None else {"Authorization": authorization.encode()}
    response = client.post("/train", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert api_token not in response.text
    assert client.get("/train/0123", headers=headers).status_code == 401


def test_get_train_is_405(make_client, api_token):
    client = make_client(api_token=api_token)
    response = client.get("/train", headers={"Authorization": f"Bearer {api_token}"})
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


def test_train_with_the_right_token_runs_one_job_at_a_time(
    make_client, api_token, monkeypatch, service_project
):
    """A real ``kedro run`` of a pipeline that does not exist: started, reported, failed."""
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:9/")  # no embedded server for this run
    client = make_client(api_token=api_token, training_pipeline="no_such_pipeline")
    auth = {"Authorization": f"Bearer {api_token}"}
    started = client.post("/train", headers=auth)
    assert started.status_code == 202
    job_id = started.json()["job_id"]
    assert started.headers["location"] == f"/train/{job_id}"
    busy = client.post("/train", headers=auth)
    assert busy.status_code == 409
    assert busy.json()["job_id"] == job_id
    assert client.get("/health").json()["training_running"] is True
    status = wait_for_job(client, job_id, auth, timeout=120)
    assert status["status"] == "failed"
    assert status["exit_code"] != 0
    assert "kedro run --pipeline no_such_pipeline exited with code" in status["error"]
    assert status["promoted"] is None
    assert status["log_tail"]
    assert status["finished_at"] >= status["created_at"]
    # the job is its MLflow run, tagged with the job id, in the project's store
    run = MlflowClient(f"sqlite:///{service_project / 'mlflow.db'}").get_run(status["run_id"])
    assert run.data.tags["network_security.job_id"] == job_id
    assert run.info.status == "FAILED"
    assert client.get("/health").json()["training_running"] is False
    assert client.get("/train/ffffffffffffffffffffffffffffffff", headers=auth).status_code == 404


def wait_for_job(client, job_id: str, headers: dict, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/train/{job_id}", headers=headers)
        assert response.status_code == 200
        if response.json()["status"] in {"succeeded", "failed"}:
            return response.json()
        time.sleep(0.5)
    raise AssertionError(f"training job {job_id} did not finish within {timeout} s")


# ---------------------------------------------------------------- CORS and settings


def test_cors_allows_only_the_listed_origins(make_client):
    client = make_client(cors_origins=["https://soc.example"])
    allowed = client.options(
        "/predict",
        headers={"Origin": "https://soc.example", "Access-Control-Request-Method": "POST"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://soc.example"
    refused = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


def test_wildcard_origin_with_credentials_is_refused():
    with pytest.raises(ValidationError, match="explicitly"):
        ServiceSettings(cors_origins=["*"], cors_allow_credentials=True)


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NETWORK_SECURITY_MAX_ROWS", "123")
    monkeypatch.setenv("NETWORK_SECURITY_CORS_ORIGINS", '["https://a.example"]')
    monkeypatch.setenv("NETWORK_SECURITY_API_TOKEN", "  ")
    monkeypatch.setenv("NETWORK_SECURITY_PROJECT_PATH", str(tmp_path))
    settings = ServiceSettings()
    assert settings.max_rows == 123
    assert settings.cors_origins == ["https://a.example"]
    assert settings.api_token is None
    assert settings.project_path == tmp_path
    assert settings.model_path is None  # the catalog's champion_model decides


def test_the_champion_cache_is_the_catalog_entry_by_default(make_client, champion):
    client = make_client(model_path=None)  # conf/base/catalog.yml: data/06_models/champion.pkl
    assert client.get("/model").json()["version"] == champion.version


def test_no_request_writes_into_the_project(make_client, service_project, batch):
    def snapshot(root: Path) -> dict[str, int]:
        return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}

    client = make_client()  # starting may create conf/local/credentials.yml and mlflow.db
    before = snapshot(service_project)
    upload(client, csv_bytes(batch), headers=JSON)
    upload(client, csv_bytes(batch))
    big = make_client(max_upload_bytes=3_000_000, max_rows=20_000)
    large = csv_bytes(pd.concat([batch] * 500))
    assert len(large) > 1024 * 1024  # multipart parts over 1 MB spool to the system temp dir
    assert upload(big, large, headers=JSON).status_code == 200
    client.post("/predict", json={"records": records_of(batch)})
    upload(client, b"\x00garbage")
    client.get("/model")
    assert snapshot(service_project) == before


def test_an_upload_that_already_has_verdict_columns_is_422(client, batch):
    response = upload(client, csv_bytes(batch.assign(risk_level="low")), headers=JSON)
    assert response.status_code == 422
    assert response.json()["column"] == "risk_level"


def test_a_labelled_file_is_scored_with_its_result_column_kept(client, batch):
    labelled = batch.assign(Result=-1)
    response = upload(client, csv_bytes(labelled), headers=JSON)
    assert response.status_code == 200
    assert {p["Result"] for p in response.json()["predictions"]} == {"-1"}  # kept as sent
