"""Fixtures of the browser tests: Debian's Chromium (installed if missing, else the tests skip) and a driver."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from browsing import CHROMIUM_FLAGS, PAGE_LOAD_S, SCRIPT_S

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    proc = subprocess.run(["bash", str(HERE / "install_browser.sh")], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.skip(f"no Chromium for the browser test: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def driver(chromium, tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (it is in requirements.lock)")
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromedriver, log_output=str(tmp_path_factory.mktemp("chromedriver") / "log"))
    drv = webdriver.Chrome(options=options, service=service)
    drv.set_page_load_timeout(PAGE_LOAD_S)
    drv.set_script_timeout(SCRIPT_S)
    yield drv
    drv.quit()
