"""The course's grader: every submission of a class graded by nbgrader in its own sandboxed kernel.

Instructors: see README.md beside this file, or run ``course grade --help``. The modules, by stage:

- ``submissions``: finding submissions (every file under SUBMISSIONS graded, failed or skipped, with why);
- ``files``: the file system, treated as hostile (no link followed, nothing read or written outside);
- ``reading`` and ``restoring``: a submitted file into a clean notebook, its structure restored;
- ``sandbox`` and ``executing``: the bubblewrap sandbox, and running a notebook in it;
- ``deciding``: the graded checks planned from the trusted source and judged outside the kernel;
- ``guard``: the tripwire that runs inside the kernel (the only module that does);
- ``scoring`` and ``reporting``: nbgrader's scores and gradebook; feedback pages, grades.csv, skipped.csv;
- ``state``: what a re-run may reuse; ``worker``: one submission through the stages; ``batch``: a class;
- ``plain``: plain nbgrader autograde of trusted notebooks (tests, benchmark); ``bench``: the grader's speed;
- ``settings``: limits and records shared by all; ``command``: the command line.

The course package (``induction_course``) holds the science and the checks; this package is for
instructors only: nothing a student runs at home imports it.
"""
