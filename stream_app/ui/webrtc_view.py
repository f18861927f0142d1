"""The WebRTC view the Live page (camera) and the Replay page's live replay (a file) share: the streamlit-webrtc
component, whose frame callback runs the mode's processor and annotators, beside a side panel (action buttons,
counters, the current result) that refreshes itself while frames flow.

The plumbing behind it is :mod:`stream_app.ui.channel`; the panel's text is :mod:`stream_app.ui.panel`.
"""

from __future__ import annotations

import time
from typing import Callable

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from stream_app import config
from stream_app.live import live_slots
from stream_app.modes import ModeSpec
from stream_app.ui import receiver, relay
from stream_app.ui.channel import LiveFrameHandler, LiveSession
from stream_app.ui.panel import NO_CONNECTION_AFTER_S, counts_csv_bytes, no_connection_lines, panel_lines
from stream_app.ui.recording import LiveRecording


def rtc_configuration() -> dict | None:
    """``{"iceServers": [...]}`` from ``STREAM_APP_ICE_SERVERS``; an empty list by default, which streamlit-webrtc
    passes on as it is (it only falls back to a public STUN server when ``iceServers`` is missing)."""
    try:
        return {"iceServers": config.ice_servers()}
    except ValueError as exc:  # includes json.JSONDecodeError
        st.error(f"STREAM_APP_ICE_SERVERS is not valid: {exc}")
        return None


def get_session(store: str, spec: ModeSpec, settings: dict) -> LiveSession | None:
    """This browser session's live stream for ``spec`` (created once; its processor is made when frames come and
    released when they stop). Streams of the page's other modes are released: one stream per page."""
    sessions = st.session_state.setdefault(store, {})
    for name, other in sessions.items():
        if name != spec.name and other.active:
            other.release()
    session = sessions.get(spec.name)
    if session is None:
        session = LiveSession(lambda values: spec.create(live=True, **values), spec.annotate, settings,
                              name=f"{store}-{spec.name}", follower=spec.follower)
        try:
            session.check()  # a bad setting or a missing model is said here, not as a frozen stream
        except Exception as exc:  # noqa: BLE001
            st.error(f"Could not start {spec.title}: {type(exc).__name__}: {exc}")
            return None
        sessions[spec.name] = session
    else:
        try:
            session.apply_settings(settings)
        except Exception as exc:  # noqa: BLE001
            st.error(f"Settings not applied: {type(exc).__name__}: {exc}")
    return session


RESET_ALL = "Reset all"


def action_buttons(session: LiveSession, key: str) -> None:
    """"Reset all" (the panel's counters and everything the mode keeps) and the mode's own buttons, whose labels say
    what they change ("Clear text", "Reset WBC counts")."""
    labels = [RESET_ALL] + list(session.action_labels)
    cols = st.columns(min(len(labels), 4))
    for i, label in enumerate(labels):
        help_text = ("Start over: the panel's frame counters and fps, and everything the mode keeps (spelled text, "
                     "cell tracks and counts)" if label == RESET_ALL else None)
        if cols[i % len(cols)].button(label, key=f"{key}-action-{label}", width="stretch", help=help_text):
            try:
                session.reset() if label == RESET_ALL else session.run_action(label)
            except Exception as exc:  # noqa: BLE001
                st.error(f"{label} failed: {type(exc).__name__}: {exc}")


def _no_connection(key: str, started: bool, frames: int, camera: bool) -> None:
    """After START, while no frame has come through for :data:`NO_CONNECTION_AFTER_S`: what to check (the panel's
    counter keeps the frames of earlier starts, so "no frame" means none since this START)."""
    since = f"{key}-started-at"
    if not started:
        st.session_state.pop(since, None)
        return
    t0, frames0 = st.session_state.setdefault(since, (time.monotonic(), frames))
    waited = time.monotonic() - t0
    if frames == frames0 and waited >= NO_CONNECTION_AFTER_S:
        try:
            ice_servers = bool(config.ice_servers())
        except ValueError:
            ice_servers = True
        st.warning("\n".join(no_connection_lines(waited, st.get_option("server.address"), ice_servers, camera)))


def panel(session: LiveSession, spec: ModeSpec, key: str, started: bool = False, camera: bool = True) -> None:
    """The side panel: counters, current result, errors; a fragment that refreshes itself while frames flow (and,
    after START, while none has come yet: :func:`_no_connection`)."""
    snap = session.channel.snapshot()
    with st.container(key=f"{key}-panel", border=True):
        _no_connection(key, started, snap.frames, camera)
        if snap.refused:
            st.error(snap.refused)
        st.code("\n".join(panel_lines(snap, running=started)), language=None, wrap_lines=True)
        result = snap.result
        headline = result.extras.headline() if result is not None and result.extras is not None else None
        if headline is not None:
            name, value, note = headline  # the note is a confidence, not a change: no arrow, no colour
            st.metric(name, value, note, delta_color="off", delta_arrow="off", delta_description="confidence")
        if result is not None and result.top_k:
            import pandas as pd

            frame = pd.DataFrame({"class": [c for c, _ in result.top_k], "probability": [p for _, p in result.top_k]})
            st.bar_chart(frame, x="class", y="probability", height=180, sort=False)
        if result is not None and result.caption:
            st.markdown(f"**{result.extras.caption_title}**")
            st.code(result.caption, language=None, wrap_lines=True)
        if snap.errors:
            st.error(f"{snap.errors} frame(s) failed; the raw frame was shown instead. Last error: {snap.last_error}")
        if snap.counts_rows and spec.counts_over_time:
            st.download_button("Counts over time (CSV)", data=lambda: counts_csv_bytes(session.channel.counts_rows()),
                               file_name=f"{spec.name}_counts.csv", mime="text/csv", on_click="ignore",
                               key=f"{key}-csv")


def recording_downloads(recording: LiveRecording, playing: bool, finishing: bool, record: bool) -> None:
    """After STOP: the recorded MP4 and JSONL as downloads. While the recorder is still finishing the MP4 this runs
    as a fragment every second, and redraws the whole page once the files are ready."""
    if playing:
        if record:
            st.caption("Recording: the annotated video and each frame's results; press STOP to finish.")
        return
    if recording.mp4 is None:
        return
    done = recording.finished()
    if done is None:
        st.caption("Finishing the recording...")
        return
    if finishing:
        st.rerun(scope="app")
    st.caption(f"Recorded {done.frames} frames; {done.records} results")
    cols = st.columns(2)
    cols[0].download_button("Recording (MP4)", data=done.mp4.read_bytes, file_name=done.mp4.name, mime="video/mp4",
                            on_click="ignore", key="live-dl-mp4")
    cols[1].download_button("Results per frame (JSONL)", data=done.jsonl.read_bytes, file_name=done.jsonl.name,
                            mime="application/jsonl", on_click="ignore", key="live-dl-jsonl")


def webrtc_view(page: str, spec: ModeSpec, settings: dict, *, mode: WebRtcMode, media_stream_constraints: dict,
                caption: str, player_factory: Callable | None = None, component_key: str | None = None,
                title: str | None = None, recording: LiveRecording | None = None, record: bool = False) -> None:
    """The component (``mode``: SENDRECV for a camera, RECVONLY with ``player_factory`` for a file) on the left,
    the panel on the right. ``page`` names this browser session's processors (``<page>_sessions``), the buttons and
    the panel (``.st-key-<page>-panel``, which the browser test reads); ``component_key`` the component (default
    ``page``). With ``recording``, every result goes to it, and with ``record`` the annotated video too
    (streamlit-webrtc's ``out_recorder_factory``); its downloads appear under the component after STOP."""
    session = get_session(f"{page}_sessions", spec, settings)
    rtc = rtc_configuration()
    if session is None or rtc is None:
        return
    try:
        slots = live_slots()
    except ValueError as exc:
        st.error(str(exc))
        return
    relay.install()  # annotated frames wait for the encoder in a one-frame slot, never in a queue
    receiver.install()  # camera frames leave aiortc's jitter buffer when complete; a lost packet holds them <= 0.2 s
    left, right = st.columns([3, 2])
    with left:
        if slots.full_for(session):
            st.warning(f"This server already runs {slots.in_use()} live sessions, its limit "
                       f"(STREAM_APP_MAX_LIVE_SESSIONS): a stream started now shows a busy message until one ends.")
        handler = LiveFrameHandler(session, on_result=recording.write if recording else None)
        ctx = webrtc_streamer(
            key=component_key or page,
            mode=mode,
            rtc_configuration=rtc,
            media_stream_constraints=media_stream_constraints,
            player_factory=player_factory,
            queued_video_frames_callback=handler.queued,  # the newest frame of those that came meanwhile
            on_video_ended=session.on_ended,  # STOP, tab closed or reloaded: processor and threads released
            async_processing=True,
            out_recorder_factory=recording.recorder_factory if recording and record else None,
        )
        st.caption(caption)
        if recording is not None:
            finishing = not ctx.state.playing and recording.mp4 is not None and recording.finished() is None
            st.fragment(recording_downloads, run_every=1.0 if finishing else None)(recording, ctx.state.playing,
                                                                                    finishing, record)
    with right:
        if title:
            st.subheader(title)
        action_buttons(session, page)
        started = ctx.state.playing or ctx.state.signalling
        st.fragment(panel, run_every=1.0 if started else None)(session, spec, page, started,
                                                                mode != WebRtcMode.RECVONLY)
