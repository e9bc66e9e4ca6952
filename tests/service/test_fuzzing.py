"""Schemathesis against the running service: every operation, every phase (examples, coverage,
fuzzing, stateful), all default checks (no server error; status codes, content types, headers
and bodies as documented; schema-valid requests accepted and schema-violating ones refused;
authentication enforced; ``Allow`` on 405). A fast profile runs by default, a deeper one is
marked slow. Reproduce a run by hand with the command this test prints on failure."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from network_security.service.records import records_model


def schemathesis(server, token: str, *, max_examples: int, seed: int, cwd: Path) -> str:
    """Run ``schemathesis run`` on the server's OpenAPI document; its output."""
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
        "--max-examples", str(max_examples),
        "--seed", str(seed),
        "--header", f"Authorization: Bearer {token}",
        "--generation-database", "none",
        "--no-color",
    ]  # fmt: skip
    result = subprocess.run(  # noqa: S603 - fixed command
        command, cwd=cwd, capture_output=True, text=True, timeout=1500
    )
    output = result.stdout + result.stderr
    shown = " ".join(command).replace(token, "$NETWORK_SECURITY_API_TOKEN")
    failures = output[output.find(" FAILURES ") :]  # the failures, then the summary
    assert result.returncode == 0, f"{shown}\n{failures[:20000]}"
    return output


def assert_every_operation_tested_without_issues(output: str) -> None:
    assert "No issues found" in output
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    assert selected and selected.group(1) == selected.group(2) == "6", output[-2000:]
    assert re.search(r"Tested: 6\b", output)
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in output, phase


def test_schemathesis_finds_nothing_fast_profile(live_server, api_token, tmp_path):
    output = schemathesis(live_server, api_token, max_examples=25, seed=20261122, cwd=tmp_path)
    assert_every_operation_tested_without_issues(output)


@pytest.mark.slow
def test_schemathesis_finds_nothing_deep_profile(live_server, api_token, tmp_path):
    output = schemathesis(live_server, api_token, max_examples=300, seed=11, cwd=tmp_path)
    assert_every_operation_tested_without_issues(output)


# what the fuzzing found, pinned as plain tests


def test_the_documented_examples_are_accepted(client):
    operation = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    content = operation["requestBody"]["content"]
    as_json = client.post("/predict", json=content["application/json"]["example"])
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["rows"] == 1
    csv_text = content["multipart/form-data"]["example"]["file"]
    assert re.fullmatch(content["multipart/form-data"]["schema"]["properties"]["file"]["pattern"],
                        csv_text.rstrip("\n"))  # fmt: skip
    as_text_field = client.post(
        "/predict", files={"file": (None, csv_text)}, headers={"Accept": "application/json"}
    )
    assert as_text_field.status_code == 200, as_text_field.text
    assert as_text_field.json()["source"] == "the CSV in the field 'file'"


def test_the_record_schema_comes_from_the_project_schema(client, schema):
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    record = body["content"]["application/json"]["schema"]["properties"]["records"]["items"]
    assert record["required"] == list(schema["features"])
    for feature, allowed in schema["features"].items():  # each feature's allowed values
        assert record["properties"][feature]["enum"] == allowed, feature
        assert record["properties"][feature]["type"] == "integer", feature
    assert record["additionalProperties"] == {"type": ["string", "number", "boolean", "null"]}
    assert "prediction" in record["propertyNames"]["not"]["enum"]


def test_train_documents_its_token_answers(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in (("/train", "post"), ("/train/{job_id}", "get")):
        operation = paths[path][method]
        assert {"401", "403"} <= set(operation["responses"]), path
        assert operation["security"] == [{"HTTPBearer": []}]
    assert "409" in paths["/train"]["post"]["responses"]
    assert "404" in paths["/train/{job_id}"]["get"]["responses"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("OPTIONS", "/predict", "GET, POST"), ("GET", "/train", "POST"), ("PUT", "/health", "GET"),
     ("DELETE", "/train/abc", "GET")],
)  # fmt: skip
def test_a_405_lists_every_method_of_the_path(client, method, path, allowed):
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed


def test_an_upload_with_an_unknown_field_is_refused(client, batch):
    data = batch.to_csv(index=False).encode()
    response = client.post(
        "/predict",
        files={"file": ("b.csv", data)},
        data={"extra": "1"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 422
    assert "'extra'" in response.json()["detail"]


def test_the_generated_request_model_and_the_service_agree(client, schema, batch):
    """The pydantic model behind the documented JSON body (generated from the schema) accepts
    what the service scores and refuses what it refuses."""
    model = records_model(schema, max_rows=10, max_columns=60)
    body = {"records": json.loads(batch.head(3).to_json(orient="records"))}
    model.model_validate(body)
    assert client.post("/predict", json=body).status_code == 200
    for field, value in (("SSLfinal_State", 2), ("Favicon", 0), ("prediction", 1)):
        bad = {"records": [{**body["records"][0], field: value}]}
        with pytest.raises(ValidationError):
            model.model_validate_json(json.dumps(bad))
        assert client.post("/predict", json=bad).status_code == 422, field
