"""The relay before the video encoder (stream_app.ui.relay) with aiortc's and streamlit-webrtc's real classes: a slow
consumer gets the newest processed frame, never a backlog, and each frame it never took is counted against the
session that made it; a slow reader of the camera gets its newest frame too, each carrying how many it replaced; the
relay is installed where streamlit-webrtc looks for it."""

from __future__ import annotations

import asyncio
import fractions
import weakref

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from streamlit_webrtc.models import CallbackAttachableProcessor
from streamlit_webrtc.process import VideoProcessTrack

from stream_app.ui import relay
from stream_app.ui.relay import NewestFrameRelay


class Camera(MediaStreamTrack):
    """``n`` numbered frames, one every ``period`` seconds, then the end."""

    kind = "video"

    def __init__(self, n: int, period: float) -> None:
        super().__init__()
        self.n, self.period, self.sent = n, period, 0

    async def recv(self):
        if self.sent >= self.n:
            self.stop()
            raise MediaStreamError
        await asyncio.sleep(self.period)
        frame = av.VideoFrame.from_ndarray(np.full((8, 8, 3), self.sent, np.uint8), format="rgb24")
        frame.pts, frame.time_base = self.sent, fractions.Fraction(1, 30)
        self.sent += 1
        return frame


class Counter:
    def __init__(self) -> None:
        self.dropped = 0

    def note_dropped(self, n: int = 1) -> None:
        self.dropped += n


def _processed(camera: Camera, counter: Counter) -> VideoProcessTrack:
    def callback(frame):  # what LiveFrameHandler does: a new frame that names its session's drop counter
        new = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
        new.opaque = weakref.WeakMethod(counter.note_dropped)
        return new

    return VideoProcessTrack(camera, CallbackAttachableProcessor(callback, None, None))


def test_a_slow_encoder_gets_the_newest_processed_frame_and_the_others_are_counted_dropped():
    async def run():
        counter = Counter()
        camera = Camera(n=30, period=0.002)
        proxy = NewestFrameRelay().subscribe(_processed(camera, counter))
        got, newest = [], []
        while True:
            try:
                frame = await proxy.recv()
            except MediaStreamError:
                break
            got.append(int(frame.to_ndarray(format="rgb24")[0, 0, 0]))
            newest.append(camera.sent - 1)
            target = min(camera.n, camera.sent + 6)  # an encoder busy while six camera frames come
            while camera.sent < target and camera.readyState == "live":
                await asyncio.sleep(0.001)
        return got, newest, counter.dropped, camera.sent

    got, newest, dropped, sent = asyncio.run(run())
    assert sent == 30
    assert got == newest  # each time the newest frame made so far: no backlog
    assert len(got) in (5, 6) and got == sorted(got)  # 0, 6, 12, 18, 24 (and 29 unless the end came first)
    # every frame is either encoded or counted as dropped; one left untaken when the stream ends is not counted
    # (the end-of-stream marker replaces it, and it names no session)
    assert sent - len(got) - 1 <= dropped <= sent - len(got)


def test_a_slow_camera_reader_gets_the_newest_frame_and_learns_how_many_it_skipped():
    got = asyncio.run(_read_all(Camera(n=40, period=0.002), pause=0.012))  # a reader slower than the camera
    pts = [p for p, _ in got]
    assert pts == sorted(pts) and len(pts) < 40  # in order, newest first: frames were skipped, none queued
    for (before, _), (after, skipped) in zip(got, got[1:]):
        assert skipped == after - before - 1  # each frame says how many came between it and the one read before
    fast = asyncio.run(_read_all(Camera(n=10, period=0.01)))
    # a reader that keeps up gets every frame, none marked (the last one can lose to the end-of-stream marker)
    assert fast[:9] == [(i, 0) for i in range(9)]


class NotedCamera(Camera):
    """A camera track whose every frame says one frame was dropped before it upstream (as aiortc's jitter buffer
    notes its drops: stream_app.ui.receiver)."""

    async def recv(self):
        frame = await super().recv()
        frame.opaque = relay.CameraSkipped(1)
        return frame


def test_drops_before_the_relay_are_added_to_the_relays_own():
    got = asyncio.run(_read_all(NotedCamera(n=40, period=0.002), pause=0.012))
    assert len(got) < 40
    for (before, _), (after, skipped) in zip(got, got[1:]):
        # each replaced frame (after - before - 1 of them) counts itself and the frame dropped before it; the frame
        # read brings its own note
        assert skipped == 2 * (after - before - 1) + 1
    fast = asyncio.run(_read_all(NotedCamera(n=10, period=0.01)))
    assert fast[:9] == [(i, 1) for i in range(9)]


async def _read_all(camera, pause: float = 0.0) -> list:
    """(pts, frames skipped before it) of every camera frame a reader taking ``pause`` s per frame gets."""
    from stream_app.ui.relay import camera_frames_skipped

    proxy = NewestFrameRelay().subscribe(camera)
    got = []
    while True:
        try:
            frame = await proxy.recv()
        except MediaStreamError:
            return got
        got.append((int(frame.pts), camera_frames_skipped(frame)))
        await asyncio.sleep(pause)


def test_the_relay_sits_where_streamlit_webrtc_looks_for_it():
    import streamlit_webrtc.relay as webrtc_relay

    assert relay.RELAY_ATTRIBUTE == webrtc_relay._SERVER_GLOBAL_RELAY_ATTR_NAME_
    assert relay.is_processed_track(_processed(Camera(1, 0.0), Counter()))
    assert not relay.is_processed_track(Camera(1, 0.0))
