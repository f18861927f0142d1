#!/usr/bin/env bash
# Set up (idempotent) and serve the app on http://127.0.0.1:8501 (headless, no usage statistics).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/streamlit run stream_app/ui/app.py --server.address 127.0.0.1 --server.port "${PORT:-8501}" \
  --server.headless true --browser.gatherUsageStats false "$@"
