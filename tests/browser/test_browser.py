"""The course in a real browser: headless Chromium opens JupyterLab, runs Notebooks 1 and 3, and looks.

What runs: the released ``course/`` notebooks with every solution cell filled in from the solution notebook,
that is, exactly what a student who solved everything has in front of them (the Colab header and setup cell,
the checks without their hidden tests, nbgrader's metadata). They are copied into a temporary home directory,
so JupyterLab never writes outputs into the repository.

Setup: ``tests/browser/install_browser.sh`` installs Debian's chromium and chromium-driver when they are
missing; where it cannot, the test skips and says why. Screenshots go to ``artifacts/browser/``.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from induction_course import jupyter_extension
from induction_course.notebooks import ROOT, assignments
from labserver import LabServer, filled_course_notebook

HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts" / "browser"
# Notebook 1 (attention from scratch) and Notebook 3 (induction heads), whichever exist.
NOTEBOOKS = [name for name in assignments() if name[:2] in ("01", "03")]
RUN_TIMEOUT_S = 300
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


@pytest.fixture(scope="module")
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
    drv.set_script_timeout(30)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-lab")
    home = tmp / "home"
    for name in NOTEBOOKS:
        (home / name).mkdir(parents=True)
        nbformat.write(filled_course_notebook(name), home / name / f"{name}.ipynb")
    with LabServer(home, tmp, settings=LAB_SETTINGS) as server:
        yield server
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "jupyterlab.log").write_text(server.log())


def _wait(driver, script: str, *args, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


KERNEL_IDLE = """
const app = window.jupyterapp, path = arguments[0];
const panel = app && app.shell.currentWidget;
if (!panel || !panel.context || panel.context.path !== path || !panel.content.model) return null;
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
return kernel && kernel.status === "idle" && panel.sessionContext.isReady ? "idle" : null;
"""

PROGRESS = """
const panel = window.jupyterapp.shell.currentWidget, cells = panel.content.model.cells;
let pending = 0, errors = [], views = 0, images = 0;
for (let i = 0; i < cells.length; i++) {
  const cell = cells.get(i);
  if (cell.type !== "code") continue;
  if (cell.executionCount === null) pending++;
  for (let j = 0; j < cell.outputs.length; j++) {
    const out = cell.outputs.get(j).toJSON();
    if (out.output_type === "error") errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
    const data = out.data || {};
    if (String(data["text/html"] || "").includes("induction-course-attention-view")) views++;
    if (data["image/png"]) images++;
  }
}
const kernel = panel.sessionContext.session.kernel;
return {pending, errors, views, images, busy: kernel.status !== "idle"};
"""

VIEWS_RENDERED = """
const nodes = [...document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .induction-course-attention-view")];
return nodes.map(n => ({
  children: n.querySelectorAll("*").length,
  drawn: n.querySelectorAll("canvas, svg").length,
  text: n.innerText.slice(0, 200),
}));
"""

IMAGES = """
const imgs = [...document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img")];
return imgs.filter(i => i.src.startsWith("data:image/png")).map(i => [i.naturalWidth, i.naturalHeight]);
"""


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_renders_in_jupyterlab(name, driver, lab):
    started = time.monotonic()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = f"{name}/{name}.ipynb"
    driver.get(lab.url(f"lab/tree/{path}", reset=""))
    try:
        _wait(driver, KERNEL_IDLE, path, timeout=120, what=f"JupyterLab to open {path} with an idle kernel")
        # nbgrader's JupyterLab extension is live: its commands exist and the notebook has a Validate button.
        assert driver.execute_script("return window.jupyterapp.commands.hasCommand('nbgrader:open-assignment-list')")
        _wait(driver, "return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Toolbar *')]"
                      ".some(e => e.textContent.trim() === 'Validate')", timeout=30, what="the Validate button")

        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            progress = driver.execute_script(PROGRESS)
            assert not progress["errors"], f"{name} raised: {progress['errors']}"
            if progress["pending"] == 0 and not progress["busy"]:
                break
            assert time.monotonic() < deadline, f"{name} did not finish in {RUN_TIMEOUT_S} s: {progress}"
            time.sleep(1)
        run_s = time.monotonic() - started

        # The circuitsvis views: one DOM element per view output, each drawn by circuitsvis's React code.
        assert progress["views"] >= 1, f"{name} shows no circuitsvis attention view"
        all_drawn = f"const v = (() => {{{VIEWS_RENDERED}}})(); return v.length && v.every(x => x.drawn > 0) ? v : null;"
        views = _wait(driver, all_drawn, timeout=60, what="every circuitsvis view to draw")
        assert len(views) == progress["views"], views
        assert not any("could not be shown" in v["text"] for v in views), views
        # ...from the bundle our Jupyter server extension serves, not from the network.
        loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert any(jupyter_extension.bundle_route() in url for url in loaded), loaded
        assert not any("unpkg.com" in url for url in loaded), loaded

        # The matplotlib figures: every image/png output is in the page and has loaded.
        assert progress["images"] >= 1, f"{name} shows no matplotlib figure"
        images = driver.execute_script(IMAGES)
        assert len(images) == progress["images"] and all(w > 0 and h > 0 for w, h in images), images
    finally:
        _screenshots(driver, name)
    print(f"{name}: opened, ran and rendered in {run_s:.1f} s "
          f"({progress['views']} circuitsvis view(s), {progress['images']} figure(s))")


def _screenshots(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.save_screenshot(str(ARTIFACTS / f"{name}-window.png"))
    for css, label in [(".induction-course-attention-view", "attention-view"),
                       (".jp-OutputArea-output img", "figure")]:
        found = driver.find_elements(By.CSS_SELECTOR, f".jp-NotebookPanel:not(.lm-mod-hidden) {css}")
        if found:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", found[0])
            time.sleep(0.5)
            found[0].screenshot(str(ARTIFACTS / f"{name}-{label}.png"))
            driver.save_screenshot(str(ARTIFACTS / f"{name}-{label}-in-context.png"))
    logs = driver.get_log("browser")
    (ARTIFACTS / f"{name}-console.log").write_text("\n".join(f"{e['level']} {e['message']}" for e in logs))
