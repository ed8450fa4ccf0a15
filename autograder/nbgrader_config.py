"""nbgrader configuration: `solutions/` is the source, `course/` is the release, an exchange links them to students.

Paths are relative to the repository root, whatever directory nbgrader is started from. nbgrader finds this
file from `autograder/` and, through `nbgrader_config.py` in the repository root, from there (where
`./run.sh lab` and `./run.sh instructor` start Jupyter). Every execution timeout is set here, generously
(a loaded 2-core machine can be 3x slower than a quiet one); `course grade` has its own, per run
(`--cell-timeout`, `--timeout`).

The exchange (where release, fetch, submit, collect and feedback meet):
- on one machine, `autograder/exchange/` (git-ignored, made here) and students' fetched copies in `assignments/`;
- `COURSE_EXCHANGE=/path` chooses another folder (e.g. a shared one on a lab server);
- on a JupyterHub (`JUPYTERHUB_API_URL` is set in every hub server) neither is set here, so the hub's own
  nbgrader configuration (`c.Exchange.root` in /etc/jupyter/nbgrader_config.py) applies.
"""
import os

c = get_config()  # noqa: F821  (provided by nbgrader)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "induction-heads"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
c.CourseDirectory.submitted_directory = "autograder/submitted"
c.CourseDirectory.autograded_directory = "autograder/autograded"
c.CourseDirectory.feedback_directory = "autograder/feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "autograder", "gradebook.db")
# The notebooks' percent-format masters live in masters/, outside the source folder: nbgrader never sees them.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

c.Execute.timeout = 300  # seconds per cell, then it is interrupted
c.Execute.interrupt_on_timeout = True
c.Execute.startup_timeout = 300  # seconds for the kernel to start
c.Execute.iopub_timeout = 60  # seconds to wait for a cell's last outputs after its reply
c.Execute.raise_on_iopub_timeout = True

if os.environ.get("COURSE_EXCHANGE"):
    c.Exchange.root = os.environ["COURSE_EXCHANGE"]
elif not os.environ.get("JUPYTERHUB_API_URL"):
    c.Exchange.root = os.path.join(ROOT, "autograder", "exchange")
    c.Exchange.assignment_dir = os.path.join(ROOT, "assignments")
    # nbgrader needs both to exist before anything is released, listed or fetched.
    try:
        os.makedirs(c.Exchange.root, exist_ok=True)
        os.makedirs(c.Exchange.assignment_dir, exist_ok=True)
    except OSError:  # a read-only checkout: nbgrader then says which folder is missing
        pass

