"""The live path (stream_app.live): the worker takes the newest frame and drops the rest, counts errors, keeps its
processor to one thread per step, pipelines two-step modes, stops its threads; the stream draws the latest result on
every frame and says how old it is; the server's cap on live sessions. Real processors where they run fast enough
(motion); small recording processors where a test must control time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from stream_app.live import LatestFrameWorker, LiveStream, SessionSlots
from stream_app.modes import get_mode
from stream_app.modes.base import Processor
from stream_app.results import FrameResult
from stream_app.synthetic import moving_shapes


def _frame(i: int) -> np.ndarray:
    frame = np.zeros((24, 32, 3), np.uint8)
    frame[0, 0, 0] = i % 256
    return frame


def _wait(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Gate(Processor):
    """Processes a frame only when the test opens the gate: the test decides when the worker is busy."""

    mode = "gate"

    def __init__(self) -> None:
        super().__init__(None, live=True)
        self.seen: list[float] = []
        self.entered = threading.Event()
        self.go = threading.Semaphore(0)

    def _process(self, frame, timestamp_s):
        self.entered.set()
        assert self.go.acquire(timeout=20)
        self.seen.append(timestamp_s)
        return FrameResult(mode=self.mode)


def test_worker_processes_the_newest_frame_and_drops_the_ones_that_came_meanwhile():
    proc = Gate()
    worker = LatestFrameWorker(proc)
    try:
        worker.submit(_frame(0), 0.0)
        assert proc.entered.wait(10)  # the worker holds frame 0 and waits at the gate
        for i in range(1, 6):  # five frames come while it is busy: only the newest may wait
            worker.submit(_frame(i), i / 30)
        proc.go.release()  # frame 0 done; the worker takes the newest waiting frame (5)
        proc.go.release()
        _wait(lambda: worker.stats().processed == 2)
        assert proc.seen == [0.0, 5 / 30]
        stats = worker.stats()
        assert (stats.submitted, stats.dropped, stats.errors) == (6, 4, 0)
        assert worker.latest().time_s == 5 / 30
    finally:
        proc.go.release(10)
        worker.close()


class Flaky(Processor):
    mode = "flaky"

    def _process(self, frame, timestamp_s):
        if int(frame[0, 0, 0]) % 2:
            raise RuntimeError(f"bad frame {int(frame[0, 0, 0])}")
        return FrameResult(mode=self.mode)


def test_worker_counts_errors_keeps_the_last_and_goes_on():
    published = []
    worker = LatestFrameWorker(Flaky(None, live=True), on_result=published.append)
    try:
        for i in range(6):
            worker.submit(_frame(i), i / 30)
            _wait(lambda i=i: worker.stats().processed == i + 1)  # one at a time: none dropped
        stats = worker.stats()
        assert (stats.processed, stats.errors, stats.dropped) == (6, 3, 0)
        assert stats.last_error == "RuntimeError: bad frame 5"
        assert [r.error is not None for r in published] == [False, True] * 3
        assert published[-1].time_s == 5 / 30  # an error result still says which frame it is
    finally:
        worker.close()


@dataclass
class Knob:
    value: int = 0


class Exclusive(Processor):
    """Fails the test if two threads are inside one step at once, or a settings change overlaps a step."""

    mode = "exclusive"
    two_step = True

    def __init__(self) -> None:
        super().__init__(Knob(), live=True)
        self.inside = [0, 0]
        self.overlaps = []  # (frame time of step 1, frame time of step 2) seen running at the same moment
        self.violations = []
        self.mark = threading.Lock()
        self.last_two = None

    def _enter(self, step):
        with self.mark:
            self.inside[step] += 1
            if self.inside[step] > 1:
                self.violations.append(f"two threads in step {step + 1}")

    def _leave(self, step):
        with self.mark:
            self.inside[step] -= 1

    def update_settings(self, **changes):
        with self.mark:
            if any(self.inside):
                self.violations.append("settings changed during a step")
        super().update_settings(**changes)

    def _first(self, frame, timestamp_s):
        self._enter(0)
        try:
            with self.mark:
                if self.inside[1]:
                    self.overlaps.append((timestamp_s, self.last_two))
            time.sleep(0.004)
            return self.settings.value
        finally:
            self._leave(0)

    def _second(self, frame, timestamp_s, first):
        self._enter(1)
        try:
            with self.mark:
                self.last_two = timestamp_s
            time.sleep(0.006)
            return FrameResult(mode=self.mode, counts={"knob": first})
        finally:
            self._leave(1)

    def _process(self, frame, timestamp_s):
        return self._second(frame, timestamp_s, self._first(frame, timestamp_s))


@pytest.mark.parametrize("pipelined", [False, True])
def test_worker_is_thread_safe_under_concurrent_submitters_and_settings_changes(pipelined):
    proc = Exclusive()
    worker = LatestFrameWorker(proc, pipelined=pipelined)
    stop = threading.Event()
    readers_saw = []

    def submitter(k):
        i = 0
        while not stop.is_set():
            worker.submit(_frame(i), k + i / 1000)
            i += 1
            time.sleep(0.0005)

    def reader():
        while not stop.is_set():
            stats = worker.stats()
            readers_saw.append(stats)
            assert stats.processed + stats.dropped <= stats.submitted

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(3)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        for value in range(1, 40):
            with worker.exclusive() as p:
                p.update_settings(value=value)
            time.sleep(0.003)
    finally:
        stop.set()
        for t in threads:
            t.join()
        worker.close()
    stats = worker.stats()
    assert proc.violations == []
    assert stats.processed > 10 and stats.dropped > 0 and stats.errors == 0
    assert stats.processed + stats.dropped == stats.submitted  # closed: none left in flight
    assert readers_saw
    assert worker.pipelined is pipelined
    if pipelined:  # step one of a newer frame ran while step two worked on an older one
        assert proc.overlaps
    else:
        assert not proc.overlaps


def test_two_step_results_match_the_one_step_results():
    """The pipeline changes when the steps run, not what they compute (two-step motion-free toy: counts = knob)."""
    proc = Exclusive()
    worker = LatestFrameWorker(proc)
    try:
        for i in range(5):
            worker.submit(_frame(i), float(i))
            _wait(lambda i=i: worker.stats().processed == i + 1)
        result = worker.latest()
        assert result.time_s == 4.0 and result.counts == {"knob": 0} and result.timings_ms["total"] > 0
        direct = proc.process(_frame(9), 9.0)
        assert direct.counts == result.counts
    finally:
        worker.close()


def test_a_failing_first_step_is_the_frames_error():
    class BadFirst(Exclusive):
        def _first(self, frame, timestamp_s):
            raise ValueError("no hand model")

    worker = LatestFrameWorker(BadFirst())
    try:
        worker.submit(_frame(0), 0.0)
        _wait(lambda: worker.stats().processed == 1)
        assert worker.latest().error == "ValueError: no hand model" and worker.latest().time_s == 0.0
        assert worker.stats().errors == 1
    finally:
        worker.close()


def test_close_stops_the_threads_and_later_frames_are_ignored():
    proc = Exclusive()
    worker = LatestFrameWorker(proc)
    assert worker.threads() == []  # no thread before the first frame
    worker.submit(_frame(0), 0.0)
    threads = worker.threads()
    assert len(threads) == 2 and all(t.is_alive() for t in threads)
    worker.close()
    assert not any(t.is_alive() for t in threads)
    worker.submit(_frame(1), 1.0)
    assert worker.threads() == [] and worker.stats().submitted == 1
    worker.close()  # twice is fine


def test_live_stream_sends_every_frame_back_at_once_with_the_latest_overlay():
    """The real motion mode: frames come back without waiting; the overlay is the newest result's, drawn on the
    newer frame, and its age is the camera-time difference."""
    spec = get_mode("motion")
    stream = LiveStream(spec.create(live=True), spec.annotate)
    frames = list(moving_shapes(40, 320, 240, seed=2))
    try:
        first = stream.show(frames[0], 0.0)
        assert first.result is None and first.image is frames[0] and first.age_ms is None
        _wait(lambda: stream.worker.latest() is not None)
        shown = [stream.show(frame, i / 30) for i, frame in enumerate(frames[1:], start=1)]
        assert all(s.result is not None for s in shown)
        for i, s in enumerate(shown, start=1):
            assert s.age_ms == pytest.approx((i / 30 - s.result.time_s) * 1000.0)
            assert s.age_ms >= 0 and s.image.shape == frames[i].shape
            assert not np.array_equal(s.image, frames[i])  # the status label at least
        assert sum(s.fresh for s in shown) >= 1
    finally:
        stream.close()


def test_session_slots_cap_leases_and_release():
    now = [0.0]
    slots = SessionSlots(2, lease_s=5.0, clock=lambda: now[0])

    class Owner:
        pass

    a, b, c = Owner(), Owner(), Owner()
    assert slots.hold(a) and slots.hold(b)
    assert not slots.hold(c) and slots.full_for(c) and not slots.full_for(a)
    assert slots.hold(a)  # renewing is not taking a second slot
    slots.release(b)
    assert slots.hold(c) and slots.in_use() == 2
    now[0] = 4.0
    assert slots.hold(c)  # c renews; a's lease (taken at 0) runs out at 5
    now[0] = 6.0
    assert slots.in_use() == 1 and slots.hold(b)  # a vanished without a word: its slot is free again
    del c
    import gc

    gc.collect()
    assert slots.in_use() == 1  # a collected owner holds nothing
    unlimited = SessionSlots(0)
    owners = [Owner() for _ in range(10)]
    assert all(unlimited.hold(o) for o in owners)


def test_max_live_sessions_setting(monkeypatch):
    from stream_app.config import DEFAULT_MAX_LIVE_SESSIONS, max_live_sessions

    monkeypatch.delenv("STREAM_APP_MAX_LIVE_SESSIONS", raising=False)
    assert max_live_sessions() == DEFAULT_MAX_LIVE_SESSIONS
    monkeypatch.setenv("STREAM_APP_MAX_LIVE_SESSIONS", "5")
    assert max_live_sessions() == 5
    monkeypatch.setenv("STREAM_APP_MAX_LIVE_SESSIONS", "many")
    with pytest.raises(ValueError, match="STREAM_APP_MAX_LIVE_SESSIONS"):
        max_live_sessions()


def test_an_overlay_from_another_resolution_is_drawn_scaled_or_not_at_all():
    """The browser lowers the camera's resolution under load: the latest result (from a 640x480 frame) is drawn on a
    320x240 frame at half scale, and not at all on a frame of another shape."""
    calls = []

    def annotate(image, result, scale=1.0):
        calls.append((image.shape[:2], scale))
        return image + 1

    stream = LiveStream(Flaky(None, live=True), annotate)
    try:
        big = np.zeros((480, 640, 3), np.uint8)
        stream.show(big, 0.0)
        _wait(lambda: stream.worker.latest() is not None)
        stream.worker.close()  # keep the 640x480 result as the latest
        small = np.zeros((240, 320, 3), np.uint8)
        assert stream.show(small, 1 / 30).image[0, 0, 0] == 1
        square = np.zeros((320, 320, 3), np.uint8)
        assert stream.show(square, 2 / 30).image is square
        assert stream.show(big, 3 / 30).image[0, 0, 0] == 1
        assert calls == [((240, 320), 0.5), ((480, 640), 1.0)]
    finally:
        stream.close()


def test_analysis_threads_run_nicer_than_the_rest_of_the_server():
    import os

    seen = []

    class Nice(Processor):
        mode = "nice"

        def _process(self, frame, timestamp_s):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return FrameResult(mode=self.mode)

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = LatestFrameWorker(Nice(None, live=True))
    try:
        worker.submit(_frame(0), 0.0)
        _wait(lambda: seen)
        assert seen == [min(19, mine + 5)]
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller is untouched
    finally:
        worker.close()


def test_the_follower_sees_every_frame_and_carries_the_result_before_it_is_drawn():
    drawn = []

    class Follower:
        def __init__(self):
            self.seen = []

        def see(self, frame, time_s):
            self.seen.append(time_s)

        def carry(self, result, time_s):
            if time_s >= 3 / 30:
                raise RuntimeError("lost")  # a follower that fails is dropped; results are drawn as found
            return FrameResult(mode="carried", time_s=result.time_s)

    follower = Follower()
    stream = LiveStream(Flaky(None, live=True), lambda image, result, scale=1.0: drawn.append(result.mode) or image,
                        follower=follower)
    try:
        stream.show(_frame(0), 0.0)
        _wait(lambda: stream.worker.latest() is not None)
        stream.worker.close()
        drawn.clear()  # a quick worker may have had the result ready for the first frame already
        stream.show(_frame(2), 1 / 30)
        stream.show(_frame(2), 3 / 30)
        stream.show(_frame(2), 4 / 30)
        assert follower.seen == [0.0, 1 / 30, 3 / 30]  # dropped after its failure
        assert drawn == ["carried", "flaky", "flaky"] and stream.follower is None
    finally:
        stream.close()
