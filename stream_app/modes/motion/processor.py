"""Motion mode: boxes around whatever moves, from OpenCV's MOG2 background subtractor.

It needs no trained model, so it proves the plumbing (camera, replay, CLI, annotated output) with real work on real
frames, and it is a useful check that a camera feed is live. Boxes: label ``moving``, score = the moving fraction of
the box. Counts: ``moving`` = boxes in this frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from stream_app.frames import fit_within
from stream_app.modes.base import Processor, setting
from stream_app.results import Detections, FrameResult


@dataclass
class MotionSettings:
    min_area: float = setting(0.002, "Smallest box kept, as a fraction of the frame area", min=0.0001, max=0.2, step=0.0005)
    history: int = setting(120, "Frames the background model remembers", min=10, max=1000, step=10)
    sensitivity: float = setting(25.0, "Variance threshold: lower finds fainter motion", min=4.0, max=100.0, step=1.0)
    max_side: int = setting(640, "Longest side of the copy that is analysed (pixels)", min=160, max=1920, step=32)


class MotionProcessor(Processor):
    mode = "motion"

    def __init__(self, settings: MotionSettings, live: bool = False) -> None:
        super().__init__(settings, live)
        self._subtractor = None
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def reset(self) -> None:
        self._subtractor = None

    def update_settings(self, **changes) -> None:
        super().update_settings(**changes)
        self.reset()  # the subtractor's parameters are fixed at creation

    def _process(self, frame: np.ndarray, timestamp_s: float | None) -> FrameResult:
        t0 = time.perf_counter()
        small, scale = fit_within(frame, self.settings.max_side)
        if self._subtractor is None or self._shape != small.shape:
            self._subtractor = cv2.createBackgroundSubtractorMOG2(
                history=self.settings.history, varThreshold=self.settings.sensitivity, detectShadows=False)
            self._shape = small.shape
        mask = self._subtractor.apply(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        mask = cv2.dilate(mask, self._kernel, iterations=2)
        t1 = time.perf_counter()
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_px = self.settings.min_area * small.shape[0] * small.shape[1]
        boxes, scores = [], []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if w * h < min_px:
                continue
            scores.append(float(np.count_nonzero(mask[y:y + h, x:x + w])) / float(w * h))
            boxes.append((x / scale, y / scale, (x + w) / scale, (y + h) / scale))
        detections = Detections(boxes, scores, ["moving"] * len(boxes))
        area = (detections.boxes[:, 2] - detections.boxes[:, 0]) * (detections.boxes[:, 3] - detections.boxes[:, 1])
        detections = detections[np.argsort(-area, kind="stable")]  # largest first
        t2 = time.perf_counter()
        return FrameResult(
            mode=self.mode, detections=detections, counts={"moving": len(detections)},
            timings_ms={"subtract": (t1 - t0) * 1000, "boxes": (t2 - t1) * 1000})

