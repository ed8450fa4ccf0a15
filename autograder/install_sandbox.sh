#!/bin/sh
# Install the system packages `course grade` needs to sandbox student code (Debian/Ubuntu).
# Idempotent: does nothing when they are already installed. Run as root or with sudo.
#   bubblewrap  -> bwrap      (namespaces: no network, private /tmp, read-only system)
#   util-linux  -> prlimit    (memory, file-size and process limits) and setpriv (unprivileged uid)
set -eu
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
{ command -v prlimit >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1; } || missing="$missing util-linux"
if [ -z "$missing" ]; then
    echo "sandbox packages present: $(bwrap --version)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "Please install:$missing (no apt-get here; e.g. 'dnf install bubblewrap util-linux')." >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
echo "installed:$missing"
