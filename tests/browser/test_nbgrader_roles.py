"""nbgrader in a real browser, as `./run.sh lab` and `./run.sh instructor` configure JupyterLab.

A copy of the repository with its default, local exchange; Notebook 1 released into it. The student's
Assignments panel lists it with no error and JupyterLab offers no instructor tool; the instructor's
formgrader lists exactly the course's assignments. Screenshots go to ``artifacts/browser/``.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from browsing import ARTIFACTS, LAB_SETTINGS, wait
from course_tools.notebooks import assignments
from labserver import LabServer, copy_course

NAME = "01_attention"
INSTRUCTOR_COMMANDS = ["nbgrader:open-formgrader", "nbgrader:open-create-assignment", "nbgrader:open-course-list"]
APP_S = 120  # JupyterLab's page until its plugins are active


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    """A copy of the repository in which the instructor has released Notebook 1 to the local exchange."""
    root = copy_course(tmp_path_factory.mktemp("clone"))
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_EXCHANGE", "JUPYTERHUB_API_URL")}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "release_assignment", NAME, "--log-level=ERROR"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def _lab(root, role: str, tmp_path_factory) -> LabServer:
    scratch = tmp_path_factory.mktemp(role)
    env = {"JUPYTER_CONFIG_PATH": str(root / "autograder" / "jupyter" / role), "COURSE_EXCHANGE": "",
           "JUPYTERHUB_API_URL": "", "JUPYTER_DATA_DIR": str(scratch / "data")}
    return LabServer(root, scratch, settings=LAB_SETTINGS, env=env)


def test_student_panel_lists_the_release_and_no_instructor_tool(driver, course_copy, tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with _lab(course_copy, "student", tmp_path_factory) as lab:
        driver.get(lab.url("lab"))
        wait(driver, "return window.jupyterapp && window.jupyterapp.commands.hasCommand("
                     "'nbgrader:open-assignment-list')", timeout=APP_S, what="nbgrader's assignment list command")
        offered = driver.execute_script("return arguments[0].filter(c => window.jupyterapp.commands.hasCommand(c))",
                                        INSTRUCTOR_COMMANDS)
        assert offered == [], f"students are offered instructor tools: {offered}"
        driver.execute_script("window.jupyterapp.commands.execute('nbgrader:open-assignment-list')")
        try:
            released = wait(driver, "const l = document.querySelector('#released_assignments_list');"
                                    "return l && l.innerText.includes(arguments[0]) ? l.innerText : null;", NAME,
                            timeout=APP_S, what=f"{NAME} in the Released assignments list")
            page = driver.execute_script("return document.body.innerText")
        finally:
            driver.save_screenshot(str(ARTIFACTS / "student-assignments-panel.png"))
        assert "induction-heads" in released
        for error in ["Error fetching courses", "does not exist and could not be created", "Traceback"]:
            assert error not in page, f"the student's Lab shows {error!r}:\n{page[:3000]}"


def test_instructor_formgrader_lists_exactly_the_assignments(driver, course_copy, tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with _lab(course_copy, "instructor", tmp_path_factory) as lab:
        driver.get(lab.url("formgrader"))
        try:
            names = wait(driver, "const n = [...document.querySelectorAll('tbody td.name')]"
                                 ".map(td => td.innerText.trim()); return n.length ? n : null;",
                         timeout=APP_S, what="the formgrader's table of assignments")
            warnings = driver.execute_script("return [...document.querySelectorAll('.alert-warning, .alert-danger')]"
                                             ".map(a => a.innerText.trim()).filter(t => t)")
        finally:
            driver.save_screenshot(str(ARTIFACTS / "instructor-formgrader.png"))
        assert sorted(names) == assignments() and len(names) == 5, names
        assert warnings == [], warnings
