#!/usr/bin/env bash
# Install the browser the real-browser test drives: Debian's chromium and chromium-driver.
# Idempotent: does nothing when both are present. Exit 0 when they are usable; otherwise exit 3
# with the reason on stderr (the test then skips, quoting it).
#   tests/browser/install_browser.sh          install if needed
#   tests/browser/install_browser.sh --check  only report whether they are present
set -euo pipefail

have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

if have; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "chromium and chromedriver are not installed" >&2
  exit 3
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install Chromium and its matching chromedriver yourself (on Debian/Ubuntu: chromium chromium-driver)" >&2
  exit 3
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "not root and no password-less sudo: run 'sudo apt-get install -y chromium chromium-driver' once" >&2
    exit 3
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq chromium chromium-driver; } >&2; then
  echo "apt-get could not install chromium and chromium-driver (offline, or no such packages here)" >&2
  exit 3
fi
if ! have; then
  echo "apt-get finished but chromium or chromedriver is still missing from PATH" >&2
  exit 3
fi
