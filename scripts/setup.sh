#!/usr/bin/env bash
# All set-up for a fresh machine, idempotent (a second run skips finished steps):
#   1. a virtual environment in .venv with the pinned requirements (re-installed only when requirements change),
#   2. the registry-shipped model files, checked by sha256 (scripts/fetch_models.py),
#   3. with --browser: Debian's chromium + chromedriver for the real-browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned requirements (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
else
  echo "[setup] requirements: installed"
fi
.venv/bin/python scripts/fetch_models.py 2>&1 | grep -v "^WARNING: Location" || true
test -s models/vendor/hand_landmarker.task

if [ "${1:-}" = "--browser" ]; then
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "[setup] chromium: installed"
  else
    echo "[setup] installing chromium and chromium-driver from Debian's packages"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
fi
