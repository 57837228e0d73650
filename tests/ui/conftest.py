"""Browser tests of the web editor: Selenium driving Debian's headless Chromium against a
real `hookengine serve`.

Every test fails on any console error the page logged, a Content-Security-Policy violation
included. Without chromium and chromedriver the tests skip, except under CI (CI=true), where
.ci/run installs them and a missing browser is a failure.
"""

from __future__ import annotations

import os

import pytest
from browser import CHROMEDRIVER, CHROMIUM, installed, start_chromium
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from serverprocess import ServerProcess

WAIT_SECONDS = 15


@pytest.fixture(scope="session")
def driver():
    if not installed():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium "
                        "chromium-driver; .ci/run does it)")
        pytest.skip("Chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver)")
    browser = start_chromium()
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One engine per test module (a start costs a second), with its own data directory."""
    engine = ServerProcess(tmp_path_factory.mktemp("ui") / "data", INDEX_URL="none",
                           LOG_LEVEL="WARNING").start()
    yield engine
    engine.terminate()


@pytest.fixture
def page(driver, server, request):
    """The browser, signed out and with nothing stored for the engine's origin, failing the
    test on any console error (CSP violations are console errors)."""
    driver.get(f"{server.base}/ui/sign-in")
    driver.delete_all_cookies()
    driver.execute_script("window.localStorage.clear()")
    driver.get_log("browser")  # drop what earlier tests left
    yield Page(driver, server)
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"the page logged errors: {errors}"


@pytest.fixture
def signed_in(page):
    page.sign_in(page.server.token)
    return page


class Page:
    """The browser on one engine, with the lookups the tests share: by accessible name
    (aria-label or label text, as a screen reader finds controls), waits, and console logs."""

    def __init__(self, driver, server):
        self.driver, self.server = driver, server

    def open(self, path: str) -> None:
        self.driver.get(self.server.base + path)

    def sign_in(self, token: str) -> None:
        self.open("/ui/sign-in")
        self.field("API token").send_keys(token)
        self.button("Sign in").click()
        self.wait(lambda d: "/ui/sign-in" not in d.current_url, "sign-in did not leave the page")

    def field(self, name: str):
        """The input, select or editor content labelled `name`."""
        return self.wait(lambda d: _labelled(d, name), f"no control labelled {name!r}")

    def button(self, name: str):
        return self.wait(lambda d: next((b for b in d.find_elements(By.TAG_NAME, "button")
                                         if b.is_displayed() and name in
                                         (b.text.strip(), b.get_attribute("aria-label"))),
                                        None), f"no button {name!r}")

    def find(self, css: str):
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css), f"no {css}")

    def wait(self, condition, message: str = "", timeout: float = WAIT_SECONDS):
        return WebDriverWait(self.driver, timeout, ignored_exceptions=(Exception,)).until(
            condition, message)

    def wait_text(self, css: str, text: str, timeout: float = WAIT_SECONDS):
        """The element at `css` once its text contains `text`."""
        return self.wait(lambda d: (e := d.find_element(By.CSS_SELECTOR, css)) and
                         text in e.text and e, f"{css} never showed {text!r}", timeout)

    def console(self) -> list[dict]:
        """What the page logged since the last call (and the test will not see again)."""
        return self.driver.get_log("browser")

    def script(self, source: str, *args):
        return self.driver.execute_script(source, *args)


def _labelled(driver, name: str):
    for element in driver.find_elements(By.CSS_SELECTOR, f'[aria-label="{name}"]'):
        if element.is_displayed():
            return element
    for label in driver.find_elements(By.TAG_NAME, "label"):
        if label.text.strip() == name and label.get_attribute("for"):
            element = driver.find_element(By.ID, label.get_attribute("for"))
            if element.is_displayed():
                return element
    return None
