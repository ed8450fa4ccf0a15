"""nbgrader configuration: `solutions/` is the source, `course/` is the release.

Paths are relative to the repository root, whatever directory nbgrader is started from. Every
execution timeout is set here, generously (a loaded 2-core machine can be 3x slower than a quiet one);
`course grade` has its own, per run (`--cell-timeout`, `--timeout`).
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
# The notebooks' percent-format masters live in solutions/src and never reach students.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "src"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.Execute.timeout = 300  # seconds per cell, then it is interrupted
c.Execute.interrupt_on_timeout = True
c.Execute.startup_timeout = 300  # seconds for the kernel to start
c.Execute.iopub_timeout = 60  # seconds to wait for a cell's last outputs after its reply
c.Execute.raise_on_iopub_timeout = True
