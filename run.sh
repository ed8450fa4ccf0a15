#!/usr/bin/env bash
# The course's one entry point.
#   ./run.sh lab     set up (if needed) and open the course in JupyterLab
#   ./run.sh test    set up (if needed) and run the whole test suite
#   ./run.sh bench   set up (if needed) and print the time and memory budgets
#   ./run.sh build   regenerate solutions/*.ipynb and course/ from the masters in solutions/src/
# Setup makes .venv with the exact versions in requirements.lock; it reruns only when the lock changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON="${PYTHON:-python3}"
VENV=.venv

pip_install() {
  # Some pip configurations list local mirrors that may be absent; keep their warnings out of the way.
  "$VENV/bin/python" -m pip install --quiet "$@" 2> >(grep -v "is neither a file nor a directory" >&2)
}

setup() {
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "The course needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
  fi
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  if ! cmp -s requirements.lock "$VENV/.installed-lock" || [ pyproject.toml -nt "$VENV/.installed-lock" ]; then
    echo "Setting up $VENV from requirements.lock (first time only; a few minutes)..."
    pip_install --upgrade pip
    # torch first and pinned, so nothing below pulls a different (multi-GB) build.
    pip_install "$(grep '^torch==' requirements.lock)"
    pip_install -r requirements.lock
    pip_install --no-deps --no-build-isolation -e .
    cp requirements.lock "$VENV/.installed-lock"
  fi
  export PATH="$PWD/$VENV/bin:$PATH"
  # Serve circuitsvis's JavaScript from the installed package, so attention views work offline.
  python -m induction_course.jupyter_extension >/dev/null
}

case "${1:-lab}" in
  lab)
    setup
    exec jupyter lab --notebook-dir=. course/
    ;;
  test)
    setup
    # The grading tests sandbox student code with bubblewrap; without it they skip and say why.
    sh autograder/install_sandbox.sh || echo "warning: could not install the grading sandbox (bubblewrap)." >&2
    shift || true
    set +e
    python -m pytest "$@"
    rc=$?
    set -e
    # pytest's 5 means "no tests were collected": that is a failure of the suite, say so.
    [ "$rc" -eq 5 ] && echo "pytest collected no tests: the suite is missing." >&2
    exit "$rc"
    ;;
  bench)
    setup
    exec course bench
    ;;
  build)
    setup
    exec course build
    ;;
  *)
    echo "usage: ./run.sh [lab|test|bench|build]" >&2
    exit 2
    ;;
esac
