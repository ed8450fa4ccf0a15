"""The course in a real browser: headless Chromium opens JupyterLab, runs Notebooks 1 and 3, and looks.

What runs: the released ``course/`` notebooks with every solution cell filled in from the solution notebook,
that is, exactly what a student who solved everything has in front of them (the Colab header and setup cell,
the checks without their hidden tests, nbgrader's metadata). They are copied into a temporary home directory,
so JupyterLab never writes outputs into the repository.

Setup: ``tests/browser/install_browser.sh`` installs Debian's chromium and chromium-driver when they are
missing; where it cannot, the test skips and says why (fixtures in ``conftest.py``). Screenshots go to
``artifacts/browser/``.
"""
from __future__ import annotations

import time

import nbformat
import pytest

from induction_course import jupyter_extension
from course_tools.notebooks import assignments
from browsing import ARTIFACTS, LAB_SETTINGS, wait as _wait
from labserver import LabServer, filled_course_notebook

# Notebook 1 (attention from scratch) and Notebook 3 (induction heads), whichever exist.
NOTEBOOKS = [name for name in assignments() if name[:2] in ("01", "03")]
RUN_TIMEOUT_S = 900  # running a whole notebook in the page, on a loaded 2-core machine


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
    if (data["image/png"] && !data["text/html"]) images++;  // a picture beside HTML is for saved copies
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
