"""The upload page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium; nothing is downloaded at run time) opens GET /predict,
uploads a CSV, and sees the predictions table with one row per site and coloured risk badges.

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
    urls = [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows]
    assert urls == batch["url"].tolist()  # the rows in upload order, the URL first

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
