"""The web page at ``/`` in headless Chromium (Debian's package, installed on first use like
redis-server): a member's row with titles and genres, the level and variant, and a play that
changes the row. Its screenshot is listed at the end of the test output."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from recsys.infra.apt import apt_install
from tests.conftest import ARTIFACTS
from tests.integration.serving.api_system import ApiSystem
from tests.integration.serving.conftest import Platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        apt_install("chromium", "chromium-driver")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium
    assert driver_path
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,700")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _row(browser: WebDriver) -> list[str]:
    """The title ids of the row, read in one script (the page re-renders it while polling)."""
    ids: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('.card')].map(c => c.dataset.titleId)"
    )
    return ids


def test_the_page_shows_a_members_row_and_a_play_changes_it(
    browser: WebDriver, api_platform: ApiSystem, platform: Platform, artifacts_dir: Path
) -> None:
    member = platform.members[5]
    browser.get(f"{api_platform.api_url}/?member={member}&country=US")
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    row = browser.find_element(By.ID, "row")
    wait.until(lambda b: row.get_attribute("data-user") == member and len(_row(b)) == 10)
    assert "level 0 full" in browser.find_element(By.ID, "level").text
    cards = browser.find_elements(By.CLASS_NAME, "card")
    names = [c.find_element(By.TAG_NAME, "h3").text for c in cards]
    genres = [c.find_element(By.CLASS_NAME, "genres").text for c in cards]
    assert all(names)
    assert all(genres)
    assert "variants:" in browser.find_element(By.ID, "status").text

    before = _row(browser)
    cards[0].find_element(By.CLASS_NAME, "play").click()
    wait.until(lambda b: (row := _row(b)) and before[0] not in row)
    assert _row(browser) != before
    shot = artifacts_dir / "api-page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    ARTIFACTS.append(f"web page screenshot: {shot}")
