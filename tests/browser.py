"""Headless Chromium under Selenium, as the browser tests and the benchmark start it."""

from __future__ import annotations

import os
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def installed() -> bool:
    return os.path.exists(CHROMIUM) and shutil.which(CHROMEDRIVER) is not None


def start_chromium() -> webdriver.Chrome:
    # Selenium Manager would go to the network to look for a browser: the paths are given.
    os.environ.update(SE_OFFLINE="true", SE_AVOID_STATS="true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: Chromium's own sandbox cannot start as root, which CI runs as.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=en-US"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
