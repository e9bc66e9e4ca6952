"""No silent wrong answer on huge integers or values of another type.

Any feature value outside the schema's allowed values, whatever its size or type, is a 422
naming the column, the record (or data row) and the value, for JSON records and CSV uploads
alike. ``18446744073709551615`` used to be read as uint64, wrap around to -1 (an allowed value
of ``Favicon``) and be scored.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

JSON = {"Accept": "application/json"}

HUGE = [
    18446744073709551615,  # 2**64 - 1: wraps to -1 as int64
    18446744073709551614,  # wraps to -2
    2**63,
    -(2**63) - 1,
    2**64,
    2**64 + 1,  # wraps to 1
    10**30,
]
OTHER = [2, -2, 7, 2.0, 1e300, 0.5, -1.5, True, False, "abc", "2", "1e3", "", "0x1", None]


def records_of(batch: pd.DataFrame) -> list[dict]:
    return json.loads(batch.to_json(orient="records"))


def assert_refused(response, column: str, row: int) -> dict:
    assert response.status_code == 422, response.text[:500]
    body = response.json()
    assert body["column"] == column
    assert body["row"] == row
    assert column in body["detail"]
    return body


@pytest.mark.parametrize("value", HUGE + OTHER, ids=repr)
@pytest.mark.parametrize("column", ["Favicon", "URL_Length"])
def test_json_value_outside_the_domain_is_422_naming_column_and_record(
    client, batch, column, value
):
    records = records_of(batch.head(4))
    records[2][column] = value
    body = json.dumps({"records": records})  # Python's json writes big integers exactly
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    refused = assert_refused(response, column, 3)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        assert str(value) in refused["detail"]


def test_json_huge_integer_among_text_cells_is_refused(client, batch):
    records = records_of(batch.head(3))
    records[0]["Favicon"] = "1"  # text: JSON features are numbers (the OpenAPI enum)
    records[1]["Favicon"] = 18446744073709551615
    response = client.post("/predict", json={"records": records})
    assert_refused(response, "Favicon", 1)
    records[0]["Favicon"] = 1
    response = client.post("/predict", json={"records": records})
    assert_refused(response, "Favicon", 2)


@pytest.mark.parametrize(
    "cell",
    [str(v) for v in HUGE] + ["2", "2.0", "1e300", "0.5", "True", "abc", "-0x1", "1_1"],
)
def test_csv_value_outside_the_domain_is_422_naming_column_and_row(client, batch, cell):
    bad = batch.astype(str)
    bad.loc[4, "Favicon"] = cell
    data = bad.to_csv(index=False).encode()
    response = client.post(
        "/predict", files={"file": ("sites.csv", data, "text/csv")}, headers=JSON
    )
    body = assert_refused(response, "Favicon", 5)
    assert body["value"] == cell


def test_json_numbers_inside_the_domain_are_scored_and_text_is_refused(client, batch, champion):
    records = records_of(batch.head(3))
    records[0]["Favicon"] = -1
    records[1]["Favicon"] = -1.0  # a JSON number with an integral value
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200
    assert [p["Favicon"] for p in response.json()["predictions"]][:2] == [-1, -1]
    records[0]["Favicon"] = "-1"  # JSON features are numbers, as the OpenAPI enum says
    assert_refused(client.post("/predict", json={"records": records}), "Favicon", 1)
