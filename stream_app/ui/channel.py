"""The WebRTC plumbing that is not Streamlit: the frame callback (:class:`LiveFrameHandler`), one browser session's
live stream (:class:`LiveSession`: its processor in a :class:`stream_app.live.LiveStream`, released when the stream
ends), and the thread-safe channel to the page (:class:`ResultChannel`, with its rate meters). Testable without a
browser (``tests/test_ui_helpers.py``, ``tests/test_live.py``); :mod:`.webrtc_view` draws it.

streamlit-webrtc runs the frame callback in its own thread, where ``st.*`` calls do not work, and an exception there
silently turns the stream into a plain echo (streamlit-webrtc issue 2103). So :class:`LiveFrameHandler` catches
everything, counts it in the channel and returns the raw frame; the page polls :meth:`ResultChannel.snapshot`.
The callback never waits for the mode's processor: the frame goes back at once with the latest overlay, and the
processor works on the newest frame in its own thread (:mod:`stream_app.live`). A plain ``threading.Lock`` around a
small state object is enough for the channel: the page only ever wants the newest state, never a backlog.

Where frames are dropped instead of queued, and counted for the panel: frames the analysis had no time for (the
worker keeps only the newest), camera frames that came while the callback was busy (streamlit-webrtc hands the
callback all frames queued since its last call; it processes the newest), and annotated frames the video encoder had
no time for (:mod:`.relay`).

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

import logging
import threading
import time
import traceback
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from stream_app.live import LiveStream, SessionSlots, live_slots, trim_memory
from stream_app.results import FrameResult
from stream_app.ui.controls import changed_settings
from stream_app.ui.relay import camera_frames_skipped

log = logging.getLogger(__name__)


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
    """A consistent copy of what the side panel shows."""

    frames: int = 0  # camera frames the callback handed back (each with the latest overlay)
    fps: float = 0.0  # annotated frames per second that went out to the browser (:class:`DeliveryMeter`; last 2 s)
    callback_fps: float = 0.0  # frames per second the callback handed back
    undelivered: int = 0  # handed back but never sent (streamlit-webrtc kept an older one)
    latency_ms: float | None = None  # the callback's own time per frame (median)
    analysed: int = 0  # results the mode's processor made (each on the newest frame of its time)
    analysed_fps: float = 0.0
    overlay_age_ms: float | None = None  # median age of the overlay on the shown frames
    behind_ms: float | None = None  # median: how far behind the camera frames reach the callback (LiveSession.behind_ms)
    dropped: int = 0  # video frames dropped (callback or encoder busy) instead of queued
    errors: int = 0
    last_error: str | None = None
    result: FrameResult | None = None
    size: tuple[int, int] | None = None  # (width, height) of the last frame
    counts_rows: int = 0
    refused: str | None = None  # why this stream is not analysed (over the server's cap), while it is


class ResultChannel:
    """Hands the live state from the callback and worker threads to the page thread (a lock around the newest state).

    The callback reports each frame it sends back (:meth:`shown`), the worker each result (:meth:`publish`), both
    video-frame drops (:meth:`note_dropped`). Also keeps counts over time (one row per result that has counts, oldest
    dropped beyond ``max_rows``) for the CSV download. ``clock`` is injectable for tests.
    """

    def __init__(self, max_rows: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._max_rows = max_rows
        self._clear()

    def _clear(self) -> None:
        self._shown_meter = RateMeter()
        self._delivered = RateMeter()
        self._undelivered = 0
        self._analysed_meter = RateMeter()
        self._ages: deque[float] = deque(maxlen=60)
        self._behind: deque[float] = deque(maxlen=60)
        self._rows: deque[dict] = deque(maxlen=self._max_rows)
        self._frames = self._analysed = self._dropped = self._errors = 0
        self._last_error: str | None = None
        self._result: FrameResult | None = None
        self._size: tuple[int, int] | None = None
        self._start: float | None = None
        self._refused: str | None = None

    def shown(self, latency_ms: float, size: tuple[int, int] | None = None, age_ms: float | None = None,
              dropped_before: int = 0, behind_ms: float | None = None) -> None:
        """A frame went back to the browser: the callback took ``latency_ms``; its overlay was ``age_ms`` old;
        ``dropped_before`` frames came while the callback was busy and were skipped; the frame reached the callback
        ``behind_ms`` later than the stream's quickest."""
        now = self._clock()
        with self._lock:
            self._frames += 1
            self._dropped += int(dropped_before)
            self._shown_meter.tick(now, latency_ms)
            self._size = size
            self._refused = None
            if age_ms is not None:
                self._ages.append(float(age_ms))
            if behind_ms is not None:
                self._behind.append(float(behind_ms))

    def publish(self, result: FrameResult) -> None:
        """The processor made a result (whether it worked or not: ``result.error`` counts as an error)."""
        now = self._clock()
        with self._lock:
            if self._start is None:
                self._start = now
            self._analysed += 1
            self._analysed_meter.tick(now)
            self._result = result
            if result.error:
                self._errors += 1
                self._last_error = result.error
            if result.counts:
                self._rows.append({"time_s": round(now - self._start, 3), **result.counts})

    def delivered(self, sent: int = 1, dropped: int = 0, at: float | None = None) -> None:
        """``sent`` annotated frames went out to the browser (at the clock time ``at``, default now); ``dropped``
        were handed back but thrown away (:class:`DeliveryMeter`)."""
        now = self._clock() if at is None else at
        with self._lock:
            for _ in range(sent):
                self._delivered.tick(now)
            self._undelivered += dropped

    def note_dropped(self, n: int = 1) -> None:
        """Video frames dropped after the callback (the encoder was busy; :mod:`.relay`)."""
        with self._lock:
            self._dropped += int(n)

    def refuse(self, message: str) -> None:
        """This stream's frames go back unanalysed, for ``message``'s reason (cleared by the next shown frame)."""
        now = self._clock()
        with self._lock:
            self._refused = message
            self._shown_meter.tick(now)

    def record_error(self, message: str) -> None:
        """An exception outside the processor (conversion, annotation): counted and kept for the page."""
        with self._lock:
            self._errors += 1
            self._last_error = message

    def snapshot(self) -> PanelState:
        now = self._clock()
        with self._lock:
            ages = np.fromiter(self._ages, dtype=float) if self._ages else None
            behind = float(np.median(np.fromiter(self._behind, dtype=float))) if self._behind else None
            return PanelState(frames=self._frames, fps=self._delivered.fps(now), callback_fps=self._shown_meter.fps(now),
                              undelivered=self._undelivered,
                              latency_ms=self._shown_meter.latency_ms(), analysed=self._analysed,
                              analysed_fps=self._analysed_meter.fps(now),
                              overlay_age_ms=None if ages is None else float(np.median(ages)), behind_ms=behind,
                              dropped=self._dropped, errors=self._errors, last_error=self._last_error,
                              result=self._result, size=self._size, counts_rows=len(self._rows),
                              refused=self._refused)

    def counts_rows(self) -> list[dict]:
        with self._lock:
            return list(self._rows)

    def reset(self) -> None:
        with self._lock:
            self._clear()


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
        sent_at = {i for i, (frame, pts, _) in enumerate(self._pending) if frame.pts != pts}
        last_sent = max(sent_at, default=-1)
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


class _Resources:
    """What a :class:`LiveSession` releases: its stream (processor + worker threads). Separate from the session so
    that the session's finaliser can hold it without holding the session."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.stream: LiveStream | None = None

    def release(self) -> bool:
        with self.lock:
            stream, self.stream = self.stream, None
        if stream is None:
            return False
        try:
            stream.close()  # the worker's threads end first: nothing touches the processor after this
            stream.processor.close()
        except Exception:  # noqa: BLE001 - releasing must never raise (it also runs at garbage collection)
            traceback.print_exc()
        return True


def _release(resources: _Resources) -> None:
    if resources.release():
        trim_memory()


class LiveSession:
    """One browser session's live stream for one mode: its processor (made by ``factory(settings)``), the worker
    that feeds it the newest frame, and the channel to the page. ``annotate`` and ``follower`` are the mode's
    (``ModeSpec.annotate``, ``ModeSpec.follower``; see :class:`stream_app.live.LiveStream`).

    The processor is made on the first frame (or by :meth:`ensure`, so the page can show why it cannot be made) and
    released (:meth:`release`: worker threads stopped, processor closed, memory trimmed) when the stream ends
    (STOP, the tab closed or reloaded), after ``idle_s`` seconds without a frame, or when the session is dropped.
    The next frame makes a new one. Settings changes and buttons take effect between frames. ``slots`` caps the
    server's concurrent streams (default: :func:`stream_app.live.live_slots`).
    """

    def __init__(self, factory: Callable[[dict], Any], annotate: Callable[..., np.ndarray],
                 settings: dict | None = None, channel: ResultChannel | None = None,
                 slots: SessionSlots | None = None, idle_s: float = 10.0, name: str = "live",
                 follower: Callable[[], Any] | None = None) -> None:
        self._factory = factory
        self.annotate = annotate
        self.follower = follower
        self.settings = dict(settings or {})
        self.channel = channel or ResultChannel()
        self.delivery = DeliveryMeter(self.channel)  # here, not in the handler: the page makes a handler every run
        self.slots = slots if slots is not None else live_slots()
        self.idle_s = float(idle_s)
        self.name = name
        self.action_labels: list[str] = []
        self.last_frame: float | None = None  # time.monotonic() of the last frame
        self._offset: float | None = None  # smallest (arrival - camera time) of this stream, seconds
        self._resources = _Resources()
        self._finalizer = weakref.finalize(self, _release, self._resources)
        _IDLE_WATCH.add(self)

    # ---- the stream and its processor ------------------------------------------------------------------------
    def ensure(self) -> LiveStream:
        """This session's stream, made (with a new processor) if there is none; raises what the factory raises."""
        res = self._resources
        with res.lock:
            if res.stream is None:
                processor = self._factory(dict(self.settings))
                self.action_labels = list(processor.actions())
                res.stream = LiveStream(processor, self.annotate, on_result=self.channel.publish, name=self.name,
                                        follower=self.follower() if self.follower is not None else None)
            return res.stream

    def check(self) -> None:
        """Make a processor with the current settings and close it again: raises what :meth:`ensure` would raise
        (a bad setting, a missing model), and learns the mode's button labels, before any frame comes."""
        processor = self._factory(dict(self.settings))
        try:
            self.action_labels = list(processor.actions())
        finally:
            processor.close()

    @property
    def processor(self) -> Any | None:
        """The current processor (None while released)."""
        stream = self._resources.stream
        return None if stream is None else stream.processor

    @property
    def active(self) -> bool:
        return self._resources.stream is not None

    def release(self) -> None:
        """End this session's stream: worker threads stopped, processor closed, its slot given back. The channel
        (panel state, counts history) stays for the page."""
        self.slots.release(self)
        self._offset = None
        _release(self._resources)

    def on_ended(self) -> None:
        """streamlit-webrtc's ``on_video_ended`` (STOP, the tab closed or reloaded): released in a thread of its own,
        since the call comes from the WebRTC event loop, which must not wait for a running step (a tiled detection
        can take seconds) while other sessions' video flows through it."""
        threading.Thread(target=self.release, name=f"{self.name}-release", daemon=True).start()

    def behind_ms(self, camera_s: float | None, arrival_s: float) -> float | None:
        """How far behind the camera a frame reaches the callback, beyond the stream's best: arrival time minus the
        camera's timestamp (RTP, from the browser's capture clock), minus the smallest such difference of this
        stream. Frames queued anywhere between the camera and the callback show here; 0 when none waits."""
        if camera_s is None:
            return None
        offset = arrival_s - float(camera_s)
        if self._offset is None or offset < self._offset or offset - self._offset > 60.0:  # new stream: new clock
            self._offset = offset
        return (offset - self._offset) * 1000.0

    def close(self) -> None:
        """Release now and for good (also what garbage collection does)."""
        self.slots.release(self)
        self._finalizer()

    def release_if_idle(self, now: float) -> bool:
        if self.active and self.last_frame is not None and now - self.last_frame > self.idle_s:
            self.release()
            return True
        return False

    # ---- the page's side --------------------------------------------------------------------------------------
    def _with_processor(self, fn: Callable[[Any, LiveStream], Any]) -> Any:
        """``fn(processor, stream)`` between frames. The resources' lock is not held while waiting for the running
        step: the frame callback takes it on every frame (:meth:`ensure`), and a step can take seconds."""
        stream = self._resources.stream
        if stream is None:
            return None
        with stream.worker.exclusive() as processor:
            return fn(processor, stream)

    def apply_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """Apply the values that differ from the processor's settings (between frames); returns what changed. The
        values are kept for the next processor this session makes."""
        processor = self.processor
        if processor is None:
            self.settings.update(values)
            return {}
        changes = changed_settings(processor.settings, values)
        if changes:
            self._with_processor(lambda p, _: p.update_settings(**changes))
        self.settings.update(changes)
        return changes

    def run_action(self, label: str) -> None:
        self._with_processor(lambda p, _: p.actions()[label]())

    def reset(self) -> None:
        def reset(processor, stream):
            processor.reset()
            stream.forget()

        self._with_processor(reset)
        self.channel.reset()


class _IdleWatch:
    """One daemon thread that releases live sessions whose frames stopped (a browser gone without a word)."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.every_s = every_s
        self._sessions: "weakref.WeakSet[LiveSession]" = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, session: LiveSession) -> None:
        with self._lock:
            self._sessions.add(session)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-idle-watch", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.every_s)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Release the idle sessions (a function of its own: no reference to a session outlives the sweep)."""
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            try:
                session.release_if_idle(now)
            except Exception:  # noqa: BLE001
                log.exception("releasing an idle live session failed")


_IDLE_WATCH = _IdleWatch()


BUSY_MESSAGE = ("This server already runs {n} live session(s) (STREAM_APP_MAX_LIVE_SESSIONS={n}): this stream is "
                "not analysed until one of them ends.")


def refused_frame(image: np.ndarray, message: str) -> np.ndarray:
    """The camera frame, darkened, with ``message`` on it: what a stream over the cap shows instead of freezing."""
    import textwrap

    import cv2

    out = (image.astype(np.uint16) * 2 // 5).astype(np.uint8)
    h, w = out.shape[:2]
    scale = max(0.4, min(w, h) / 900.0)
    chars = max(20, int(w / (scale * 20)))
    y = int(h * 0.3)
    for line in textwrap.wrap(message, chars):
        cv2.putText(out, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        y += int(34 * scale) + 4
    return out


class LiveFrameHandler:
    """The frame callback: av frame -> RGB array -> the session's :class:`~stream_app.live.LiveStream` (the frame
    goes back at once with the latest overlay; the processor gets the newest frame in its own thread) -> av frame.

    Use :meth:`queued` as streamlit-webrtc's ``queued_video_frames_callback``: it gets every frame that came since its
    last call, sends back the newest and counts the others as dropped (``__call__`` takes one frame). Any exception
    (conversion, annotation, a processor that cannot be made) is caught, counted in the channel and the raw frame is
    returned, so the stream goes on. A session over the server's cap gets its frames back darkened with a message.
    Each frame handed back goes to the session's :class:`DeliveryMeter`, which learns later whether it went out.
    """

    def __init__(self, session: LiveSession, clock: Callable[[], float] = time.perf_counter,
                 on_result: Callable[[FrameResult, float], None] | None = None) -> None:
        self.session = session
        self.clock = clock
        self.on_result = on_result  # every shown frame's result (the overlay drawn on it): the Live page's recording
        self._t0: float | None = None

    def _timestamp(self, frame) -> float:
        t = getattr(frame, "time", None)
        if t is not None:
            return float(t)
        now = self.clock()
        if self._t0 is None:
            self._t0 = now
        return now - self._t0

    async def queued(self, frames: list) -> list:
        """streamlit-webrtc's ``queued_video_frames_callback``; the camera frames the relay skipped in front of these
        (:func:`stream_app.ui.relay.camera_frames_skipped`) count as dropped too."""
        skipped = sum(camera_frames_skipped(f) for f in frames)
        return [self.handle(frames[-1], dropped_before=len(frames) - 1 + skipped)]

    def __call__(self, frame):
        return self.handle(frame)

    def handle(self, frame, dropped_before: int = 0):
        import av

        session = self.session
        start = self.clock()
        session.delivery.check()
        session.last_frame = time.monotonic()
        behind = session.behind_ms(getattr(frame, "time", None), session.last_frame)
        out = frame
        try:
            image = frame.to_ndarray(format="rgb24")
            if not session.slots.hold(session):
                message = BUSY_MESSAGE.format(n=session.slots.limit)
                if session.active:
                    session.release()
                session.channel.refuse(message)
                out = self._frame(av, refused_frame(image, message), frame)
                return out
            time_s = self._timestamp(frame)
            shown = session.ensure().show(image, time_s)
            out = frame if shown.image is image else self._frame(av, shown.image, frame)
            session.channel.shown((self.clock() - start) * 1000.0, (image.shape[1], image.shape[0]), shown.age_ms,
                                  dropped_before, behind)
            if self.on_result is not None and shown.result is not None:
                self.on_result(shown.result, time_s)
            return out
        except Exception as exc:  # noqa: BLE001 - an uncaught exception would turn the stream into an echo
            session.channel.record_error(f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
            out = frame
            return out
        finally:
            session.delivery.returned(out)

    def _frame(self, av, image: np.ndarray, like):
        new = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        new.pts, new.time_base = like.pts, like.time_base
        # The relay before the encoder counts the frames it drops against this session (weakly: a frame held there
        # must not keep a closed session alive).
        new.opaque = weakref.WeakMethod(self.session.channel.note_dropped)
        return new
