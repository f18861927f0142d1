"""Annotated frames wait for the video encoder in a one-frame slot, not in a queue.

streamlit-webrtc hands every track to the encoder through aiortc's ``MediaRelay``, whose proxies buffer frames in an
unbounded ``asyncio.Queue``. aiortc's sender pulls a frame, encodes it (libvpx / libx264 on the CPU) and pulls the
next; when encoding falls behind the camera (two or three sessions on 2 cores), frames pile up in that queue and
the shown video falls further behind each second: seconds, then tens of seconds. :class:`NewestFrameRelay`
subscribes the processed video tracks unbuffered (aiortc's own ``buffered=False``: the proxy keeps the newest frame
and the encoder takes that), and counts each frame replaced before the encoder took it against the session that
made it (the frame's ``opaque`` holds a weak reference to its channel's ``note_dropped``; see
:class:`stream_app.ui.channel.LiveFrameHandler`).

Camera tracks get a one-frame slot too. Their consumer is streamlit-webrtc's process track, which takes one camera
frame each time it is asked for an output frame; with three sessions on 2 cores its loop fell behind the camera, the
camera frames queued in front of it and the video reached the callback seconds late ("waited before the callback"
7.5 s, then the stream ended). Now the newest camera frame waits, and the number of camera frames it replaced rides on
it (:func:`camera_frames_skipped`, read by the frame callback and counted as dropped).

:func:`install` puts it where streamlit-webrtc 0.79 looks for its server-wide relay (an attribute of Streamlit's
``Runtime``; ``tests/test_live_relay.py`` pins that).
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from aiortc.contrib.media import MediaRelay, RelayStreamTrack

log = logging.getLogger(__name__)

RELAY_ATTRIBUTE = "streamlit-webrtc-global-relay"  # streamlit_webrtc.relay._SERVER_GLOBAL_RELAY_ATTR_NAME_


def _note_dropped(frame) -> None:
    note = getattr(frame, "opaque", None)
    if isinstance(note, weakref.WeakMethod):
        method = note()
        if method is not None:
            method(1)


class _SlotEvent(asyncio.Event):
    """An unbuffered proxy's "new frame" event. Set while already set means the consumer never took the frame before
    the one just stored: :meth:`replaced` is told, with the newest frame (``proxy._frame``)."""

    def __init__(self, proxy: RelayStreamTrack) -> None:
        super().__init__()
        self._proxy = weakref.ref(proxy)

    def set(self) -> None:
        if self.is_set():
            proxy = self._proxy()
            if proxy is not None and proxy._frame is not None:
                self.replaced(proxy._frame)
        super().set()

    def replaced(self, newest) -> None:
        raise NotImplementedError


class _EncoderSlotEvent(_SlotEvent):
    """Before the encoder: the lost frame is counted against the session that made it (the newest frame carries the
    same session's note)."""

    def replaced(self, newest) -> None:
        _note_dropped(newest)


class CameraSkipped(int):
    """The ``opaque`` of a camera frame: this many frames were dropped in front of it (replaced in the relay's slot,
    or dropped in aiortc's jitter buffer: :mod:`stream_app.ui.receiver`)."""


class _CameraSlotEvent(_SlotEvent):
    """Before the process track: the newest camera frame carries how many frames were dropped in front of it since
    the consumer last took one: those it replaced, and what each of them carried (drops before the relay)."""

    def __init__(self, proxy: RelayStreamTrack) -> None:
        super().__init__(proxy)
        self._skipped = 0  # dropped since the consumer last took a frame, apart from the newest frame's own note
        self._upstream = 0  # the note the frame in the slot came with

    def set(self) -> None:
        proxy = self._proxy()
        newest = proxy._frame if proxy is not None else None
        upstream = camera_frames_skipped(newest)
        super().set()  # replaced() first if the frame in the slot was never taken
        self._upstream = upstream
        note = getattr(newest, "opaque", None)
        if newest is not None and self._skipped and (note is None or isinstance(note, CameraSkipped)):
            newest.opaque = CameraSkipped(upstream + self._skipped)

    def replaced(self, newest) -> None:
        self._skipped += 1 + self._upstream

    def clear(self) -> None:
        self._skipped = 0
        super().clear()


def camera_frames_skipped(frame) -> int:
    """How many camera frames the relay dropped in front of ``frame`` (0 when it came in turn)."""
    note = getattr(frame, "opaque", None)
    return int(note) if isinstance(note, CameraSkipped) else 0


def is_processed_track(track) -> bool:
    """A track streamlit-webrtc made from a frame callback (its output), as opposed to a camera or a file."""
    from streamlit_webrtc.process import AsyncMediaProcessTrack, MediaProcessTrack

    return isinstance(track, (AsyncMediaProcessTrack, MediaProcessTrack))


class NewestFrameRelay(MediaRelay):
    """``MediaRelay`` whose video subscribers get the newest frame, never a backlog: processed tracks (drops counted
    against the session that made the frame) and camera tracks (drops noted on the newest frame)."""

    def subscribe(self, track, buffered: bool = True):
        if track.kind == "video":
            proxy = super().subscribe(track, buffered=False)
            event = _EncoderSlotEvent if is_processed_track(track) else _CameraSlotEvent
            proxy._new_frame_event = event(proxy)
            return proxy
        return super().subscribe(track, buffered=buffered)


def install() -> MediaRelay:
    """Make :class:`NewestFrameRelay` the relay streamlit-webrtc uses in this server (once; idempotent). Call before
    the first ``webrtc_streamer``; a relay streamlit-webrtc already made is replaced only while it relays nothing."""
    from streamlit.runtime.runtime import Runtime
    from streamlit_webrtc.eventloop import get_global_event_loop, loop_context

    runtime = Runtime.instance()
    current = getattr(runtime, RELAY_ATTRIBUTE, None)
    if isinstance(current, NewestFrameRelay):
        return current
    if current is not None and getattr(current, "_MediaRelay__proxies", None):
        log.warning("streamlit-webrtc's relay is in use; frames may queue before the encoder until a restart")
        return current
    with loop_context(get_global_event_loop()):
        relay = NewestFrameRelay()
    setattr(runtime, RELAY_ATTRIBUTE, relay)
    return relay
