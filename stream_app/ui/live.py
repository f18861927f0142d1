"""Live page: camera frames through the chosen mode via streamlit-webrtc, annotated frames back, a side panel.

Thin: the frame callback is :class:`stream_app.ui.channel.LiveFrameHandler` (processor -> annotate, exceptions
caught and counted), the panel reads :class:`stream_app.ui.channel.ResultChannel`. Each browser session keeps its own
processor per mode in ``st.session_state``; models are shared per process by the mode modules.
"""

from __future__ import annotations

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from stream_app import config
from stream_app.modes import ModeSpec
from stream_app.ui import common
from stream_app.ui.channel import LiveFrameHandler, LiveSession, counts_csv_bytes, panel_lines

RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720), "320x240": (320, 240)}


def rtc_configuration() -> dict | None:
    """``{"iceServers": [...]}`` from ``STREAM_APP_ICE_SERVERS``; an empty list by default, which streamlit-webrtc
    passes on as it is (it only falls back to a public STUN server when ``iceServers`` is missing)."""
    try:
        return {"iceServers": config.ice_servers()}
    except ValueError as exc:  # includes json.JSONDecodeError
        st.error(f"STREAM_APP_ICE_SERVERS is not valid: {exc}")
        return None


def media_constraints(label: str, video: bool = True) -> dict:
    width, height = RESOLUTIONS[label]
    if not video:
        return {"video": True, "audio": False}
    return {"video": {"width": {"ideal": width}, "height": {"ideal": height}, "frameRate": {"ideal": 30}},
            "audio": False}


def get_session(store: str, spec: ModeSpec, settings: dict) -> LiveSession | None:
    """This browser session's processor for ``spec`` (created once, then only its settings change)."""
    sessions = st.session_state.setdefault(store, {})
    session = sessions.get(spec.name)
    if session is None:
        processor = common.create_processor(spec, live=True, settings=settings)
        if processor is None:
            return None
        session = sessions[spec.name] = LiveSession(processor)
    else:
        try:
            session.apply_settings(settings)
        except Exception as exc:  # noqa: BLE001
            st.error(f"Settings not applied: {type(exc).__name__}: {exc}")
    return session


def action_buttons(session: LiveSession, key: str) -> None:
    labels = ["Reset"] + list(session.processor.actions())
    cols = st.columns(min(len(labels), 4))
    for i, label in enumerate(labels):
        if cols[i % len(cols)].button(label, key=f"{key}-action-{label}", width="stretch"):
            try:
                session.reset() if label == "Reset" else session.run_action(label)
            except Exception as exc:  # noqa: BLE001
                st.error(f"{label} failed: {type(exc).__name__}: {exc}")


def panel(session: LiveSession, spec: ModeSpec, key: str) -> None:
    """The side panel: counters, current result, errors; a fragment that refreshes itself while frames flow."""
    snap = session.channel.snapshot()
    with st.container(key=f"{key}-panel", border=True):
        st.code("\n".join(panel_lines(snap)), language=None, wrap_lines=True)
        result = snap.result
        headline = result.extras.headline() if result is not None and result.extras is not None else None
        if headline is not None:
            st.metric(*headline, delta_color="off")
        if result is not None and result.top_k:
            import pandas as pd

            frame = pd.DataFrame({"class": [c for c, _ in result.top_k], "probability": [p for _, p in result.top_k]})
            st.bar_chart(frame, x="class", y="probability", height=180, sort=False)
        if result is not None and result.caption:
            st.markdown(f"**{result.extras.caption_title}**")
            st.code(result.caption, language=None, wrap_lines=True)
        if snap.errors:
            st.error(f"{snap.errors} frame(s) failed; the raw frame was shown instead. Last error: {snap.last_error}")
        if snap.counts_rows:
            st.download_button("Counts over time (CSV)", data=lambda: counts_csv_bytes(session.channel.counts_rows()),
                               file_name=f"{spec.name}_counts.csv", mime="text/csv", on_click="ignore",
                               key=f"{key}-csv")


def render() -> None:
    st.title("Live")
    spec = common.pick_mode("live")
    if spec is None:
        return
    st.sidebar.subheader("Camera")
    resolution = st.sidebar.selectbox("Resolution", list(RESOLUTIONS), key="live-resolution",
                                      help="Asked of the camera; pick the camera itself with Select Device.")
    settings = common.settings_controls(spec, "live")
    common.show_notice(spec)
    if not common.warm_up(spec):
        return
    session = get_session("live_sessions", spec, settings)
    rtc = rtc_configuration()
    if session is None or rtc is None:
        return

    left, right = st.columns([3, 2])
    with left:
        ctx = webrtc_streamer(
            key="live",
            mode=WebRtcMode.SENDRECV,
            rtc_configuration=rtc,
            media_stream_constraints=media_constraints(resolution),
            video_frame_callback=LiveFrameHandler(session, spec.annotate),
            async_processing=True,
        )
        st.caption("START asks for the camera; Select Device chooses which one. Frames go to this server only.")
    with right:
        st.subheader(spec.title)
        action_buttons(session, "live")
        st.fragment(panel, run_every=1.0 if ctx.state.playing else None)(session, spec, "live")
