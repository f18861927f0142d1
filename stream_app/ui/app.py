"""Entry point: ``streamlit run stream_app/ui/app.py`` (``./run.sh`` does this on 127.0.0.1:8501).

A multipage app (``st.navigation``): Live (camera through WebRTC), Replay (a video file, processed or streamed) and
Images (still images). Every mode in the registry appears on every page.
"""

from __future__ import annotations

import logging

import streamlit as st

# The package comes from the environment (`pip install -e .`, which scripts/setup.sh does), not from this file's place.
from stream_app.ui import images, live, loopback_ice, replay

for noisy in ("aioice", "aiortc"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
# Bound to loopback (./run.sh): offer loopback ICE candidates, so a browser on this machine streams with no network.
loopback_ice.install(st.get_option("server.address"))

st.set_page_config(page_title="stream_app", layout="wide")
page = st.navigation([
    st.Page(live.render, title="Live", url_path="live", default=True),
    st.Page(replay.render, title="Replay", url_path="replay"),
    st.Page(images.render, title="Images", url_path="images"),
])
page.run()
