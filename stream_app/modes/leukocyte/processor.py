"""Leukocyte mode: white blood cells (and red cells, platelets) boxed on live microscope video, each WBC counted once.

Pipeline per frame: downscale to at most ``max_side`` (4K input stays cheap; boxes come back in original pixels) ->
slide motion by phase correlation (:mod:`.tracking`) -> detector (Faster R-CNN on MobileNetV2, :mod:`.model`; by
default on the paper's CLAHE + CIELAB input, which also serves faint / unstained smears; ``clahe_lab=False`` picks
the plain-RGB model) -> WBC tracks in slide coordinates.

* ``live=False`` (files, CLI, tests): the detector runs synchronously on every ``detect_every``-th frame, so results
  are deterministic.
* ``live=True`` (camera): the detector never blocks the stream. A background thread takes the newest frame, frames
  flow on at the camera's rate, and the tracker carries boxes with the measured slide motion until the next result.

Counts: ``WBC in view``, ``WBC unique`` (since the last reset; a cell counts once it was detected ``min_hits`` times),
``WBC unique min`` and ``WBC unique max`` (equal to ``WBC unique`` while the count is certain; otherwise the true number
lies between them and ``warning`` says why: the slide position was lost and not found again, or cells crossed the view
in fewer detections than ``min_hits``; :mod:`.tracking`), ``RBC in view``, ``Platelets in view``. Timings:
``preprocess`` (resize + motion), ``detect`` (sync; in live mode the latest background run), ``track``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from stream_app.frames import fit_within
from stream_app.modes.base import Processor, setting
from stream_app.results import Detection, Detections, FrameResult

log = logging.getLogger(__name__)

NOTICE = "Research prototype: not a diagnostic device."


@dataclass
class LeukocyteSettings:
    clahe_lab: bool = setting(True, "CLAHE on each RGB channel + CIELAB (the paper's preprocessing, for faint / "
                                    "unstained smears too) and the model trained on it; off: the plain-RGB model")
    stain_normalise: bool = setting(False, "First match the smear's colours to the training stain (Reinhard colour "
                                           "transfer): for faint, unstained or differently stained smears")
    wbc_threshold: float = setting(0.5, "Lowest WBC score shown and counted", min=0.05, max=0.99, step=0.01)
    rbc_threshold: float = setting(0.5, "Lowest RBC score shown", min=0.05, max=0.99, step=0.01)
    platelet_threshold: float = setting(0.4, "Lowest platelet score shown", min=0.05, max=0.99, step=0.01)
    show_rbc: bool = setting(True, "Draw red blood cells")
    show_platelets: bool = setting(True, "Draw platelets")
    detect_every: int = setting(1, "Files/CLI: run the detector on every N-th frame (tracker in between)", min=1,
                                max=30, step=1)
    min_hits: int = setting(2, "Detections before a WBC is counted (filters one-frame false alarms)", min=1, max=10,
                            step=1)
    max_side: int = setting(640, "Longest side of the analysed copy (pixels)", min=320, max=1920, step=32)


class LeukocyteProcessor(Processor):
    mode = "leukocyte"

    def __init__(self, settings: LeukocyteSettings, live: bool = False) -> None:
        super().__init__(settings, live)
        from stream_app.modes.leukocyte.tracking import CellCounter, SlideMotion

        self._motion = SlideMotion()
        self._counter = CellCounter(min_hits=settings.min_hits)
        self._lock = threading.Lock()
        self._frame_index = 0
        self._others: list[tuple[str, float, np.ndarray]] = []  # RBC/platelets of the last round (slide coords)
        self._others_segment = 0
        self._last_detect_ms = 0.0
        self.detection_rounds = 0  # detector results used so far (live: fresh detections)
        # background worker (live only)
        self._job: tuple | None = None
        self._done: tuple | None = None
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._errors = 0
        self._last_error: str | None = None

    # ---- settings, actions, lifecycle -------------------------------------------------------------------------
    def _detector(self):
        from stream_app.modes.leukocyte.detector import shared_detector, weights_for

        return shared_detector(str(weights_for("clahe_lab" if self.settings.clahe_lab else "rgb")))

    def update_settings(self, **changes) -> None:
        with self._lock:
            super().update_settings(**changes)
            self._counter.min_hits = self.settings.min_hits

    def reset(self) -> None:
        with self._lock:
            self._counter.reset()
            self._motion.reset()
            self._others = []
            self._frame_index = 0
        with self._cv:
            self._job, self._done = None, None

    def reset_counts(self) -> None:
        self._counter.reset()

    def actions(self):
        return {"Reset counts": self.reset_counts}

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ---- detection --------------------------------------------------------------------------------------------
    def _detect(self, small: np.ndarray):
        return self._detector()(small, normalise=self.settings.stain_normalise)

    def _worker(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job, self._job = self._job, None
            small, offset, segment = job
            try:
                t0 = time.perf_counter()
                detections = self._detect(small)
                elapsed = detections.timings_ms["preprocess"] + detections.timings_ms["detect"]
                with self._cv:
                    self._done = (detections, offset, segment, small.shape[:2], elapsed)
            except Exception as exc:  # noqa: BLE001 - reported on the next frame, the stream goes on
                log.debug("background detection failed", exc_info=True)
                self._errors += 1
                self._last_error = f"{type(exc).__name__}: {exc}"

    def _submit(self, small: np.ndarray, offset: np.ndarray, segment: int) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name="leukocyte-detector", daemon=True)
            self._thread.start()
        with self._cv:
            if self._job is None:  # worker busy with an older frame keeps it; we hand over the newest when it is free
                self._job = (small.copy(), offset.copy(), segment)
                self._cv.notify()

    def _integrate(self, detections, offset: np.ndarray, segment: int, size: tuple[int, int]) -> None:
        """One detection round found on a frame with this slide ``offset`` and ``segment`` (an older frame's in live
        mode: followed through joins; a round from a segment left since is dropped, its cells are not where it saw
        them)."""
        segment, offset = self._motion.resolve(segment, offset)
        if segment != self._motion.segment:
            return
        s = self.settings
        self.detection_rounds += 1
        labels, scores, boxes = detections.labels, detections.scores, detections.boxes
        wbc = (labels == 1) & (scores >= s.wbc_threshold)
        wbc_boxes, wbc_scores = _suppress_nested(boxes[wbc], scores[wbc])
        self._counter.update(wbc_boxes, wbc_scores, offset, size, segment)
        shift = np.array([offset[0], offset[1], offset[0], offset[1]])
        others = []
        for label_id, name, threshold, show in ((2, "RBC", s.rbc_threshold, True),
                                                (3, "Platelets", s.platelet_threshold, True)):
            keep = (labels == label_id) & (scores >= threshold)
            others.extend((name, float(sc), b - shift) for b, sc in zip(boxes[keep], scores[keep]))
        self._others, self._others_segment = others, segment

    # ---- per frame --------------------------------------------------------------------------------------------
    def _process(self, frame: np.ndarray, timestamp_s: float | None) -> FrameResult:
        t0 = time.perf_counter()
        small, scale = fit_within(frame, self.settings.max_side)
        prep_ms = detect_ms = track_ms = 0.0
        warning = None
        with self._lock:
            still = timestamp_s is None
            if still:  # a still image: no motion, fresh counts, one look is enough to count
                self._counter.reset()
                self._motion.reset()
            self._counter.min_hits = 1 if still else self.settings.min_hits
            offset = self._motion.update(small)
            segment = self._motion.segment
            for src, dst, delta in self._motion.pop_joins():  # a lost slide position found again
                self._counter.merge(src, dst, delta)
            prep_ms = (time.perf_counter() - t0) * 1000
            if self.live:
                self._submit(small, offset, segment)
                with self._cv:
                    done, self._done = self._done, None
                if done is not None:
                    detections, det_offset, det_segment, size, self._last_detect_ms = done
                    tt = time.perf_counter()
                    self._integrate(detections, det_offset, det_segment, size)
                    track_ms += (time.perf_counter() - tt) * 1000
                detect_ms = self._last_detect_ms
                if self._last_error:
                    warning, self._last_error = f"detector: {self._last_error}", None
            elif self._frame_index % max(1, self.settings.detect_every) == 0:
                detections = self._detect(small)
                prep_ms += detections.timings_ms["preprocess"]
                detect_ms = detections.timings_ms["detect"]
                tt = time.perf_counter()
                self._integrate(detections, offset, segment, small.shape[:2])
                track_ms += (time.perf_counter() - tt) * 1000
            tt = time.perf_counter()
            result = self._result(offset, segment, scale)
            if self._counter.uncertain:
                warning = "; ".join(w for w in (warning, self._uncertain_note()) if w)
            track_ms += (time.perf_counter() - tt) * 1000
            self._frame_index += 1
        result.warning = warning
        result.timings_ms = {"preprocess": prep_ms, "detect": detect_ms, "track": track_ms}
        return result

    def _uncertain_note(self) -> str:
        c = self._counter
        why = []
        if c.unique_min < c.unique:
            why.append("the slide position was lost (a jump, or frames missing during a fast pan) and not found again: "
                       "pan back over counted fields to join them")
        if c.possible:
            why.append(f"{c.possible} cell(s) crossed the view in fewer than {c.min_hits} detections: pan slower")
        return f"WBC unique is uncertain, between {c.unique_min} and {c.unique_max}: " + "; ".join(why)

    def _result(self, offset: np.ndarray, segment: int, scale: float) -> FrameResult:
        s = self.settings
        shift = np.array([offset[0], offset[1], offset[0], offset[1]])
        dets: list[Detection] = []
        in_view = 0
        for track_id, box, score, counted in self._counter.visible(offset, segment):
            if not counted:
                continue
            in_view += 1
            dets.append(Detection("WBC", score, tuple(float(v) for v in box / scale), track_id))
        c = self._counter
        counts = {"WBC in view": in_view, "WBC unique": c.unique, "WBC unique min": c.unique_min,
                  "WBC unique max": c.unique_max, "RBC in view": 0, "Platelets in view": 0}
        for name, score, box in (self._others if self._others_segment == segment else []):
            counts[f"{name} in view"] += 1
            if (name == "RBC" and s.show_rbc) or (name == "Platelets" and s.show_platelets):
                dets.append(Detection(name, score, tuple(float(v) for v in (box + shift) / scale)))
        return FrameResult(mode=self.mode, detections=Detections.from_rows(dets), counts=counts)


def _suppress_nested(boxes: np.ndarray, scores: np.ndarray, overlap: float = 0.6):
    """Drop a WBC box that mostly lies inside a higher-scoring one (one cell seen twice must not count twice)."""
    order = np.argsort(-scores)
    kept: list[int] = []
    for i in order:
        x1, y1, x2, y2 = boxes[i]
        area = max(1e-6, (x2 - x1) * (y2 - y1))
        nested = False
        for j in kept:
            a1, b1, a2, b2 = boxes[j]
            inter = max(0.0, min(x2, a2) - max(x1, a1)) * max(0.0, min(y2, b2) - max(y1, b1))
            if inter / min(area, max(1e-6, (a2 - a1) * (b2 - b1))) > overlap:
                nested = True
                break
        if not nested:
            kept.append(int(i))
    return boxes[kept].reshape(-1, 4), scores[kept]


def warm_up() -> None:
    """Load both shared detectors and run each once ahead of the first frame."""
    from stream_app.modes.leukocyte.detector import shared_detector, weights_for

    for kind in ("clahe_lab", "rgb"):
        shared_detector(str(weights_for(kind)))(np.zeros((480, 640, 3), np.uint8))
