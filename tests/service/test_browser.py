"""The upload page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium; nothing is downloaded at run time) opens GET /predict,
uploads a CSV, and sees the predictions table with one row per site and coloured risk badges;
unticking an action in the filter hides that action's rows.

Run it alone with ``pytest -m browser``; it is part of the default run too. It skips, saying
why, only where the browser is not installed (``.ci/run`` installs it when apt-get can).
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
RISK_LEVELS = {"low", "medium", "high", "critical"}


@pytest.fixture
def browser(tmp_path: Path):
    """A headless Chromium session (its profile in a temporary folder)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "no browser: Debian's chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver; .ci/run installs them when it can)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
        "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
    )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_uploading_a_csv_in_chromium_shows_the_predictions_table(
    browser, live_server, batch, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    sites = tmp_path / "sites.csv"
    batch.to_csv(sites, index=False)
    browser.get(f"{live_server.url}/predict")
    assert browser.title == "Score websites for phishing"
    browser.find_element(By.CSS_SELECTOR, "input[type=file][name=file]").send_keys(str(sites))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 60).until(
        expected_conditions.presence_of_element_located((By.ID, "predictions"))
    )

    rows = browser.find_elements(By.CSS_SELECTOR, "#predictions tbody tr")
    assert len(rows) == len(batch) == 25
    levels = [row.get_attribute("data-risk") for row in rows]
    assert set(levels) <= RISK_LEVELS
    cells = [row.find_elements(By.TAG_NAME, "td") for row in rows]
    urls = {int(row[0].text): row[1].text for row in cells}  # the place in the upload, the URL
    assert urls == {n + 1: url for n, url in enumerate(batch["url"])}

    badges = browser.find_elements(By.CSS_SELECTOR, "p.summary span")
    counted = {}
    for badge in badges:
        level, count = badge.text.split(": ")
        counted[level] = int(count)
        colour = badge.value_of_css_property("background-color")
        assert colour not in {"rgba(0, 0, 0, 0)", "transparent"}, (level, colour)
    assert counted == dict(Counter(levels))
    row_colour = rows[0].value_of_css_property("background-color")
    assert row_colour not in {"rgba(0, 0, 0, 0)", "transparent"}

    screenshot = tmp_path / "predictions.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000


def test_the_action_filter_hides_and_shows_rows_in_chromium(browser, live_server, batch, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    sites = tmp_path / "sites.csv"
    batch.to_csv(sites, index=False)
    browser.get(f"{live_server.url}/predict")
    browser.find_element(By.CSS_SELECTOR, "input[type=file][name=file]").send_keys(str(sites))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 60).until(
        expected_conditions.presence_of_element_located((By.ID, "predictions"))
    )
    assert browser.find_element(By.ID, "histogram").is_displayed()
    rows = browser.find_elements(By.CSS_SELECTOR, "#predictions tbody tr")
    actions = [row.get_attribute("data-action") for row in rows]
    assert {"allow", "block"} <= set(actions)  # the test champion allows some and blocks some

    def visible() -> list[str]:
        return [row.get_attribute("data-action") for row in rows if row.is_displayed()]

    assert sorted(visible()) == sorted(actions)
    allow = browser.find_element(By.CSS_SELECTOR, "#action-filter input[value=allow]")
    allow.click()  # the page's own script (allowed by its nonce) hides the allowed rows
    WebDriverWait(browser, 10).until(lambda _: "allow" not in visible())
    assert visible() == [action for action in actions if action != "allow"]
    shown = browser.find_element(By.ID, "shown-count").text
    assert shown == f"{len(actions) - actions.count('allow')} shown"
    allow.click()
    WebDriverWait(browser, 10).until(lambda _: len(visible()) == len(actions))
    assert browser.find_element(By.ID, "shown-count").text == f"{len(actions)} shown"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []  # no script or resource refused by the Content-Security-Policy
