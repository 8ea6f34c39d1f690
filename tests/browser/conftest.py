"""A real browser for the UI tests: the system's Chromium (Debian `chromium`) driven by Selenium
through the system's chromedriver (`chromium-driver`); nothing is downloaded. Screenshots of a
failing test are kept under test-artifacts/ (or $RAISING_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ARTIFACTS = Path(
    os.environ.get("RAISING_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)


def _system_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip(
            "the browser tests need Debian's chromium and chromium-driver "
            "(`make test` installs them: apt-get install -y chromium chromium-driver)"
        )
    return chromium, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A headless Chromium with a fresh profile, for the module's tests."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _system_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """On a failing browser test, keep a screenshot and the page's text, and say where."""
    report = yield
    driver = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and driver is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = ARTIFACTS / f"{item.name}-{int(time.time())}"
        try:
            driver.save_screenshot(str(stem.with_suffix(".png")))
            stem.with_suffix(".txt").write_text(
                f"{driver.current_url}\n\n{driver.find_element('tag name', 'body').text}"
            )
            report.sections.append(("browser artifacts", f"screenshot and text: {stem}.*"))
        except Exception as exc:  # the browser itself may be what failed
            report.sections.append(("browser artifacts", f"none kept: {exc}"))
    return report


def wait_until(check: Callable[[], object], timeout_s: float, what: str) -> object:
    """Poll `check` until it returns something truthy; fail saying what was awaited."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except Exception as exc:  # the page is still rendering
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} ({last})")
