"""JupyterLab 4 as students and instructors use it: nbgrader's extensions and the course's own.

JupyterLabs on 127.0.0.1: one in a student's home directory wired to a throwaway nbgrader exchange into which
Notebook 1 has been released (as on a JupyterHub); and one per role of `./run.sh` (`lab`: student,
`instructor`), each rooted at a copy of the repository with that role's Jupyter configuration, as `./run.sh`
starts them.
"""
from __future__ import annotations

import contextlib
import functools
import json
import re
import subprocess
import sys

import nbformat
import pytest

from induction_course import jupyter_extension
from course_tools.notebooks import CONFIG, COURSE, assignments
from labserver import LabServer, copy_course, filled_course_notebook

COURSE_ID = "induction-heads"
NAME = "01_attention"
INSTRUCTOR_PLUGINS = {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                      "@jupyter/nbgrader:course-list"}


@functools.lru_cache(maxsize=None)
def _jupyter(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=300)
    # Both commands print their report to stderr; strip colour codes.
    return re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)


def test_nbgrader_labextension_is_enabled():
    listing = _jupyter("labextension", "list")
    assert re.search(r"@jupyter/nbgrader v0\.9\.\d+ enabled OK", listing), listing


@pytest.mark.parametrize("extension", ["nbgrader.server_extensions.assignment_list",
                                       "nbgrader.server_extensions.validate_assignment",
                                       "nbgrader.server_extensions.course_list",
                                       jupyter_extension.EXTENSION])
def test_server_extension_is_enabled_and_valid(extension):
    listing = _jupyter("server", "extension", "list")
    assert re.search(rf"{re.escape(extension)} enabled", listing), (
        f"{extension} is not enabled: run `./run.sh` setup (or `python -m induction_course.jupyter_extension`)\n{listing}")
    assert re.search(rf"{re.escape(extension)} +\S* *OK", listing), listing


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lab")
    exchange, home = tmp / "exchange", tmp / "student"
    exchange.mkdir()
    home.mkdir()
    # The instructor releases Notebook 1 (the committed course/ release) into the exchange.
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "release_assignment", NAME, f"--Exchange.root={exchange}",
         f"--CourseDirectory.course_id={COURSE_ID}", f"--CourseDirectory.db_url=sqlite:///{tmp}/gradebook.db",
         "--log-level=ERROR"], cwd=CONFIG.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The student's nbgrader configuration names the exchange, as a JupyterHub deployment would.
    (home / "nbgrader_config.py").write_text(f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\n")
    with LabServer(home, tmp) as lab:
        yield lab


def _page_config(lab: LabServer) -> dict:
    status, body = lab.request("GET", "lab")
    assert status == 200
    return json.loads(re.search(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                body, re.S).group(1))


def test_page_loads_the_nbgrader_labextension(student_lab):
    config = _page_config(student_lab)
    assert "@jupyter/nbgrader" in {ext["name"] for ext in config["federated_extensions"]}
    disabled = config.get("disabledExtensions", [])
    assert not [d for d in disabled if "nbgrader" in d], disabled


def test_course_server_extension_serves_the_circuitsvis_bundle(student_lab):
    status, body = student_lab.request("GET", jupyter_extension.bundle_route())
    assert status == 200 and body == jupyter_extension.bundle_path().read_bytes()


def test_assignment_list_fetch_and_validate(student_lab):
    status, body = student_lab.request("GET", "assignments", course_id=COURSE_ID)
    listing = json.loads(body)
    assert status == 200 and listing["success"], listing
    released = {(a["assignment_id"], a["status"]) for a in listing["value"]}
    assert (NAME, "released") in released, listing

    status, body = student_lab.request("POST", "assignments/fetch",
                                       form={"assignment_id": NAME, "course_id": COURSE_ID}, timeout=60)
    assert status == 200 and json.loads(body)["success"], body
    fetched = student_lab.root / NAME / f"{NAME}.ipynb"
    assert fetched.read_text() == (COURSE / NAME / f"{NAME}.ipynb").read_text()

    # Untouched: the Validate button reports the exercises still to do.
    status, body = student_lab.request("POST", "assignments/validate", form={"path": f"{NAME}/{NAME}.ipynb"}, timeout=300)
    result = json.loads(body)
    assert status == 200 and result["success"], result
    failed = result["value"].get("failed", [])
    # (a question's answers cell raises NotImplementedError too, so its check then finds no `answers`;
    # nbgrader gives the errors as HTML)
    assert failed and all("NotImplementedError" in f["error"] or "name &#39;answers&#39; is not defined" in f["error"]
                          for f in failed), result["value"]
    assert any("NotImplementedError" in f["error"] for f in failed), result["value"]

    # Solved: validation passes with nothing to report.
    nbformat.write(filled_course_notebook(NAME), fetched)
    status, body = student_lab.request("POST", "assignments/validate", form={"path": f"{NAME}/{NAME}.ipynb"}, timeout=300)
    result = json.loads(body)
    assert status == 200 and result == {"success": True, "value": {}}, result


@pytest.fixture(scope="module")
def role_labs(tmp_path_factory):
    """role -> a JupyterLab rooted at a copy of the repository, configured as `./run.sh lab|instructor` does."""
    labs, stack = {}, contextlib.ExitStack()
    root = copy_course(tmp_path_factory.mktemp("clone"))
    with stack:
        for role in ("student", "instructor"):
            config = root / "autograder" / "jupyter" / role
            scratch = tmp_path_factory.mktemp(role)
            # A fresh data directory: nbgrader caches the user's submissions there.
            env = {"JUPYTER_CONFIG_PATH": str(config), "JUPYTER_DATA_DIR": str(scratch / "data"),
                   "COURSE_EXCHANGE": "", "JUPYTERHUB_API_URL": ""}
            labs[role] = stack.enter_context(LabServer(root, scratch, env=env))
        yield labs


def test_student_panel_answers_without_error(role_labs):
    lab = role_labs["student"]
    # The Assignments panel asks for the courses first ("Error fetching courses!" when the exchange is missing).
    status, body = lab.request("GET", "courses")
    assert status == 200 and json.loads(body) == {"success": True, "value": []}, body
    status, body = lab.request("GET", "assignments", course_id=COURSE_ID)
    assert status == 200 and json.loads(body) == {"success": True, "value": []}, body
    assert (lab.root / "autograder" / "exchange").is_dir()


def test_students_see_no_instructor_tools(role_labs):
    lab = role_labs["student"]
    config = _page_config(lab)
    disabled = set(config.get("disabledExtensions", []))
    assert INSTRUCTOR_PLUGINS <= disabled, disabled
    # Locked too, so JupyterLab's plugin manager cannot switch them back on.
    assert INSTRUCTOR_PLUGINS <= set(config.get("lockedExtensions", [])), config.get("lockedExtensions")
    assert not {"@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:validate-assignment"} & disabled, disabled
    assert "jupyterlab-jupytext" in disabled, disabled  # the masters' format is the instructors' business
    assert lab.request("GET", "formgrader/api/assignments")[0] == 404
    # Both course/ and solutions/ are in the file browser.
    status, body = lab.request("GET", "api/contents")
    assert status == 200 and {"course", "solutions"} <= {c["name"] for c in json.loads(body)["content"]}, body


def test_instructor_formgrader_lists_exactly_the_assignments(role_labs):
    lab = role_labs["instructor"]
    assert not INSTRUCTOR_PLUGINS & set(_page_config(lab).get("disabledExtensions", []))
    status, body = lab.request("GET", "formgrader/api/assignments", timeout=120)
    assert status == 200, body
    assert sorted(a["name"] for a in json.loads(body)) == assignments() and len(assignments()) == 5, body

