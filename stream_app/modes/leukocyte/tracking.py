"""Counting each white blood cell once on a moving slide: global slide motion + IoU tracks in slide coordinates.

Why not norfair (or another per-object Kalman tracker)? On a microscope every cell moves with the slide: one rigid
translation per frame. :class:`SlideMotion` measures it with OpenCV's phase correlation on a small grey copy
(~1 ms), from the first frame, for every frame, including the ones the detector never sees. Tracks are then kept in
*slide* coordinates (frame position minus the accumulated pan), where a cell does not move at all, so matching is a
plain IoU assignment (SciPy's Hungarian solver) and a cell that leaves the field and comes back is recognised by
its place on the slide instead of being counted again. A per-object Kalman filter would have to learn each new
cell's velocity over several frames, drift between the sparse detections of live mode, and it would add a
dependency (norfair pulls filterpy and rich) for less.

A detection result computed on an older frame (live mode runs the detector in the background) is placed on the
slide with the pan *of that frame*, so late results land where the cells are now.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment


class SlideMotion:
    """Accumulated translation of the frame content ("pan"), in pixels of the frames given to :meth:`update`."""

    def __init__(self, width: int = 160, min_response: float = 0.05) -> None:
        self.width, self.min_response = width, min_response
        self._prev: np.ndarray | None = None
        self._window: np.ndarray | None = None
        self.offset = np.zeros(2, np.float64)  # (dx, dy): slide point p is at p + offset in the current frame

    def reset(self) -> None:
        self._prev, self.offset = None, np.zeros(2, np.float64)

    def update(self, frame: np.ndarray) -> np.ndarray:
        """Measure the shift from the previous frame; returns the accumulated offset."""
        h, w = frame.shape[:2]
        scale = min(1.0, self.width / w)
        small = cv2.resize(frame, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if self._prev is not None and self._prev.shape == grey.shape:
            if self._window is None or self._window.shape != grey.shape:
                self._window = cv2.createHanningWindow(grey.shape[::-1], cv2.CV_32F)
            (dx, dy), response = cv2.phaseCorrelate(self._prev, grey, self._window)
            if response >= self.min_response and abs(dx) < grey.shape[1] / 3 and abs(dy) < grey.shape[0] / 3:
                self.offset += np.array([dx, dy]) / scale
        self._prev = grey
        return self.offset.copy()


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` (N, 4) and ``b`` (M, 4), x1y1x2y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # slide coordinates
    score: float
    hits: int = 1
    missed: int = 0
    counted: bool = False
    hit_now: bool = False  # matched in the current round


@dataclass
class CellCounter:
    """Tracks of one class in slide coordinates; counts a cell once, when it has been seen ``min_hits`` times.

    ``update(boxes, scores, offset, frame_size)`` takes one detection round (boxes in the pixels of the frame they
    were found on, and that frame's pan offset). A track unmatched for ``max_missed`` rounds while in view leaves the
    view but is remembered, so the same cell found again at the same slide place keeps its id and is not recounted.
    Thread-safe.
    """

    min_hits: int = 2
    max_missed: int = 3
    match_iou: float = 0.25
    tracks: list[Track] = field(default_factory=list)
    memory: list[Track] = field(default_factory=list)
    unique: int = 0
    _next_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            self.tracks, self.memory, self.unique, self._next_id = [], [], 0, 1

    def update(self, boxes: np.ndarray, scores: np.ndarray, offset: np.ndarray, frame_size: tuple[int, int]) -> None:
        shift = np.array([offset[0], offset[1], offset[0], offset[1]])
        slide = np.asarray(boxes, np.float64).reshape(-1, 4) - shift
        h, w = frame_size
        with self._lock:
            matched_det: set[int] = set()
            if self.tracks and len(slide):
                iou = iou_matrix(np.array([t.box for t in self.tracks]), slide)
                rows, cols = linear_sum_assignment(-iou)
                for r, c in zip(rows, cols):
                    if iou[r, c] >= self.match_iou:
                        self._hit(self.tracks[r], slide[c], float(scores[c]))
                        matched_det.add(c)
            for t in self.tracks:
                if not t.hit_now:
                    # only a cell that should be visible can be missed; one panned out of view simply waits
                    if _in_view(t.box + shift, w, h):
                        t.missed += 1
                t.hit_now = False
            gone = [t for t in self.tracks if t.missed > self.max_missed or not _in_view(t.box + shift, w, h, 0.0)]
            self.tracks = [t for t in self.tracks if t not in gone]
            self.memory.extend(t for t in gone if t.counted)
            for c in range(len(slide)):
                if c in matched_det:
                    continue
                revived = self._recall(slide[c])
                if revived is not None:
                    self._hit(revived, slide[c], float(scores[c]))
                    revived.hit_now = False
                    revived.missed = 0
                    self.tracks.append(revived)
                    continue
                track = Track(self._next_id, slide[c].copy(), float(scores[c]))
                self._next_id += 1
                self._confirm(track)
                self.tracks.append(track)

    def _hit(self, track: Track, box: np.ndarray, score: float) -> None:
        track.box = 0.5 * track.box + 0.5 * box
        track.score = score
        track.hits += 1
        track.missed = 0
        track.hit_now = True
        self._confirm(track)

    def _confirm(self, track: Track) -> None:
        if not track.counted and track.hits >= self.min_hits:
            track.counted = True
            self.unique += 1

    def _recall(self, box: np.ndarray) -> Track | None:
        if not self.memory:
            return None
        iou = iou_matrix(np.array([t.box for t in self.memory]), box[None])[:, 0]
        best = int(np.argmax(iou))
        if iou[best] < self.match_iou:
            return None
        return self.memory.pop(best)

    def visible(self, offset: np.ndarray) -> list[tuple[int, np.ndarray, float, bool]]:
        """(track id, box in the current frame, score, counted) for the tracks in view now."""
        shift = np.array([offset[0], offset[1], offset[0], offset[1]])
        with self._lock:
            return [(t.track_id, t.box + shift, t.score, t.counted) for t in self.tracks]


def _in_view(box: np.ndarray, w: int, h: int, margin: float = 0.5) -> bool:
    """Whether at least ``margin`` of the box's area lies inside the frame (0.0: any part of it)."""
    x1, y1, x2, y2 = box
    area = max(1e-6, (x2 - x1) * (y2 - y1))
    inside = max(0.0, min(x2, w) - max(x1, 0)) * max(0.0, min(y2, h) - max(y1, 0))
    return inside / area > margin if margin > 0 else inside > 0
