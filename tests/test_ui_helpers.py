"""The UI's non-Streamlit logic: result channel, fps/latency meter, frame handler (ui.channel), settings -> controls
(ui.controls), panel text (ui.panel)."""

from __future__ import annotations

import csv
import io
import threading
import time
from dataclasses import dataclass

import av
import numpy as np
import pytest

from stream_app.annotators import annotate
from stream_app.modes import get_mode, mode_names, setting
from stream_app.modes.base import ModeSpec, Processor
from stream_app.modes.fingerspell.processor import FingerspellExtras
from stream_app.results import Detections, FrameResult
from stream_app.synthetic import moving_shapes
from stream_app.live import SessionSlots
from stream_app.ui.channel import LiveFrameHandler, LiveSession, PanelState, RateMeter, ResultChannel
from stream_app.ui.controls import changed_settings, control_for, controls_for
from stream_app.ui.panel import counts_csv_bytes, panel_lines, result_lines, timings_line


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ---- RateMeter ------------------------------------------------------------------------------------------------------

def test_rate_meter_measures_frame_rate_over_its_window():
    meter = RateMeter(window_s=2.0)
    for i in range(90):  # 3 s at 30 fps
        meter.tick(10.0 + i / 30.0, latency_ms=float(i % 10))
    assert meter.fps(10.0 + 89 / 30.0) == pytest.approx(30.0, rel=0.02)
    assert meter.latency_ms() == pytest.approx(4.5)


def test_rate_meter_falls_to_zero_when_frames_stop():
    meter = RateMeter(window_s=2.0)
    for i in range(30):
        meter.tick(i / 10.0)  # 10 fps
    assert meter.fps(2.9) == pytest.approx(10.0, rel=0.05)
    assert meter.fps(2.9 + 5.0) == 0.0
    assert RateMeter().fps(0.0) == 0.0 and RateMeter().latency_ms() is None


# ---- ResultChannel --------------------------------------------------------------------------------------------------

def test_channel_counts_shown_and_analysed_frames_drops_errors_and_keeps_the_newest_result():
    clock = FakeClock()
    channel = ResultChannel(clock=clock)
    assert channel.snapshot() == PanelState()
    for i in range(20):  # 20 frames shown at 20 fps, every other one analysed
        clock.now += 0.05
        channel.shown(latency_ms=4.0, size=(640, 480), age_ms=50.0 + i, dropped_before=1 if i == 7 else 0,
                      behind_ms=float(i % 3))
        if i % 2:
            channel.publish(FrameResult(mode="motion", counts={"moving": i}))
    clock.now += 0.05
    channel.publish(FrameResult(mode="motion", error="ValueError: bad"))
    channel.record_error("RuntimeError: annotate failed")
    channel.note_dropped(2)
    snap = channel.snapshot()
    assert snap.frames == 20 and snap.analysed == 11 and snap.errors == 2 and snap.dropped == 3
    assert snap.last_error == "RuntimeError: annotate failed"
    assert snap.result.error == "ValueError: bad"
    assert snap.fps == 0.0  # nothing went out yet: the panel's fps counts only frames the DeliveryMeter reports sent
    assert snap.callback_fps == pytest.approx(20.0, rel=0.06) and snap.analysed_fps == pytest.approx(10.0, rel=0.15)
    assert snap.latency_ms == 4.0 and snap.overlay_age_ms == pytest.approx(59.5) and snap.behind_ms == 1.0
    for i in range(5):
        channel.delivered(1, at=clock.now - 0.4 + 0.1 * i)
    channel.delivered(0, dropped=2)
    snap = channel.snapshot()
    assert snap.fps == pytest.approx(10.0, rel=0.05) and snap.undelivered == 2
    rows = channel.counts_rows()
    assert len(rows) == 10 and snap.counts_rows == 10
    assert rows[0] == {"time_s": 0.0, "moving": 1} and rows[-1] == {"time_s": 0.9, "moving": 19}
    channel.refuse("busy")
    assert channel.snapshot().refused == "busy"
    channel.shown(latency_ms=1.0)
    assert channel.snapshot().refused is None
    channel.reset()
    assert channel.snapshot() == PanelState() and channel.counts_rows() == []


def test_channel_is_thread_safe_under_concurrent_publishers_and_readers():
    channel = ResultChannel(max_rows=1_000_000)
    stop = threading.Event()
    snapshots = []

    def reader():
        while not stop.is_set():
            snap = channel.snapshot()
            snapshots.append(snap)
            assert snap.counts_rows <= snap.analysed

    def writer(n):
        for i in range(n):
            channel.publish(FrameResult(mode="m", counts={"k": i}))
            channel.shown(latency_ms=1.0, age_ms=3.0)

    threads = [threading.Thread(target=writer, args=(2000,)) for _ in range(4)]
    read = threading.Thread(target=reader)
    read.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    read.join()
    assert channel.snapshot().analysed == 8000 and channel.snapshot().frames == 8000
    assert len(channel.counts_rows()) == 8000
    assert snapshots  # the reader really ran alongside


def test_channel_bounds_the_counts_history():
    channel = ResultChannel(max_rows=5)
    for i in range(12):
        channel.publish(FrameResult(mode="m", counts={"k": i}))
    assert [row["k"] for row in channel.counts_rows()] == [7, 8, 9, 10, 11]


def test_counts_csv_has_time_and_one_column_per_count():
    rows = [{"time_s": 0.0, "WBC": 1}, {"time_s": 0.5, "WBC": 2, "RBC": 7}]
    table = list(csv.DictReader(io.StringIO(counts_csv_bytes(rows).decode())))
    assert list(table[0]) == ["time_s", "RBC", "WBC"]
    assert table == [{"time_s": "0.0", "RBC": "0", "WBC": "1"}, {"time_s": "0.5", "RBC": "7", "WBC": "2"}]


# ---- the frame callback and the live session -------------------------------------------------------------------------

def _av_frames(n: int, seed: int = 1, size=(320, 240)):
    for i, image in enumerate(moving_shapes(n, *size, seed=seed)):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i * 3000
        frame.time_base = __import__("fractions").Fraction(1, 90000)
        yield image, frame


def _session(processor_or_factory, annotate_fn=annotate, slots=None, **kwargs) -> LiveSession:
    factory = processor_or_factory if callable(processor_or_factory) and not isinstance(
        processor_or_factory, Processor) else (lambda values, p=processor_or_factory: p)
    return LiveSession(factory, annotate_fn, slots=slots or SessionSlots(0), **kwargs)


def _wait(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_frame_handler_sends_every_frame_back_at_once_with_the_latest_overlay():
    session = _session(lambda values: get_mode("motion").create(live=True))
    handler = LiveFrameHandler(session)
    try:
        changed = []
        for image, frame in _av_frames(30):
            out = handler(frame)
            assert isinstance(out, av.VideoFrame)
            assert (out.width, out.height) == (320, 240) and out.pts == frame.pts
            changed.append(not np.array_equal(out.to_ndarray(format="rgb24"), image))
            time.sleep(1 / 30)
        _wait(lambda: session.channel.snapshot().analysed >= 2)
        snap = session.channel.snapshot()
        assert snap.frames == 30 and snap.errors == 0 and snap.size == (320, 240)
        assert 1 <= snap.analysed <= 30 and snap.overlay_age_ms is not None and snap.overlay_age_ms >= 0
        assert snap.result.counts["moving"] >= 1  # the shapes move
        first = changed.index(True)  # the first frames go back before the first result exists (how many: the load)
        assert first <= 20 and all(changed[first:])  # from then on every frame carries at least the status label
    finally:
        session.close()


def test_queued_frames_callback_sends_back_the_newest_and_counts_the_rest_as_dropped():
    import asyncio

    session = _session(lambda values: get_mode("motion").create(live=True))
    handler = LiveFrameHandler(session)
    try:
        frames = [frame for _, frame in _av_frames(4)]
        out = asyncio.run(handler.queued(frames))
        assert len(out) == 1 and out[0].pts == frames[-1].pts
        snap = session.channel.snapshot()
        assert snap.frames == 1 and snap.dropped == 3
    finally:
        session.close()


class Exploding(Processor):
    mode = "exploding"

    def _process(self, frame, timestamp_s):
        raise RuntimeError("model fell over")


def test_processor_errors_are_counted_and_the_stream_goes_on():
    session = _session(Exploding(None, live=True))
    handler = LiveFrameHandler(session)
    try:
        for _, frame in _av_frames(3):
            assert isinstance(handler(frame), av.VideoFrame)
            _wait(lambda: session.channel.snapshot().analysed >= 1)
        snap = session.channel.snapshot()
        assert snap.frames == 3 and snap.errors == snap.analysed >= 1
        assert snap.last_error == "RuntimeError: model fell over"
    finally:
        session.close()


def test_any_exception_in_the_callback_returns_the_raw_frame():
    def broken_annotate(image, result):
        raise ValueError("cannot draw")

    session = _session(lambda values: get_mode("motion").create(live=True), broken_annotate)
    handler = LiveFrameHandler(session)
    try:
        frames = [frame for _, frame in _av_frames(2)]
        handler(frames[0])  # no result yet: nothing to draw
        _wait(lambda: session.channel.snapshot().analysed >= 1)
        assert handler(frames[1]) is frames[1]
        snap = session.channel.snapshot()
        assert snap.errors == 1 and snap.last_error == "ValueError: cannot draw"

        class NotAFrame:
            def to_ndarray(self, format):  # noqa: A002
                raise TypeError("no pixels")

        odd = NotAFrame()
        assert handler(odd) is odd
        assert session.channel.snapshot().errors == 2
    finally:
        session.close()


def test_the_session_measures_how_long_frames_waited_before_the_callback():
    """Arrival time minus camera time, above the stream's quickest: 0 while frames flow evenly, the backlog when
    they queue, and a new stream (a new camera clock) starts afresh."""
    session = _session(Exploding(None, live=True))
    try:
        assert session.behind_ms(None, 5.0) is None
        assert session.behind_ms(0.0, 100.0) == 0.0
        assert session.behind_ms(1 / 30, 100.0 + 1 / 30) == pytest.approx(0.0, abs=1e-6)
        assert session.behind_ms(2 / 30, 100.0 + 2 / 30 + 0.25) == pytest.approx(250.0)  # queued for 250 ms
        assert session.behind_ms(3 / 30, 100.0 + 3 / 30 - 0.01) == 0.0  # quicker than all before: the new baseline
        assert session.behind_ms(5000.0, 101.0) == 0.0  # the camera clock jumped: a new stream
        session.release()
        assert session.behind_ms(7.0, 300.0) == 0.0  # released: the next stream measures from its own start
    finally:
        session.close()


def test_a_session_over_the_cap_gets_a_message_instead_of_a_frozen_stream():
    slots = SessionSlots(1)
    first = _session(lambda values: get_mode("motion").create(live=True), slots=slots)
    second = _session(lambda values: get_mode("motion").create(live=True), slots=slots)
    try:
        frames = [(image, frame) for image, frame in _av_frames(3)]
        LiveFrameHandler(first)(frames[0][1])
        image, frame = frames[1]
        out = LiveFrameHandler(second)(frame)
        assert isinstance(out, av.VideoFrame) and out.pts == frame.pts
        assert out.to_ndarray(format="rgb24").mean() < image.mean() * 0.6  # darkened, with the message on it
        snap = second.channel.snapshot()
        assert "already runs 1 live session(s)" in snap.refused and "STREAM_APP_MAX_LIVE_SESSIONS=1" in snap.refused
        assert not second.active and snap.analysed == 0
        first.release()  # STOP in the first session: its slot is free, the second stream gets analysed
        LiveFrameHandler(second)(frames[2][1])
        assert second.channel.snapshot().refused is None and second.active
    finally:
        first.close()
        second.close()


class Recording(Processor):
    """Records what the session does to it; stands for a mode with threads and models to release."""

    mode = "recording"
    made: list = []

    def __init__(self, settings, live=True):
        super().__init__(settings, live)
        self.calls, self.closed = [], False
        Recording.made.append(self)

    def _process(self, frame, timestamp_s):
        return FrameResult(mode=self.mode, counts={"threshold_x10": round(self.settings.threshold * 10)})

    def update_settings(self, **changes):
        self.calls.append(changes)
        super().update_settings(**changes)

    def actions(self):
        return {"Clear text": lambda: self.calls.append("clear")}

    def close(self):
        self.closed = True


@dataclass
class S:
    threshold: float = 0.5
    smooth: int = 5


def test_live_session_applies_only_changed_settings_and_runs_actions():
    Recording.made.clear()
    session = _session(lambda values: Recording(S(**values)), settings={"threshold": 0.5, "smooth": 5})
    try:
        session.check()  # made and closed again: labels known, nothing held
        assert session.action_labels == ["Clear text"] and not session.active and Recording.made[0].closed
        assert session.apply_settings({"threshold": 0.6, "smooth": 5}) == {}  # no processor yet: kept for it
        processor = session.ensure().processor
        assert processor.settings == S(0.6, 5)
        assert session.apply_settings({"threshold": 0.6, "smooth": 5}) == {}
        assert session.apply_settings({"threshold": 0.7, "smooth": 5, "unknown": 1}) == {"threshold": 0.7}
        assert processor.settings == S(0.7, 5)
        session.run_action("Clear text")
        assert processor.calls == [{"threshold": 0.7}, "clear"]
    finally:
        session.close()


def test_ending_a_stream_releases_the_processor_and_threads_and_the_next_frame_starts_anew():
    """STOP, a closed or reloaded tab (streamlit-webrtc's on_video_ended), frames that stop coming (idle) and a
    dropped session all release the processor and the worker's threads."""
    import gc

    Recording.made.clear()
    session = _session(lambda values: Recording(S(**values)), settings={}, idle_s=5.0)
    handler = LiveFrameHandler(session)
    frames = [frame for _, frame in _av_frames(4)]
    handler(frames[0])
    first = session.processor
    threads = session.ensure().worker.threads()
    assert threads and all(t.is_alive() for t in threads)
    session.on_ended()  # streamlit-webrtc's on_video_ended: released in a thread of its own
    _wait(lambda: first.closed and not session.active)
    assert not any(t.is_alive() for t in threads)
    assert session.channel.snapshot().frames == 1  # the panel keeps what it showed

    handler(frames[1])  # START again: a new processor
    second = session.processor
    assert second is not first and not second.closed
    assert not session.release_if_idle(session.last_frame + 1.0)
    assert session.release_if_idle(session.last_frame + 6.0) and second.closed  # frames stopped coming

    handler(frames[2])
    third = session.processor
    threads = session.ensure().worker.threads()
    del session, handler
    gc.collect()
    assert third.closed and not any(t.is_alive() for t in threads)  # the browser session was dropped
    assert len(Recording.made) == 3


# ---- settings -> controls -------------------------------------------------------------------------------------------

@dataclass
class DemoSettings:
    threshold: float = setting(0.35, "Confidence threshold", min=0.05, max=0.95, step=0.05)
    tiny: float = setting(0.002, "Tiny step", min=0.0001, max=0.2, step=0.0005)
    frames: int = setting(5, "Frames to agree", min=1, max=30, step=1)
    unbounded: int = setting(3, "No max")
    model: str = setting("resnet18", "Backbone", choices=("resnet18", "mobilenet"))
    mirror: bool = setting(True, "Mirror the camera")
    name: str = setting("", "Free text")
    palette: tuple = setting((1, 2), "Not drawable")


def _fields():
    import dataclasses

    return {f.name: f for f in dataclasses.fields(DemoSettings)}


def test_controls_follow_field_types_and_metadata():
    f = _fields()
    c = control_for(f["threshold"])
    assert (c.kind, c.value_type, c.min, c.max, c.step, c.default) == ("slider", float, 0.05, 0.95, 0.05, 0.35)
    assert c.help == "Confidence threshold" and c.label == "Threshold" and c.format == "%.2f"
    assert control_for(f["tiny"]).format == "%.4f"
    c = control_for(f["frames"])
    assert (c.kind, c.value_type, c.min, c.max, c.step, c.default) == ("slider", int, 1, 30, 1, 5)
    assert all(type(v) is int for v in (c.min, c.max, c.step, c.default))  # st.slider needs one numeric type
    assert control_for(f["unbounded"]).kind == "number"
    c = control_for(f["model"])
    assert (c.kind, c.choices, c.default) == ("select", ("resnet18", "mobilenet"), "resnet18")
    assert control_for(f["mirror"]).kind == "checkbox"
    assert control_for(f["name"]).kind == "text"
    assert control_for(f["palette"]) is None


def test_coerce_gives_the_field_type():
    f = _fields()
    assert control_for(f["threshold"]).coerce(1) == 1.0 and type(control_for(f["threshold"]).coerce(1)) is float
    assert type(control_for(f["frames"]).coerce(4.0)) is int
    assert control_for(f["mirror"]).coerce(0) is False


def test_controls_for_a_spec_skip_fields_without_widgets():
    spec = ModeSpec(name="demo", title="Demo", description="", processor_cls=Exploding, settings_cls=DemoSettings)
    names = [c.name for c in controls_for(spec)]
    assert names == ["threshold", "tiny", "frames", "unbounded", "model", "mirror", "name"]


@pytest.mark.parametrize("name", mode_names())
def test_every_registered_mode_gets_valid_controls_and_a_live_processor(name):
    """What the pages do for any mode: controls from the settings, then ``spec.create(live=True, **values)``."""
    spec = get_mode(name)
    values = {}
    for c in controls_for(spec):
        if c.kind == "slider":
            assert c.min <= c.default <= c.max, c
            assert type(c.min) is type(c.max) is type(c.default) is type(c.step) is c.value_type, c
        if c.kind == "select":
            assert c.default in c.choices
        values[c.name] = c.coerce(c.default)
    settings = spec.settings_cls(**values)  # the controls' values are valid settings
    assert changed_settings(settings, values) == {}
    try:
        processor = spec.create(live=True, **values)
    except Exception as exc:  # noqa: BLE001 - e.g. a model not trained yet; the page shows this message
        pytest.skip(f"mode {name!r} cannot make a processor here (the page shows: {type(exc).__name__}: {exc})")
    try:
        assert changed_settings(processor.settings, values) == {}
    finally:
        processor.close()


def test_changed_settings_tolerates_float_noise():
    @dataclass
    class S:
        a: float = 0.1
        b: int = 2

    assert changed_settings(S(), {"a": 0.1 + 1e-15, "b": 2}) == {}
    assert changed_settings(S(), {"a": 0.2, "b": 3, "zzz": 1}) == {"a": 0.2, "b": 3}


# ---- panel text -----------------------------------------------------------------------------------------------------

def test_panel_lines_show_counters_and_the_result():
    result = FrameResult(mode="fingerspell", top_k=[("B", 0.91), ("D", 0.05)],
                         extras=FingerspellExtras(letter="B", letter_score=0.91, text="AB"), counts={"WBC": 2},
                         timings_ms={"hand": 6.0, "total": 12.5}, warning="no hand")
    state = PanelState(frames=42, fps=27.64, callback_fps=27.8, latency_ms=12.25, analysed=20, analysed_fps=14.04,
                       overlay_age_ms=71.4, behind_ms=12.6, dropped=3, errors=1, result=result, size=(640, 480))
    lines = panel_lines(state)
    assert lines[:9] == ["frames shown: 42 at 640x480", "fps shown: 27.6", "frames analysed: 20", "fps analysed: 14.0",
                         "overlay age (median): 71 ms", "waited before the callback (median): 13 ms",
                         "frames dropped: 3 (video), 22 not analysed (the analysis takes the newest frame)",
                         "latency (callback, median): 12.2 ms", "errors: 1"]
    assert "letter: B (91%)" in lines and "top-k: B 0.91, D 0.05" in lines and "text: AB" in lines
    assert "WBC: 2" in lines and "warning: no hand" in lines
    assert lines[-1] == "timings: callback 12.2 ms; model (background) total 12.5 ms (hand 6.0)"
    assert panel_lines(state, running=False)[1] == "fps shown: 0.0 (not streaming)"  # after STOP, not the last rate
    slower = panel_lines(PanelState(frames=9, fps=20.0, callback_fps=23.0, undelivered=3))[2]
    assert slower == "handed back by the callback: 23.0/s; 3 never sent"
    assert result_lines(None) == ["no frame processed yet"]
    assert result_lines(FrameResult(mode="m")) == ["(nothing found in this frame)"]


# ---- ICE servers: none by default, and streamlit-webrtc must not substitute a public STUN server ---------------------

def test_no_ice_server_by_default_and_none_substituted(monkeypatch):
    from aiortc import RTCIceServer
    from streamlit_webrtc.component import _resolve_server_rtc_configuration, enhance_frontend_rtc_configuration

    from stream_app.ui.webrtc_view import rtc_configuration

    monkeypatch.delenv("STREAM_APP_ICE_SERVERS", raising=False)
    rtc = rtc_configuration()
    assert rtc == {"iceServers": []}
    # What the page hands to webrtc_streamer reaches both peers unchanged (None would mean Google's STUN server).
    assert _resolve_server_rtc_configuration(rtc).iceServers == []
    assert enhance_frontend_rtc_configuration(rtc)["iceServers"] == []

    monkeypatch.setenv("STREAM_APP_ICE_SERVERS", '[{"urls": ["stun:127.0.0.1:3478"]}]')
    rtc = rtc_configuration()
    assert rtc == {"iceServers": [{"urls": ["stun:127.0.0.1:3478"]}]}
    assert _resolve_server_rtc_configuration(rtc).iceServers == [RTCIceServer(urls=["stun:127.0.0.1:3478"])]


def test_timings_line_keeps_the_background_model_apart_from_the_callback():
    result = FrameResult(mode="leukocyte", timings_ms={"preprocess": 1.5, "detect": 64.0, "track": 0.3, "total": 66.2})
    assert timings_line(result, callback_ms=2.2) == ("callback 2.2 ms; model (background) total 66.2 ms "
                                                     "(preprocess 1.5, detect 64.0, track 0.3)")
    still = FrameResult(mode="motion", timings_ms={"subtract": 3.0, "total": 3.4})
    assert timings_line(still) == "total 3.4 ms (subtract 3.0)"
    assert timings_line(FrameResult(mode="m")) == "" and timings_line(None) == ""
    assert timings_line(None, callback_ms=1.0) == "callback 1.0 ms"


def test_delivery_meter_counts_what_streamlit_webrtc_really_sends():
    """The real ``AsyncVideoProcessTrack`` (async_processing=True) with a 30 fps source and a sender that asks for a
    frame now and then: the frames it sends that the callback made are what the meter calls sent; the rest of the
    processed ones it calls never sent."""
    import asyncio
    import fractions
    import time as _time

    from aiortc import MediaStreamTrack
    from streamlit_webrtc.models import CallbackAttachableProcessor
    from streamlit_webrtc.process import AsyncVideoProcessTrack

    class Camera(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        async def recv(self):
            await asyncio.sleep(1 / 30)
            frame = av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = self.n * 3000, fractions.Fraction(1, 90000)
            self.n += 1
            return frame

    class Quick(Processor):
        mode = "quick"

        def _process(self, frame, timestamp_s):
            return FrameResult(mode=self.mode)

    calls = []

    def slowish_annotate(image, result, *args):  # drawing runs in the callback: now faster, now slower than the camera
        calls.append(1)
        _time.sleep((0.002, 0.045, 0.01)[len(calls) % 3])
        return image.copy()

    session = LiveSession(lambda settings: Quick(None, live=True), slowish_annotate, slots=SessionSlots(4))
    handler = LiveFrameHandler(session)
    made: list = []
    real_returned = session.delivery.returned
    session.delivery.returned = lambda frame: (made.append(frame), real_returned(frame))[1]

    async def run() -> list:
        track = AsyncVideoProcessTrack(Camera(), CallbackAttachableProcessor(handler, None, None))
        got, last = [], None
        for i in range(150):
            frame = await track.recv()
            if frame is not last:
                got.append(frame)
            last = frame
            await asyncio.sleep((0.0, 0.03, 0.06)[i % 3])  # the encoder, sometimes slower than the camera
        track.stop()
        return got

    got = asyncio.run(run())
    session.close()
    session.delivery.give_up_s = 0.0
    session.delivery.check()
    snap = session.channel.snapshot()
    sent = sum(1 for f in got if any(f is m for m in made))
    print(f"[delivery] processed {snap.frames}, never sent {snap.undelivered}, sent {sent}")
    assert len(made) == snap.frames and snap.undelivered > 0  # this pacing does make streamlit-webrtc drop some
    assert snap.frames - snap.undelivered == pytest.approx(sent, abs=2), (snap.frames, snap.undelivered, sent)


def test_letter_runs_read_the_letters_a_video_showed():
    from stream_app.ui.panel import letter_runs, letters_line

    letters = [None] * 3 + ["B"] * 12 + ["D"] * 2 + ["B"] * 3 + [None] * 5 + ["C"] * 9
    records = [{"frame": i, "time_s": i / 30, "letter": letter} for i, letter in enumerate(letters)]
    runs = letter_runs(records)
    assert [r[0] for r in runs] == ["B", "C"]  # D (2 frames) and the second B (3 frames) are under 0.2 s
    assert runs[0][1] == pytest.approx(0.1) and runs[0][2] == pytest.approx(0.5)
    assert letters_line(runs) == "B 0.1-0.5 s, C 0.8-1.1 s"
    assert letter_runs([]) == [] and letters_line([]) == ""


def test_display_width_keeps_tall_pictures_on_the_screen():
    from stream_app.ui.panel import display_width

    assert display_width(1080, 1920) == 360  # a portrait phone video: 640 px tall, not 1600
    assert display_width(1920, 1080) == 900 and display_width(0, 0) == 900


def test_small_images_are_drawn_enlarged_so_labels_do_not_cover_them():
    image = np.full((28, 28, 3), 90, np.uint8)
    result = FrameResult(mode="classify", top_k=[("pneumonia", 0.8), ("normal", 0.2)], counts={"x": 1},
                         detections=Detections([[4, 4, 20, 20]], [0.9], ["thing"]))
    out = annotate(image, result)
    assert out.shape == (252, 252, 3)  # 28 x 9 >= 240
    assert (out[120:130, 120:130] == 90).all()  # the middle of the image is not under a label
    big = np.full((480, 640, 3), 90, np.uint8)
    assert annotate(big, result).shape == big.shape


def test_fingerspelling_offers_no_counts_csv_the_counting_modes_do():
    assert get_mode("fingerspell").counts_over_time is False
    assert get_mode("leukocyte").counts_over_time and get_mode("motion").counts_over_time
