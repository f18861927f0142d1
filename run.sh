#!/usr/bin/env bash
# Set up (idempotent) and serve the app on http://127.0.0.1:8501 (headless, no usage statistics).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
# Memory of ended live sessions comes back: glibc gives each thread an arena of its own (up to 8 per core), and with
# WebRTC, callback and analysis threads starting and ending per session, freed memory stays scattered over them
# (RSS +7-20 MB per session that came and went; with 2 arenas it levels off: README, "Live sessions").
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec .venv/bin/streamlit run stream_app/ui/app.py --server.address 127.0.0.1 --server.port "${PORT:-8501}" \
  --server.headless true --browser.gatherUsageStats false "$@"
