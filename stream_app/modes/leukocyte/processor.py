"""Leukocyte mode: white blood cells (and red cells, platelets) boxed on live microscope video, each WBC counted once.

Pipeline per frame: downscale to at most ``max_side`` (4K input stays cheap; boxes come back in original pixels) ->
slide motion by phase correlation (:mod:`.tracking`; inside an eyepiece's circle when there is one) -> the cell scale
(:mod:`.scale`: the RBC diameter found from the image, or the ``cell_size`` setting; estimated once per stream and
again when the picture changes) -> detector (Faster R-CNN on MobileNetV2, :mod:`.model`; by default on the paper's
CLAHE + CIELAB input, which also serves faint / unstained smears; ``clahe_lab=False`` picks the plain-RGB model) on
the frame brought to the training scale, in overlapping tiles where that makes it larger than the network's input
(:mod:`.tiling`; small cells are looked for in the original frame, not the ``max_side`` copy) -> WBC tracks in slide
coordinates.

* ``live=False`` (files, CLI, tests): the detector runs on every ``detect_every``-th frame and the tracker carries
  the boxes with the measured slide motion in between, so results are deterministic.
* ``live=True`` (camera): the detector runs on every frame the processor is given. The live worker
  (:mod:`stream_app.live`) gives it the newest camera frame whenever it is free, so the frames it sees are some
  apart (the slide motion is measured between them) and the camera's frames go back meanwhile with the latest boxes.

Counts: ``WBC in view``, ``WBC unique`` (since the last reset; a cell counts once it was detected ``min_hits`` times),
``WBC unique min`` and ``WBC unique max`` (equal to ``WBC unique`` while the count is certain; otherwise the true number
lies between them and ``warning`` says why: the slide position was lost and not found again, or cells crossed the view
in fewer detections than ``min_hits``; :mod:`.tracking`), ``RBC in view``, ``Platelets in view``. Timings:
``preprocess`` (resize + motion + the detector's preprocessing), ``detect`` (all tiles; 0 on frames without
detection), ``track``,
and ``scale`` on a frame where the scale was estimated. ``extras`` (:class:`LeukocyteExtras`, JSONL ``text``): the
cell scale in use (RBC size in pixels, magnification relative to the training fields, micrometres per pixel);
``warning``: "no red cells found ..." while no scale shows cells.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from stream_app.frames import fit_within
from stream_app.modes.base import Processor, setting
from stream_app.results import Detection, Detections, Extras, FrameResult

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
    cell_size: float = setting(0.0, "Red cell diameter in pixels of the original frame; 0 = find it from the image "
                                    "(auto). Cells are brought to the training scale (BCCD: 102 px)", min=0.0,
                               max=1000.0, step=1.0)


@dataclass
class LeukocyteExtras(Extras):
    """The cell scale in use: ``rbc_px`` (RBC diameter in the original frame's pixels; None: no red cells found at any
    scale), ``source`` ("auto", "fixed" = the ``cell_size`` setting, "none"), ``magnification`` (relative to the
    training fields, BCCD = 1.0) and ``um_per_px``. JSONL: ``text`` = ``description``
    (:meth:`~.scale.ScaleEstimate.describe`); panels: that line."""

    rbc_px: float | None = None
    source: str = "none"
    magnification: float | None = None
    um_per_px: float | None = None
    description: str = ""

    @classmethod
    def of(cls, estimate) -> "LeukocyteExtras":
        return cls(estimate.rbc_px, estimate.source, estimate.magnification, estimate.um_per_px, estimate.describe())

    def json_fields(self) -> dict:
        return {"text": self.description}

    def lines(self) -> list[str]:
        return [self.description] if self.description else []


class LeukocyteProcessor(Processor):
    mode = "leukocyte"

    def __init__(self, settings: LeukocyteSettings, live: bool = False) -> None:
        super().__init__(settings, live)
        from stream_app.modes.leukocyte.scale import ScaleKeeper
        from stream_app.modes.leukocyte.tracking import CellCounter, SlideMotion

        self.scale = ScaleKeeper()
        self._mask_cache: tuple | None = None  # (shape, lit-field mask or None) of the detection frame
        self._window_cache: tuple | None = None  # (key, where slide motion is measured)
        self._motion = SlideMotion()
        self._counter = CellCounter(min_hits=settings.min_hits)
        self._frame_index = 0
        self._others: list[tuple[str, float, np.ndarray]] = []  # RBC/platelets of the last round (slide coords)
        self._others_segment = 0
        self._closed = False  # a tiled detection stops early once the processor is closed

    # ---- settings, actions, lifecycle -------------------------------------------------------------------------
    def _detector(self):
        from stream_app.modes.leukocyte.detector import mode_detector

        return mode_detector("clahe_lab" if self.settings.clahe_lab else "rgb")

    def update_settings(self, **changes) -> None:
        super().update_settings(**changes)
        self._counter.min_hits = self.settings.min_hits

    def reset(self) -> None:
        self._counter.reset()
        self._motion.reset()
        self._others = []
        self._frame_index = 0
        self.scale.reset()

    def reset_counts(self) -> None:
        self._counter.reset()

    def actions(self):
        return {"Reset WBC counts": self.reset_counts}

    def close(self) -> None:
        self._closed = True

    # ---- detection --------------------------------------------------------------------------------------------
    def _detection_frame(self, frame: np.ndarray, small: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
        """The copy to detect on and its scale to the original: the ``max_side`` copy, unless the cells are so small
        there that the detector would have to enlarge it; then a larger copy, up to the original frame."""
        from stream_app.modes.leukocyte.scale import network_rbc_px

        est = self.scale.estimate
        if est is None or est.rbc_px is None or scale >= 1.0:
            return small, scale
        need = min(1.0, network_rbc_px(self._detector()) / est.rbc_px)
        if need <= scale:
            return small, scale
        copy, s = fit_within(frame, max(small.shape[:2]) * need / scale)
        return copy, s

    def _motion_window(self, small: np.ndarray):
        """Where slide motion is measured: inside an eyepiece's circle when there is one (found once per frame size
        and again after each new scale estimate)."""
        from stream_app.modes.leukocyte.scale import _lit_mask
        from stream_app.modes.leukocyte.tracking import field_window

        key = (small.shape, id(self.scale.estimate))
        if self._window_cache is None or self._window_cache[0] != key:
            self._window_cache = (key, field_window(_lit_mask(small)))
        return self._window_cache[1]

    def _lit(self, image: np.ndarray):
        from stream_app.modes.leukocyte.scale import _lit_mask

        if self._mask_cache is None or self._mask_cache[0] != image.shape:
            self._mask_cache = (image.shape, _lit_mask(image))
        return self._mask_cache[1]

    def _detect(self, frame: np.ndarray, det_frame: np.ndarray, det_scale: float,
                now: float | None) -> tuple[Detections, dict]:
        """Estimate the scale when due (on the original frame), detect on ``det_frame``; returns the detections in
        ``det_frame`` pixels and the timings (:func:`~.scale.detect_at`'s, plus ``det_scale``, and ``scale`` when an
        estimate ran)."""
        from stream_app.modes.leukocyte.detector import scaled
        from stream_app.modes.leukocyte.scale import ScaleEstimate, detect_at, estimate_scale

        s, detector = self.settings, self._detector()
        scale_ms = None
        if self.scale.due(frame.shape, s.cell_size, now):
            t0 = time.perf_counter()
            if s.cell_size:
                estimate = ScaleEstimate(float(s.cell_size), "fixed")
            else:
                self._mask_cache = None
                estimate = estimate_scale(detector, frame, normalise=s.stain_normalise)
            self.scale.set(estimate, frame.shape, s.cell_size, -1e9 if now is None else now)
            scale_ms = (time.perf_counter() - t0) * 1000
            det_frame, det_scale = self._detection_frame(frame, *fit_within(frame, s.max_side))
        est = self.scale.estimate
        rbc = None if est is None or est.rbc_px is None else est.rbc_px * det_scale
        detections, timings = detect_at(detector, det_frame, rbc, self._lit(det_frame), s.stain_normalise,
                                        stop=lambda: self._closed)
        if det_scale > 0:
            self.scale.observe(scaled(detections, 1 / det_scale))
        if scale_ms is not None:
            timings["scale"] = scale_ms
        timings["det_scale"] = det_scale
        return detections, timings

    def _integrate(self, detections: Detections, offset: np.ndarray, segment: int, size: tuple[int, int]) -> None:
        """One detection round found on a frame with this slide ``offset`` and ``segment`` (followed through joins; a
        round from a segment left since is dropped, its cells are not where it saw them)."""
        segment, offset = self._motion.resolve(segment, offset)
        if segment != self._motion.segment:
            return
        s = self.settings
        labels, scores, boxes = detections.labels, detections.scores, detections.boxes
        wbc = (labels == "WBC") & (scores >= s.wbc_threshold)
        wbc_boxes, wbc_scores = _suppress_nested(boxes[wbc], scores[wbc])
        self._counter.update(wbc_boxes, wbc_scores, offset, size, segment)
        shift = np.array([offset[0], offset[1], offset[0], offset[1]])
        others = []
        for name, threshold in (("RBC", s.rbc_threshold), ("Platelets", s.platelet_threshold)):
            keep = (labels == name) & (scores >= threshold)
            others.extend((name, float(sc), b - shift) for b, sc in zip(boxes[keep], scores[keep]))
        self._others, self._others_segment = others, segment

    # ---- per frame --------------------------------------------------------------------------------------------
    def _process(self, frame: np.ndarray, timestamp_s: float | None) -> FrameResult:
        t0 = time.perf_counter()
        small, scale = fit_within(frame, self.settings.max_side)
        prep_ms = detect_ms = track_ms = 0.0
        scale_ms = None
        warning = None
        still = timestamp_s is None
        if still:  # a still image: no motion, fresh counts, one look is enough to count
            self._counter.reset()
            self._motion.reset()
        self._counter.min_hits = 1 if still else self.settings.min_hits
        offset = self._motion.update(small, self._motion_window(small))
        segment = self._motion.segment
        for src, dst, delta in self._motion.pop_joins():  # a lost slide position found again
            self._counter.merge(src, dst, delta)
        prep_ms = (time.perf_counter() - t0) * 1000
        if self.live or self._frame_index % max(1, self.settings.detect_every) == 0:
            if still:
                self.scale.reset()
            now = None if still else float(timestamp_s)  # a still image's estimate is not kept
            from stream_app.modes.leukocyte.detector import scaled

            detections, timings = self._detect(frame, *self._detection_frame(frame, small, scale), now)
            detections = scaled(detections, scale / timings["det_scale"])
            prep_ms += timings["preprocess"]
            detect_ms = timings["detect"]
            if "scale" in timings:
                scale_ms = timings["scale"]
            tt = time.perf_counter()
            self._integrate(detections, offset, segment, small.shape[:2])
            track_ms += (time.perf_counter() - tt) * 1000
        tt = time.perf_counter()
        result = self._result(offset, segment, scale, frame.shape)
        if self._counter.uncertain:
            warning = "; ".join(w for w in (warning, self._uncertain_note()) if w)
        track_ms += (time.perf_counter() - tt) * 1000
        self._frame_index += 1
        est = self.scale.estimate
        if est is not None:
            result.extras = LeukocyteExtras.of(est)
            if est.rbc_px is None:
                warning = "; ".join(w for w in (warning, "no red cells found at any scale: is the smear in view and "
                                                         "in focus?") if w)
        result.warning = warning
        result.timings_ms = {"preprocess": prep_ms, "detect": detect_ms, "track": track_ms}
        if scale_ms is not None:
            result.timings_ms["scale"] = scale_ms
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

    def _result(self, offset: np.ndarray, segment: int, scale: float, shape: tuple[int, ...]) -> FrameResult:
        s = self.settings
        limit = np.array([shape[1], shape[0], shape[1], shape[0]], np.float64)

        def original(box: np.ndarray) -> tuple[float, ...]:  # small-copy pixels -> the original frame's, inside it
            return tuple(float(v) for v in np.clip(box / scale, 0, limit))

        shift = np.array([offset[0], offset[1], offset[0], offset[1]])
        dets: list[Detection] = []
        in_view = 0
        for track_id, box, score, counted in self._counter.visible(offset, segment):
            if not counted:
                continue
            in_view += 1
            dets.append(Detection("WBC", score, original(box), track_id))
        c = self._counter
        counts = {"WBC in view": in_view, "WBC unique": c.unique, "WBC unique min": c.unique_min,
                  "WBC unique max": c.unique_max, "RBC in view": 0, "Platelets in view": 0}
        for name, score, box in (self._others if self._others_segment == segment else []):
            counts[f"{name} in view"] += 1
            if (name == "RBC" and s.show_rbc) or (name == "Platelets" and s.show_platelets):
                dets.append(Detection(name, score, original(box + shift)))
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
    """Load the shared detectors and run each once ahead of the first frame."""
    from stream_app.modes.leukocyte.detector import mode_detector

    for kind in ("clahe_lab", "rgb"):
        detector = mode_detector(kind)
        for net in {detector, detector.rescaled}:  # a routed pair: both of its models; a single model: once
            net(np.zeros((480, 640, 3), np.uint8))
