#!/usr/bin/env bash
# The course's one entry point.
#   ./run.sh lab [ARGS]          set up (if needed) and open the course in JupyterLab, as a student
#   ./run.sh instructor [ARGS]   the same with nbgrader's instructor tools, opened on the formgrader
#   ./run.sh test [ARGS]         set up (if needed) and run the test suite (ARGS go to pytest), a worker per core
#   ./run.sh test --fast [ARGS]  only the fast tier (pure Python: no kernel, sandbox, browser or training; ~2 min)
#   ./run.sh bench [ARGS]        set up (if needed) and print the time and memory budgets
#   ./run.sh build               regenerate solutions/*.ipynb and course/ from the masters in masters/
#   ./run.sh setup               set up only
# ARGS of lab and instructor go to JupyterLab: ./run.sh lab --port 8899 --no-browser (add --ip 0.0.0.0 in Docker).
#
# Setup makes .venv with the exact versions in requirements.lock; it reruns only when the lock changes.
# With a conda environment made from environment.yml active, it uses that environment instead.
# Environment variables:
#   PYTHON           the Python that makes .venv (default python3; 3.11.2 or newer, 3.11-3.13 tested)
#   TORCH_INDEX_URL  where torch comes from: default on Linux PyTorch's CPU-only builds; empty for PyPI's
#                    (on Linux a CUDA build, several GB); or another index, e.g. .../whl/cu128
#   COURSE_EXCHANGE  nbgrader's exchange folder (default: autograder/exchange; on a JupyterHub, the hub's)
#   TEST_WORKERS     pytest-xdist workers of ./run.sh test (default: one per core, at most 4; 0: one process)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON="${PYTHON:-python3}"
VENV="$PWD/.venv"
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
# Every network call of pip has explicit limits: a dead index costs seconds, not pip's default retries.
PIP_NET=(--timeout 60 --retries 2)

pip_install() {
  # Some pip configurations list local mirrors that may be absent; keep their warnings out of the way.
  "$VENV/bin/python" -m pip install --quiet "${PIP_NET[@]}" "$@" 2> >(grep -v "is neither a file nor a directory" >&2)
}

# Exit 0 when the package index at $1 answers within 10 s (any HTTP status, or a TLS error for pip to report).
index_answers() {
  local probe=("$VENV/bin/python" - "$1")
  command -v timeout >/dev/null && probe=(timeout 15 "${probe[@]}")  # name lookups ignore socket timeouts
  "${probe[@]}" <<'PY'
import ssl, sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1].rstrip("/") + "/torch/", method="HEAD"), timeout=10)
except urllib.error.HTTPError:
    pass
except urllib.error.URLError as e:
    sys.exit(0 if isinstance(e.reason, ssl.SSLError) else 1)
except OSError:
    sys.exit(1)
PY
}

install_torch() {
  local pin index
  pin=$(grep '^torch==' requirements.lock)
  # Unset: the CPU index on Linux (elsewhere PyPI's torch is CPU-only already). Set but empty: PyPI.
  if [ -z "${TORCH_INDEX_URL+set}" ] && [ "$(uname -s)" = Linux ]; then index=$TORCH_CPU_INDEX; else index=${TORCH_INDEX_URL:-}; fi
  if [ -n "$index" ]; then
    if index_answers "$index"; then
      echo "Installing $pin from $index"
      pip_install --no-deps --index-url "$index" "$pin" && return
      echo "Could not install $pin from $index. To take PyPI's build instead: TORCH_INDEX_URL= ./run.sh ..." >&2
      exit 1
    fi
    echo "warning: $index did not answer; taking $pin from the default index instead" \
         "(on Linux that is PyPI's CUDA build, several GB, unless a CPU wheel is on this machine)." >&2
  fi
  pip_install --no-deps "$pin"
}

# A conda environment made from environment.yml, active, with this checkout installed in it.
active_conda_env() {
  [ -n "${CONDA_PREFIX:-}" ] && [ -x "$CONDA_PREFIX/bin/python" ] && "$CONDA_PREFIX/bin/python" -c '
import pathlib, sys, induction_course as m
sys.exit(pathlib.Path(m.__file__).resolve().parents[1] != pathlib.Path.cwd().resolve())' 2>/dev/null
}

setup() {
  if active_conda_env; then
    VENV=$CONDA_PREFIX
  else
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11, 2))' 2>/dev/null; then
      echo "The course needs Python 3.11.2 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1)." \
           "Set PYTHON=/path/to/python3.11 (or 3.12, 3.13)." >&2
      exit 1
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info >= (3, 14))'; then
      echo "warning: $("$PYTHON" --version 2>&1) is newer than any Python the course was tested on (3.11-3.13)." >&2
    fi
    if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -m venv "$VENV"; then
      echo "Could not make a virtual environment. On Debian or Ubuntu: apt-get install python3-venv" \
           "(or python3.11-venv), then rm -rf .venv and try again." >&2
      rm -rf "$VENV"
      exit 1
    fi
    if ! cmp -s requirements.lock "$VENV/.installed-lock" || [ pyproject.toml -nt "$VENV/.installed-lock" ]; then
      echo "Setting up $VENV from requirements.lock (first time only; a few minutes)..."
      pip_install "$(grep '^pip==' requirements.lock)"
      # torch first and pinned, so nothing below pulls a different (multi-GB) build.
      install_torch
      pip_install -r requirements.lock
      pip_install --no-deps --no-build-isolation -e .
      cp requirements.lock "$VENV/.installed-lock"
    fi
  fi
  export PATH="$VENV/bin:$PATH"
  # torch's OpenMP threads wait passively instead of spinning, so a busy machine does not collapse them
  # (see induction_course/threads.py for the measurements). Kernels, tests and the benchmark inherit it.
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
  # Serve circuitsvis's JavaScript from the installed package, so attention views work offline.
  python -m induction_course.jupyter_extension >/dev/null
}

# JupyterLab rooted at the repository, with the role's Jupyter configuration (autograder/jupyter/ROLE):
# student hides nbgrader's instructor tools; both find the course's nbgrader_config.py in the root.
jupyter_lab() {
  local role=$1 url=$2
  shift 2
  export JUPYTER_CONFIG_PATH="$PWD/autograder/jupyter/$role${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
  local args=(--ServerApp.root_dir="$PWD" --LabApp.default_url="$url")
  [ "$(id -u)" = 0 ] && args+=(--allow-root)  # containers run as root; Jupyter refuses root without it
  exec jupyter lab "${args[@]}" "$@"
}

command=${1:-lab}
[ $# -gt 0 ] && shift
case "$command" in
  lab)
    setup
    first=(course/[0-9][0-9]_*/[0-9][0-9]_*.ipynb)
    jupyter_lab student "/lab/tree/${first[0]}" "$@"
    ;;
  instructor)
    setup
    jupyter_lab instructor /formgrader "$@"
    ;;
  test)
    setup
    tier=()
    if [ "${1:-}" = --fast ]; then
      shift
      tier=(-m "not slow")  # tests/conftest.py marks slow what needs a kernel, the sandbox, a browser or training
    # The grading tests sandbox student code with bubblewrap; without it they skip and say why, except in CI
    # (CI=true), where a missing sandbox fails the run: a green CI must have tested the grader.
    elif ! sh autograder/install_sandbox.sh; then
      echo "warning: could not install the grading sandbox (bubblewrap)." >&2
      if [ "${CI:-}" = true ]; then echo "CI=true: the grading tests need the sandbox; stopping." >&2; exit 1; fi
    fi
    # One pytest-xdist worker per core, at most 4 (TEST_WORKERS=0: one process), with --dist loadgroup and the
    # groups tests/conftest.py marks (the lock's pytest 9.1 is one whose groups xdist 3.8 can set: tests/README.md).
    workers=${TEST_WORKERS:-$(python -c 'import os; n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1; print(min(n, 4) if n > 1 else 0)')}
    set +e
    python -m pytest -n "$workers" --dist loadgroup ${tier[@]+"${tier[@]}"} "$@"
    rc=$?
    set -e
    # pytest's 5 means "no tests were collected": that is a failure of the suite, say so.
    [ "$rc" -eq 5 ] && echo "pytest collected no tests: the suite is missing." >&2
    exit "$rc"
    ;;
  bench)
    setup
    exec course bench "$@"
    ;;
  build)
    setup
    exec course build
    ;;
  setup)
    setup
    echo "Ready: $(python --version), torch $(python -c 'import torch; print(torch.__version__)'), in $VENV."
    ;;
  *)
    echo "usage: ./run.sh [lab|instructor|test|bench|build|setup] [ARGS]" >&2
    exit 2
    ;;
esac
