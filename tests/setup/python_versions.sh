#!/usr/bin/env bash
# The README's setup on each Python, as a new user gets it: a fresh clone of this repository's HEAD, then
# `./run.sh setup`, an import smoke test (torch, TransformerLens, circuitsvis, nbgrader, the course's model
# forward pass) and `./run.sh lab` answering on 127.0.0.1 with nbgrader's student panel working.
#
#   tests/setup/python_versions.sh [PYTHON...]    default: python3.11, python3.12, python3.13 found on PATH,
#                                                 and Debian's /usr/bin/python3.11
#   AS_USER=name tests/setup/python_versions.sh   the same as that ordinary user (made with useradd if
#                                                 missing), in a clone in their home
#   KEEP=1 ...                                    keep the clones (each .venv is 2-6 GB)
#
# Minutes of CPU and GBs of downloads per Python (pip's cache makes repeats faster); not part of the test
# suite. Prints one line per Python: version, torch build, setup seconds, size of .venv, result.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SETUP_S=${SETUP_S:-2400}  # one Python's setup, downloads included
LAB_S=180                 # JupyterLab's first answer

pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
  for p in /usr/bin/python3.11 python3.11 python3.12 python3.13; do
    command -v "$p" >/dev/null && pythons+=("$(command -v "$p")")
  done
fi

WORK=$(mktemp -d /tmp/python-versions.XXXXXX)
chmod 755 "$WORK"
as_user=()
if [ -n "${AS_USER:-}" ]; then
  id "$AS_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$AS_USER"
  WORK=$(runuser -u "$AS_USER" -- mktemp -d "$(getent passwd "$AS_USER" | cut -d: -f6)/python-versions.XXXXXX")
  as_user=(runuser -u "$AS_USER" -- env HOME="$(getent passwd "$AS_USER" | cut -d: -f6)" USER="$AS_USER")
  # git will not read another user's repository ("dubious ownership"): hand the user a bare copy of it.
  git clone -q --bare "$REPO" "$WORK/source.git" && chown -R "$AS_USER" "$WORK/source.git"
  REPO_HEAD=$(git -C "$REPO" rev-parse --short HEAD)
  REPO=$WORK/source.git
fi

# One Python: clone, setup, smoke test, lab. Runs as the user when AS_USER is set.
one_python() {
  local py=$1 dir=$2 repo=$3 setup_s=$4 lab_s=$5
  git clone -q "$repo" "$dir" || return 1
  cd "$dir" || return 1
  local start=$SECONDS
  PYTHON=$py timeout "$setup_s" ./run.sh setup || { echo "SETUP FAILED after $((SECONDS - start)) s"; return 1; }
  echo "SETUP_SECONDS $((SECONDS - start))"
  timeout 600 .venv/bin/python - <<'PY' || return 1
import json, subprocess, sys
import circuitsvis, nbgrader, torch, transformer_lens
from induction_course.models import make_model
model = make_model(n_layers=2, seed=0, device="cpu")
logits = model(torch.randint(1, 50, (2, 12)))
assert logits.shape[:2] == (2, 12) and torch.isfinite(logits).all(), logits.shape
listing = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True,
                         text=True, timeout=300)
assert "induction_course.jupyter_extension" in listing.stdout + listing.stderr, listing.stderr[-2000:]
print("TORCH", torch.__version__, "cuda" if torch.version.cuda else "cpu")
print("SMOKE OK", sys.version.split()[0])
PY
  local port token pid ok=""
  port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  token=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')
  JUPYTER_CONFIG_DIR="$dir/.jupyter-test" ./run.sh lab --no-browser --port "$port" --ServerApp.ip=127.0.0.1 \
    --IdentityProvider.token="$token" >"$dir/lab.log" 2>&1 &
  pid=$!
  for _ in $(seq "$lab_s"); do
    if curl -sf --max-time 10 "http://127.0.0.1:$port/courses?token=$token" | grep -q '"success": true'; then ok=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [ -z "$ok" ]; then echo "LAB FAILED"; tail -20 "$dir/lab.log"; return 1; fi
  echo "LAB OK"
  echo "VENV_SIZE $(du -sh .venv | cut -f1)"
}
export -f one_python

summary=()
rc=0
for py in "${pythons[@]}"; do
  version=$("$py" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))')
  dir="$WORK/$version"
  [ -e "$dir" ] && continue  # the same Python twice (a symlink)
  echo "=== Python $version ($py) in $dir"
  log="$WORK/$version.log"
  "${as_user[@]}" bash -c 'one_python "$@"' _ "$py" "$dir" "$REPO" "$SETUP_S" "$LAB_S" 2>&1 | tee "$log"
  result=FAILED
  grep -q "^LAB OK" "$log" && result=ok
  [ "$result" = ok ] || rc=1
  summary+=("$(printf '%-8s %-22s torch %-20s setup %5s s  .venv %5s  %s' "$version" "$py" \
    "$(grep '^TORCH' "$log" | cut -d' ' -f2-)" "$(grep '^SETUP_SECONDS' "$log" | cut -d' ' -f2)" \
    "$(grep '^VENV_SIZE' "$log" | cut -d' ' -f2)" "$result")")
  [ -n "${KEEP:-}" ] || rm -rf "$dir"
done
echo "=== Summary (as ${AS_USER:-$(id -un)}; from ${REPO_HEAD:-$(git -C "$REPO" rev-parse --short HEAD)})"
printf '%s\n' "${summary[@]}"
exit $rc
