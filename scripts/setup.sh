#!/usr/bin/env bash
# All set-up for a fresh machine, idempotent (a second run skips finished steps):
#   1. a virtual environment in .venv with stream-app installed editable from this checkout (pyproject.toml) and its
#      dependencies at the versions in constraints.txt (re-installed only when either file changes),
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
here=$(pwd -P)
# One pip at a time per venv (worktrees may share one).
if command -v flock >/dev/null; then exec 9>.venv/.setup.lock; flock 9; fi
stamp=.venv/.requirements.sha256
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing stream-app (editable) with the runtime, test, export and ray extras at the pinned versions"
  echo "[setup] (the first run takes a few minutes)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,export,ray]"
  echo "$want" > "$stamp"
else
  echo "[setup] requirements: installed"
fi
# The package Python imports here (PYTHONPATH included) must be this checkout's, and the `stream-app` command must
# exist: otherwise point the editable install at this checkout (a venv shared by worktrees, a moved clone).
where=$(cd / && "$here/.venv/bin/python" -c \
  'import os, stream_app; print(os.path.dirname(os.path.dirname(os.path.realpath(stream_app.__file__))))' \
  2>/dev/null || true)
if [ "$where" != "$here" ] || [ ! -x .venv/bin/stream-app ]; then
  echo "[setup] editable install of this checkout ($here)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
fi
if command -v flock >/dev/null; then flock -u 9; fi
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
