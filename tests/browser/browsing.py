"""What the browser tests share: Chromium's flags, JupyterLab settings for tests, waiting on the page."""
from __future__ import annotations

import time

from course_tools.notebooks import ROOT

ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--window-size=1400,1000",
]
LAB_SETTINGS = {
    # Every cell in the DOM, so every output can be checked (JupyterLab 4 otherwise skips off-screen cells).
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}
PAGE_LOAD_S = 180  # a page and its scripts, JupyterLab's included
SCRIPT_S = 60  # one script run in the page by the test


def wait(driver, script: str, *args, timeout: float, what: str, poll: float = 0.5):
    """Run ``script`` in the page until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
