"""The WebRTC plumbing that is not Streamlit: the frame callback (:class:`LiveFrameHandler`), one browser session's
processor (:class:`LiveSession`), and the thread-safe channel from the callback to the page (:class:`ResultChannel`,
with its fps/latency meter). Testable without a browser (``tests/test_ui_helpers.py``); :mod:`.webrtc_view` draws it.

streamlit-webrtc runs the frame callback in its own thread, where ``st.*`` calls do not work, and an exception there
silently turns the stream into a plain echo (streamlit-webrtc issue 2103). So :class:`LiveFrameHandler` catches
everything, counts it in the channel and returns the raw frame; the page polls :meth:`ResultChannel.snapshot`.
A plain ``threading.Lock`` around a small state object is enough: the page only ever wants the newest state, never
a backlog, so a queue would just have to be drained.

**Delivered, not processed.** With ``async_processing`` streamlit-webrtc (0.79, ``process.AsyncMediaProcessTrack``)
runs the callback in a worker thread and queues its output; each frame the WebRTC sender asks for takes the oldest
queued annotated frame, re-stamped with the newest input frame's ``pts``, or re-sends the last one. When the callback
finishes two frames between two such requests, the queue keeps the oldest and throws the others away: processed, never
shown. Counting callback runs therefore read ~13% above what the browser got (issue 12). :class:`DeliveryMeter` tells
the two apart by that re-stamp: an annotated frame whose ``pts`` changed after the callback returned it went out; one
older than a frame that went out, or left for :attr:`DeliveryMeter.give_up_s`, was thrown away. The panel's fps is
the delivered rate; frames processed but not delivered are counted too.
"""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from stream_app.results import FrameResult
from stream_app.ui.controls import changed_settings


class RateMeter:
    """Frames per second over a sliding time window, and the median of recent latencies.

    ``tick(now, latency_ms)`` is called once per frame; ``fps(now)`` counts the ticks within the last ``window_s``.
    """

    def __init__(self, window_s: float = 2.0, latency_samples: int = 60) -> None:
        self.window_s = float(window_s)
        self._times: deque[float] = deque()
        self._latencies: deque[float] = deque(maxlen=latency_samples)

    def tick(self, now: float, latency_ms: float | None = None) -> None:
        self._times.append(now)
        self._trim(now)
        if latency_ms is not None:
            self._latencies.append(float(latency_ms))

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def fps(self, now: float) -> float:
        self._trim(now)
        n = len(self._times)
        if n < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (n - 1) / span if span > 0 else 0.0

    def latency_ms(self) -> float | None:
        if not self._latencies:
            return None
        return float(np.median(np.fromiter(self._latencies, dtype=float)))


@dataclass(frozen=True)
class PanelState:
    """A consistent copy of what the side panel shows: ``fps`` is the delivered rate (:class:`DeliveryMeter`),
    ``processed_fps`` the callback's, ``undelivered`` the annotated frames that never went out."""

    frames: int = 0
    fps: float = 0.0
    processed_fps: float = 0.0
    undelivered: int = 0
    latency_ms: float | None = None
    errors: int = 0
    last_error: str | None = None
    result: FrameResult | None = None
    size: tuple[int, int] | None = None  # (width, height) of the last frame
    counts_rows: int = 0


class ResultChannel:
    """Hands results from the frame-callback thread to the page thread (a lock around the newest state).

    Also keeps counts over time (one row per frame that has counts, oldest dropped beyond ``max_rows``) for the CSV
    download. ``clock`` is injectable for tests.
    """

    def __init__(self, max_rows: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._meter = RateMeter()
        self._delivered = RateMeter()
        self._undelivered = 0
        self._rows: deque[dict] = deque(maxlen=max_rows)
        self._frames = 0
        self._errors = 0
        self._last_error: str | None = None
        self._result: FrameResult | None = None
        self._size: tuple[int, int] | None = None
        self._start: float | None = None

    def publish(self, result: FrameResult, latency_ms: float, size: tuple[int, int] | None = None) -> None:
        """A frame went through the processor (whether it worked or not: ``result.error`` counts as an error)."""
        now = self._clock()
        with self._lock:
            if self._start is None:
                self._start = now
            self._frames += 1
            self._meter.tick(now, latency_ms)
            self._result = result
            self._size = size
            if result.error:
                self._errors += 1
                self._last_error = result.error
            if result.counts:
                self._rows.append({"time_s": round(now - self._start, 3), **result.counts})

    def delivered(self, sent: int = 1, dropped: int = 0, at: float | None = None) -> None:
        """``sent`` annotated frames went out to the browser (at the clock time ``at``, default now); ``dropped``
        were processed but thrown away (:class:`DeliveryMeter`)."""
        now = self._clock() if at is None else at
        with self._lock:
            for _ in range(sent):
                self._delivered.tick(now)
            self._undelivered += dropped

    def record_error(self, message: str) -> None:
        """An exception outside the processor (conversion, annotation): counted and kept for the page."""
        with self._lock:
            self._errors += 1
            self._last_error = message

    def snapshot(self) -> PanelState:
        now = self._clock()
        with self._lock:
            return PanelState(frames=self._frames, fps=self._delivered.fps(now), processed_fps=self._meter.fps(now),
                              undelivered=self._undelivered, latency_ms=self._meter.latency_ms(), errors=self._errors, last_error=self._last_error, result=self._result,
                              size=self._size, counts_rows=len(self._rows))

    def counts_rows(self) -> list[dict]:
        with self._lock:
            return list(self._rows)

    def reset(self) -> None:
        with self._lock:
            self._meter = RateMeter()
            self._delivered = RateMeter()
            self._undelivered = 0
            self._rows.clear()
            self._frames = self._errors = 0
            self._last_error = None
            self._result = None
            self._size = None
            self._start = None


class DeliveryMeter:
    """Which annotated frames went out to the browser (see the module docstring): :meth:`returned` is told of each
    frame the callback hands back, :meth:`check` (at the start of the next callback) reports to the channel the ones
    whose ``pts`` streamlit-webrtc has re-stamped since (sent), and the ones that can no longer go (dropped). Only the
    callback's thread calls it. A frame without ``pts`` cannot be followed and counts as sent."""

    give_up_s = 2.0

    def __init__(self, channel: "ResultChannel", clock: Callable[[], float] = time.monotonic) -> None:
        self.channel, self.clock = channel, clock
        self._pending: deque[tuple[Any, Any, float]] = deque()  # (frame, pts when returned, time returned)

    def returned(self, frame: Any) -> None:
        pts = getattr(frame, "pts", None)
        if pts is None:
            self.channel.delivered(1)
            return
        self._pending.append((frame, pts, self.clock()))

    def check(self) -> None:
        if not self._pending:
            return
        now = self.clock()
        sent_at = [i for i, (frame, pts, _) in enumerate(self._pending) if frame.pts != pts]
        last_sent = sent_at[-1] if sent_at else -1
        sent = dropped = 0
        keep: deque = deque()
        for i, item in enumerate(self._pending):
            if i in sent_at:
                sent += 1
            elif i < last_sent or now - item[2] > self.give_up_s:
                dropped += 1
            else:
                keep.append(item)
        self._pending = keep
        if sent or dropped:
            self.channel.delivered(sent, dropped)


def _close_quietly(processor: Any) -> None:
    try:
        processor.close()
    except Exception:  # noqa: BLE001 - closing at garbage collection must never raise
        traceback.print_exc()


class LiveSession:
    """One browser session's processor for one mode, its lock and its channel.

    The lock makes settings changes and action buttons (page thread) take effect between frames (callback thread).
    """

    def __init__(self, processor: Any, channel: ResultChannel | None = None) -> None:
        self.processor = processor
        self.lock = threading.Lock()
        self.channel = channel or ResultChannel()
        self.delivery = DeliveryMeter(self.channel)  # here, not in the handler: the page makes a handler every run
        # A live processor may run a background thread; when the browser session's state is dropped (Streamlit
        # forgets closed sessions), this object goes with it and the processor is closed.
        self._finalizer = weakref.finalize(self, _close_quietly, processor)

    def close(self) -> None:
        self._finalizer()

    def apply_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """Apply the values that differ from the processor's settings; returns what changed."""
        changes = changed_settings(self.processor.settings, values)
        if changes:
            with self.lock:
                self.processor.update_settings(**changes)
        return changes

    def run_action(self, label: str) -> None:
        with self.lock:
            self.processor.actions()[label]()

    def reset(self) -> None:
        with self.lock:
            self.processor.reset()
        self.channel.reset()


class LiveFrameHandler:
    """The ``video_frame_callback``: av frame -> RGB array -> processor -> annotate -> av frame.

    Any exception (processor, annotation, conversion) is caught, counted in the channel and the raw frame is returned,
    so the stream goes on. ``annotate`` is the mode's ``ModeSpec.annotate`` (injectable for tests);
    ``on_result(result, time_s)``, when given, also gets every result (the Live page's recording).
    """

    def __init__(self, session: LiveSession, annotate: Callable[[np.ndarray, FrameResult], np.ndarray],
                 clock: Callable[[], float] = time.perf_counter,
                 on_result: Callable[[FrameResult, float], None] | None = None) -> None:
        self.session = session
        self.annotate = annotate
        self.clock = clock
        self.on_result = on_result
        self._t0: float | None = None

    def _timestamp(self, frame) -> float:
        t = getattr(frame, "time", None)
        if t is not None:
            return float(t)
        now = self.clock()
        if self._t0 is None:
            self._t0 = now
        return now - self._t0

    def __call__(self, frame):
        import av

        start = self.clock()
        self.session.delivery.check()
        try:
            image = frame.to_ndarray(format="rgb24")
            time_s = self._timestamp(frame)
            with self.session.lock:
                result = self.session.processor.process_safely(image, time_s)
            out = self.annotate(image, result)
            new = av.VideoFrame.from_ndarray(np.ascontiguousarray(out), format="rgb24")
            new.pts, new.time_base = frame.pts, frame.time_base
            self.session.channel.publish(result, (self.clock() - start) * 1000.0, (image.shape[1], image.shape[0]))
            if self.on_result is not None:
                self.on_result(result, time_s)
            self.session.delivery.returned(new)
            return new
        except Exception as exc:  # noqa: BLE001 - an uncaught exception would turn the stream into an echo
            self.session.channel.record_error(f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
            self.session.delivery.returned(frame)
            return frame
