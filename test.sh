#!/usr/bin/env bash
# Set up (idempotent, including Chromium for the browser test) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --browser
exec .venv/bin/python -m pytest "$@"
