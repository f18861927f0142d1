"""Live page: camera frames through the chosen mode via streamlit-webrtc, annotated frames back, a side panel, and
the stream recorded on request (:mod:`stream_app.ui.recording`).

Thin: the view is :func:`stream_app.ui.webrtc_view.webrtc_view` (the same as the Replay page's live replay). Each
browser session keeps its own processor per mode in ``st.session_state``; models are shared per process by the modes.
"""

from __future__ import annotations

import streamlit as st
from streamlit_webrtc import WebRtcMode

from stream_app.ui import common
from stream_app.ui.recording import LiveRecording
from stream_app.ui.webrtc_view import webrtc_view

RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720), "320x240": (320, 240)}


def media_constraints(label: str) -> dict:
    width, height = RESOLUTIONS[label]
    return {"video": {"width": {"ideal": width}, "height": {"ideal": height}, "frameRate": {"ideal": 30}},
            "audio": False}


def render() -> None:
    st.title("Live")
    spec = common.pick_mode("live")
    if spec is None:
        return
    st.sidebar.subheader("Camera")
    resolution = st.sidebar.selectbox("Resolution", list(RESOLUTIONS), key="live-resolution",
                                      help="Asked of the camera; pick the camera itself with Select Device.")
    record = st.sidebar.checkbox("Record the stream", key="live-record",
                                 help="While the camera runs, record the annotated video and each frame's results "
                                      "(JSONL); press STOP to finish and download them.")
    settings = common.settings_controls(spec, "live")
    common.show_notice(spec)
    if not common.warm_up(spec):
        return
    if "live_recording" not in st.session_state:
        st.session_state["live_recording"] = LiveRecording(common.session_tmp("live"))
    webrtc_view("live", spec, settings, mode=WebRtcMode.SENDRECV,
                media_stream_constraints=media_constraints(resolution), title=spec.title,
                caption="START asks for the camera; Select Device chooses which one. Frames go to this server only.",
                recording=st.session_state["live_recording"], record=record)
