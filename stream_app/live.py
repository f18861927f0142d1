"""The live path every mode shares: camera frames go back at once, the analysis takes the newest frame.

A camera sends ~30 frames a second; a mode's processor may need 20-60 ms a frame on 2 shared cores. Queuing frames
for it would put the shown video further behind the camera each second (the video of two sessions once lagged the
panel by ~20 s). So the frame callback never waits for the processor:

* :class:`LatestFrameWorker` runs the processor in background thread(s) on the newest frame only. A frame that
  comes while the processor is busy replaces the waiting one (the older is dropped and counted). A ``two_step``
  mode (fingerspelling: MediaPipe's hand finder, then the letter classifier) runs as a two-stage pipeline: step one
  of frame t+1 beside step two of frame t, in two threads, so the two cores work on one stream. Errors are counted
  and the last one kept; settings changes and buttons take effect between frames (:meth:`~LatestFrameWorker.exclusive`).
* :class:`LiveStream` is one stream's loop: each camera frame is handed to the worker and goes back at once with
  the latest result drawn on it (annotators draw in original-frame pixels, so a result fits a newer frame of the same
  size); it says how old that overlay is (camera time of the frame shown minus that of the frame analysed).
  The browser page (:mod:`stream_app.ui.channel`) and ``bench --live`` both use it.
* :class:`SessionSlots` caps the live streams of one server (``STREAM_APP_MAX_LIVE_SESSIONS``): a stream holds a
  slot while its frames arrive; one over the cap is refused with a message instead of sharing the CPU so thinly that
  every stream stutters.

Nothing here imports Streamlit or WebRTC; processors stay plain per-frame functions (:mod:`stream_app.modes.base`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from stream_app.results import FrameResult

log = logging.getLogger(__name__)

# The analysis threads run this much nicer than the rest of the server: when the CPU is short (several sessions,
# or the browser on the same cores), the video (decoding, the callback, encoding) goes first, and the overlay gets
# older instead of the video stuttering. On idle cores it changes nothing.
ANALYSIS_NICE = 5


@dataclass(frozen=True)
class WorkerStats:
    """A consistent copy of a worker's counters: frames handed in, results made, frames dropped (a newer one came
    while the processor was busy, or the worker was reset or closed), results that carry an error (and the last
    error). Every frame handed in is processed, dropped, or still in the worker."""

    submitted: int = 0
    processed: int = 0
    dropped: int = 0
    errors: int = 0
    last_error: str | None = None


def nice_this_thread(step: int) -> bool:
    """Lower the calling thread's priority by ``step`` (Linux: nice is per thread); False where that is not possible."""
    if step <= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
        return True
    except OSError:
        log.debug("could not lower a thread's priority", exc_info=True)
        return False


class LatestFrameWorker:
    """Runs ``processor`` on the newest submitted frame in background thread(s); :meth:`submit` never waits for it.

    One thread per step: one for a plain processor, two for a ``two_step`` one (``pipelined=False`` forces one).
    Between the steps a one-frame slot hands over; step one waits while step two has not taken the last frame (so
    no work is thrown away: frames are dropped only at the door, before any work). ``on_result(result)`` is called
    in the worker's thread for every result (the page's channel); exceptions in it are logged, never raised.

    The processor is touched only by the worker's threads, one step each, and by callers inside
    :meth:`exclusive` (which waits for the running steps to finish and holds them off). :meth:`close` stops the
    threads; the processor itself belongs to the caller.
    """

    def __init__(self, processor: Any, *, pipelined: bool | None = None,
                 on_result: Callable[[FrameResult], None] | None = None, name: str = "live",
                 nice: int = ANALYSIS_NICE) -> None:
        self.processor = processor
        two_step = bool(getattr(processor, "two_step", False))
        self.pipelined = two_step if pipelined is None else (bool(pipelined) and two_step)
        self.on_result = on_result
        self.name = name
        self.nice = int(nice)
        self._cv = threading.Condition()
        self._pending: tuple[np.ndarray, float | None] | None = None
        self._staged: Any = None  # step one's output waiting for step two
        self._latest: FrameResult | None = None
        self._step_locks = [threading.Lock() for _ in range(2 if self.pipelined else 1)]
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._submitted = self._processed = self._dropped = self._errors = 0
        self._last_error: str | None = None

    # ---- the caller's side --------------------------------------------------------------------------------------
    def submit(self, frame: np.ndarray, time_s: float | None) -> None:
        """Hand over the newest frame; a frame still waiting is dropped (counted). Returns at once. The worker reads
        the array later: do not write into it afterwards."""
        with self._cv:
            if self._closed:
                return
            if self._pending is not None:
                self._dropped += 1
            self._pending = (frame, time_s)
            self._submitted += 1
            if not self._threads:
                self._start()
            self._cv.notify_all()

    def latest(self) -> FrameResult | None:
        """The newest result (None before the first one)."""
        with self._cv:
            return self._latest

    def stats(self) -> WorkerStats:
        with self._cv:
            return WorkerStats(self._submitted, self._processed, self._dropped, self._errors, self._last_error)

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the processor between frames: waits for the running step(s) to finish and keeps the worker off it
        until the block ends (settings changes, buttons, reset)."""
        with contextlib.ExitStack() as stack:
            for lock in self._step_locks:  # always in the same order: no deadlock between two callers
                stack.enter_context(lock)
            yield self.processor

    def forget(self) -> None:
        """Drop the waiting frames and the latest result (after a reset: no old overlay on the new state)."""
        with self._cv:
            self._discard_waiting()
            self._latest = None
            self._cv.notify_all()

    def _discard_waiting(self) -> None:
        self._dropped += (self._pending is not None) + (self._staged is not None)
        self._pending = self._staged = None

    def close(self, timeout: float = 10.0) -> None:
        """Stop the threads (a step that runs is finished first) and drop the frames they held. Idempotent."""
        with self._cv:
            self._closed = True
            self._discard_waiting()
            self._cv.notify_all()
            threads, self._threads = self._threads, []
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
                if thread.is_alive():
                    log.warning("%s did not stop within %.0f s", thread.name, timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def threads(self) -> list[threading.Thread]:
        with self._cv:
            return list(self._threads)

    # ---- the worker's side --------------------------------------------------------------------------------------
    def _start(self) -> None:
        targets = [self._run_first, self._run_second] if self.pipelined else [self._run_whole]
        for i, target in enumerate(targets):
            thread = threading.Thread(target=self._niced, args=(target,), name=f"{self.name}-step{i + 1}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _niced(self, target: Callable[[], None]) -> None:
        """Run ``target`` in this thread at ``nice`` above the process's priority (threads the processor starts from
        here, e.g. MediaPipe's, inherit it)."""
        nice_this_thread(self.nice)
        target()

    def _take_pending(self):
        with self._cv:
            while self._pending is None and not self._closed:
                self._cv.wait()
            if self._closed:
                return None
            job, self._pending = self._pending, None
            return job

    def _publish(self, result: FrameResult) -> None:
        with self._cv:
            self._processed += 1
            if result.error:
                self._errors += 1
                self._last_error = result.error
            if self._closed:
                return
            self._latest = result
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:  # noqa: BLE001 - the page's bookkeeping must not stop the analysis
                log.exception("on_result failed")

    def _run_whole(self) -> None:
        while (job := self._take_pending()) is not None:
            with self._step_locks[0]:
                result = self.processor.process_safely(*job)
            self._publish(result)

    def _run_first(self) -> None:
        while (job := self._take_pending()) is not None:
            with self._step_locks[0]:
                staged = self.processor.first_step(*job)
            with self._cv:
                while self._staged is not None and not self._closed:  # step two has not taken the last one
                    self._cv.wait()
                if self._closed:
                    self._dropped += 1
                    return
                self._staged = staged
                self._cv.notify_all()

    def _run_second(self) -> None:
        while True:
            with self._cv:
                while self._staged is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                staged, self._staged = self._staged, None
                self._cv.notify_all()
            with self._step_locks[1]:
                result = self.processor.second_step(staged)
            self._publish(result)


@dataclass(frozen=True)
class Shown:
    """One camera frame on its way back: the frame with the overlay drawn, the result drawn (None before the first),
    whether that result is one this stream has not shown before, and its age in ms (camera time of this frame minus
    that of the frame the result came from)."""

    image: np.ndarray
    result: FrameResult | None
    fresh: bool
    age_ms: float | None


class LiveStream:
    """One live stream: every frame goes to the worker and back at once with the latest result drawn on it.

    ``annotate(frame, result, scale=1.0)`` draws a result (the mode's ``ModeSpec.annotate``); a result from a frame of
    another size (the browser lowered the camera's resolution under load) is drawn scaled, or not at all when the
    shape changed. ``follower`` (the mode's ``ModeSpec.follower()``, optional) sees every frame and carries the result
    to it before drawing (leukocyte: boxes moved with the slide). Before the first result the frame goes back as it
    came. :meth:`show` is called from one thread (the frame callback); the worker runs in its own.
    """

    def __init__(self, processor: Any, annotate: Callable[..., np.ndarray], *, pipelined: bool | None = None,
                 on_result: Callable[[FrameResult], None] | None = None, name: str = "live",
                 nice: int = ANALYSIS_NICE, follower: Any = None) -> None:
        self.worker = LatestFrameWorker(processor, pipelined=pipelined, on_result=on_result, name=name, nice=nice)
        self.annotate = annotate
        self.follower = follower
        self._last: FrameResult | None = None
        self._sizes: OrderedDict[float, tuple[int, int]] = OrderedDict()  # camera time -> (h, w) of recent frames

    @property
    def processor(self) -> Any:
        return self.worker.processor

    def show(self, image: np.ndarray, time_s: float) -> Shown:
        """Submit ``image`` (camera time ``time_s``, seconds) and return it with the latest overlay."""
        self._sizes[time_s] = image.shape[:2]
        while len(self._sizes) > 256:
            self._sizes.popitem(last=False)
        self.worker.submit(image, time_s)
        if self.follower is not None:
            self._follow(lambda: self.follower.see(image, time_s))
        result = self.worker.latest()
        if result is None:
            return Shown(image, None, False, None)
        fresh = result is not self._last
        self._last = result
        age = None if result.time_s is None else max(0.0, (time_s - result.time_s) * 1000.0)
        if self.follower is not None:
            result = self._follow(lambda: self.follower.carry(result, time_s)) or result
        size = self._sizes.get(result.time_s, image.shape[:2])
        if size == image.shape[:2]:
            return Shown(self.annotate(image, result), result, fresh, age)
        scale = image.shape[1] / size[1]
        if abs(image.shape[0] / size[0] - scale) > 0.02 * scale:  # another shape: the boxes would not fit
            return Shown(image, result, fresh, age)
        return Shown(self.annotate(image, result, scale), result, fresh, age)

    def _follow(self, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except Exception:  # noqa: BLE001 - the overlay is drawn where it was found, and the follower is dropped
            log.exception("the overlay follower failed; results are drawn where they were found from now on")
            self.follower = None
            return None

    def forget(self) -> None:
        self.worker.forget()
        self._last = None

    def close(self) -> None:
        self.worker.close()


# ---- a cap on concurrent live streams --------------------------------------------------------------------------

class SessionSlots:
    """At most ``limit`` live streams at once (``limit <= 0``: no cap). A stream holds its slot while its frames
    arrive: every frame renews a lease of ``lease_s`` seconds; the slot is given back by :meth:`release` (the stream
    ended) or when the lease runs out (a browser that vanished without a word). Thread-safe; ``clock`` injectable."""

    def __init__(self, limit: int, lease_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = int(limit)
        self.lease_s = float(lease_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._leases: dict[int, tuple[weakref.ref, float]] = {}

    def _expire(self, now: float) -> None:
        for key, (ref, until) in list(self._leases.items()):
            if until < now or ref() is None:
                del self._leases[key]

    def hold(self, owner: object) -> bool:
        """Take or renew ``owner``'s slot; False when all slots are held by others."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            key = id(owner)
            held = key in self._leases and self._leases[key][0]() is owner
            if not held and 0 < self.limit <= len(self._leases):
                return False
            self._leases[key] = (weakref.ref(owner), now + self.lease_s)
            return True

    def holds(self, owner: object) -> bool:
        with self._lock:
            self._expire(self._clock())
            entry = self._leases.get(id(owner))
            return entry is not None and entry[0]() is owner

    def release(self, owner: object) -> None:
        with self._lock:
            entry = self._leases.get(id(owner))
            if entry is not None and entry[0]() is owner:
                del self._leases[id(owner)]

    def in_use(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._leases)

    def full_for(self, owner: object) -> bool:
        """Would ``owner`` be refused now?"""
        with self._lock:
            self._expire(self._clock())
            entry = self._leases.get(id(owner))
            held = entry is not None and entry[0]() is owner
            return not held and 0 < self.limit <= len(self._leases)


_SLOTS: SessionSlots | None = None
_SLOTS_LOCK = threading.Lock()


def live_slots() -> SessionSlots:
    """The server's slots, sized by ``STREAM_APP_MAX_LIVE_SESSIONS`` (read once per process)."""
    global _SLOTS
    with _SLOTS_LOCK:
        if _SLOTS is None:
            from stream_app.config import max_live_sessions

            _SLOTS = SessionSlots(max_live_sessions())
        return _SLOTS


# ---- memory: a server where sessions come and go ----------------------------------------------------------------

def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def trim_memory() -> bool:
    """Give freed heap memory back to the system (glibc ``malloc_trim``): called when a live session is released.
    False where there is no glibc."""
    libc = _libc()
    try:
        return bool(libc.malloc_trim(0)) if libc is not None else False
    except AttributeError:
        return False
