"""Counting each white blood cell once on a moving slide: global slide motion + IoU tracks in slide coordinates.

Why not norfair, trackers (SORT, ByteTrack) or another per-object tracker? On a microscope every cell moves with the
slide: one rigid translation per frame. :class:`SlideMotion` measures it with OpenCV's phase correlation on a small
grey copy (~1 ms), from the first frame, for every frame, including the ones the detector never sees. Tracks are then
kept in *slide* coordinates (frame position minus the accumulated pan), where a cell does not move at all, so matching
is a plain IoU assignment (SciPy's Hungarian solver) and a cell that leaves the field and comes back is recognised by
its place on the slide instead of being counted again, however few detections a second arrive (a cell is matched by
where it is on the slide, not by how far it moved since the last detection). A per-object Kalman filter would have
to learn each new cell's velocity over several frames and drift between the sparse detections of live mode; norfair's
camera-motion option and supervision's compensator also chain frame-to-frame estimates, and none of them knows when
that chain breaks, which is what inflates a count (below). They would add dependencies for less.

**When the slide position is lost.** A jump (a looping video, a jerk of the stage, frames dropped during a fast pan:
more than ~40% of the field between two frames) breaks the chain of shifts. Phase correlation still returns a peak
then, and a weak one is not rare between two unrelated smear fields (response up to 0.28 measured on BCCD, where a
true 40%-of-the-field shift gives >= 0.3), so every measured shift is checked: after the shift, the overlapping parts
of the two frames must agree (normalised cross-correlation >= 0.7; true shifts gave >= 0.95 even on JPEG quality 10,
unrelated fields <= 0.43). A shift that fails the check is *lost*: the frame is looked up among keyframes (small grey
copies kept every quarter field, with their slide position), and when it matches one the position is known again.
Otherwise a new *segment* begins: a coordinate frame of its own, whose cells cannot be compared with the earlier ones,
while the lookup goes on for each later frame (a few keyframes a frame). When a later frame matches a keyframe of an
earlier segment, the two segments are joined (:meth:`CellCounter.merge`) and cells counted twice are counted once.
Until then the count is *uncertain*: ``unique`` adds up the segments, and ``unique_min`` (the largest segment alone)
is the least it can be. A featureless frame (camera covered, out of focus: grey std < 3) says nothing about motion and
is skipped, not counted as a loss.

A detection result computed on an older frame is placed on the
slide with the pan *of that frame* (:meth:`SlideMotion.resolve` follows it through joins; a result from a segment
that has since been left is dropped), so late results land where the cells are now.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment


def overlap_ncc(a: np.ndarray, b: np.ndarray, dx: float, dy: float) -> float:
    """Normalised cross-correlation of the parts of ``a`` and ``b`` that overlap when ``b`` is ``a`` moved by
    ``(dx, dy)`` (``b[y, x] = a[y - dy, x - dx]``); 0.0 when less than a fifth of the frame overlaps."""
    h, w = a.shape
    ix, iy = int(round(dx)), int(round(dy))
    if (w - abs(ix)) * (h - abs(iy)) < 0.2 * w * h or abs(ix) >= w or abs(iy) >= h:
        return 0.0
    bb = np.ascontiguousarray(b[max(0, iy):h + min(0, iy), max(0, ix):w + min(0, ix)], np.float32)
    aa = np.ascontiguousarray(a[max(0, -iy):h - max(0, iy), max(0, -ix):w - max(0, ix)], np.float32)
    return float(cv2.matchTemplate(bb, aa, cv2.TM_CCOEFF_NORMED)[0, 0])


@dataclass
class _Keyframe:
    grey: np.ndarray  # uint8, the small grey copy
    offset: np.ndarray  # its slide offset (frame pixels) in its segment's coordinates
    segment: int


class SlideMotion:
    """Accumulated translation of the frame content ("pan"), in pixels of the frames given to :meth:`update`, in the
    coordinates of the current ``segment`` (see the module docstring: a new segment begins when the position is lost).

    ``lost``: losses so far; ``joined``: segments joined to an earlier one since (a loss undone at once counts too).
    :meth:`pop_joins` hands over the joins of segments since the last call (for :meth:`CellCounter.merge`).
    """

    def __init__(self, width: int = 160, min_ncc: float = 0.7, min_std: float = 3.0, keyframe_every: float = 0.25,
                 max_keyframes: int = 400, lookups_per_frame: int = 3, lookups_on_loss: int = 48) -> None:
        self.width, self.min_ncc, self.min_std = width, min_ncc, min_std
        self.keyframe_every, self.max_keyframes = keyframe_every, max_keyframes
        self.lookups_per_frame, self.lookups_on_loss = lookups_per_frame, lookups_on_loss
        self._window: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._scale = 1.0
        self.offset = np.zeros(2, np.float64)  # (dx, dy): slide point p is at p + offset in the current frame
        self.segment = 0
        self._segments = 1  # ids handed out (a joined segment's id is never used again)
        self.lost = self.joined = 0
        self._keys: list[_Keyframe] = []
        self._joined: dict[int, tuple[int, np.ndarray]] = {}  # old segment -> (segment it joined, delta)
        self._joins: list[tuple[int, int, np.ndarray]] = []
        self._cursor = 0  # round-robin position of the keyframe lookup while in a segment of its own

    def _small(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        self._scale = min(1.0, self.width / w)
        small = cv2.resize(frame, (max(8, round(w * self._scale)), max(8, round(h * self._scale))),
                           interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small

    def _shift(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
        """The shift from ``a`` to ``b`` (small pixels) if it passes the overlap check, else ``None``."""
        if self._window is None or self._window.shape != a.shape:
            self._window = cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32), self._window)
        if overlap_ncc(a, b, dx, dy) < self.min_ncc:
            return None
        return np.array([dx, dy])

    def update(self, frame: np.ndarray, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Measure the shift from the previous frame; returns the accumulated offset (of the current segment).
        ``window`` (x1, y1, x2, y2): measure only there (inside an eyepiece's circular field, whose dark edge stays
        still while the slide moves behind it and would otherwise pin the measured shift to zero)."""
        if window is not None:
            x1, y1, x2, y2 = window
            frame = frame[y1:y2, x1:x2]
        grey = self._small(frame)
        if float(grey.std()) < self.min_std:
            return self.offset.copy()  # nothing to see: no motion measured, nothing lost; the last view is kept
        looked = False
        if self._prev is not None:
            shift = self._shift(self._prev, grey) if self._prev.shape == grey.shape else None
            if shift is not None:
                self.offset += shift / self._scale
            else:
                self.lost += 1
                self._new_segment()
                looked = True
                self._lookup(grey, self.lookups_on_loss)
        if not looked and any(k.segment != self.segment for k in self._keys):
            self._lookup(grey, self.lookups_per_frame)  # still apart from an earlier segment: keep looking
        self._prev = grey
        self._keep(grey)
        return self.offset.copy()

    def _new_segment(self) -> None:
        self.segment, self._segments = self._segments, self._segments + 1
        self.offset = np.zeros(2, np.float64)
        self._cursor = 0

    def _lookup(self, grey: np.ndarray, budget: int) -> bool:
        """Look for ``grey`` among up to ``budget`` keyframes of other segments (newest first, then round robin);
        on a match, join the current segment to the keyframe's."""
        others = [k for k in reversed(self._keys) if k.segment != self.segment and k.grey.shape == grey.shape]
        if not others:
            return False
        for _ in range(min(budget, len(others))):
            key = others[self._cursor % len(others)]
            self._cursor += 1
            shift = self._shift(key.grey, grey)
            if shift is not None:
                self._join(key.segment, key.offset + shift / self._scale)
                return True
        return False

    def _join(self, target: int, offset_there: np.ndarray) -> None:
        """The current frame is at ``offset_there`` in segment ``target``: express the current segment there."""
        src, delta = self.segment, self.offset - offset_there  # slide point q here is q + delta there
        for key in self._keys:
            if key.segment == src:
                key.segment, key.offset = target, key.offset - delta
        for old, (to, d) in list(self._joined.items()):
            if to == src:
                self._joined[old] = (target, d + delta)
        self._joined[src] = (target, delta.copy())
        self._joins.append((src, target, delta.copy()))
        self.joined += 1
        self.segment, self.offset = target, np.asarray(offset_there, np.float64).copy()

    def _keep(self, grey: np.ndarray) -> None:
        """Keep ``grey`` as a keyframe when no keyframe of this segment lies within a quarter field of it."""
        mine = [k.offset for k in self._keys if k.segment == self.segment]
        spacing = self.keyframe_every * grey.shape[1] / self._scale
        if mine and np.min(np.abs(np.array(mine) - self.offset).max(axis=1)) < spacing:
            return
        self._keys.append(_Keyframe(grey.astype(np.uint8), self.offset.copy(), self.segment))
        if len(self._keys) > self.max_keyframes:
            self._keys.pop(0)

    def resolve(self, segment: int, offset: np.ndarray) -> tuple[int, np.ndarray]:
        """A (segment, offset) taken earlier, in the coordinates of the segment it has been joined to since."""
        offset = np.asarray(offset, np.float64)
        while segment in self._joined:
            segment, delta = self._joined[segment]
            offset = offset - delta
        return segment, offset

    def pop_joins(self) -> list[tuple[int, int, np.ndarray]]:
        """``(old segment, segment it joined, delta)`` since the last call: box there = box here + delta."""
        joins, self._joins = self._joins, []
        return joins


def field_window(mask: np.ndarray | None) -> tuple[int, int, int, int] | None:
    """The square inscribed in a circular lit field (``mask`` HxW bool), or None when the whole frame is lit."""
    if mask is None or mask.mean() > 0.98 or not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    cx, cy = float(xs.mean()), float(ys.mean())
    half = 0.95 * np.sqrt(mask.sum() / np.pi) / np.sqrt(2)
    h, w = mask.shape
    x1, y1 = max(0, int(cx - half)), max(0, int(cy - half))
    x2, y2 = min(w, int(cx + half)), min(h, int(cy + half))
    return (x1, y1, x2, y2) if x2 - x1 >= 16 and y2 - y1 >= 16 else None


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
    box: np.ndarray  # slide coordinates of its segment
    score: float
    segment: int = 0
    hits: int = 1
    missed: int = 0  # rounds in a row in view without a detection
    misses: int = 0  # all such rounds
    counted: bool = False
    hit_now: bool = False  # matched in the current round
    whole: bool = True  # its box comes from a view of the whole cell (not one cut by the frame's edge)


@dataclass
class CellCounter:
    """Tracks of one class in slide coordinates; counts a cell once, when it has been seen ``min_hits`` times.

    ``update(boxes, scores, offset, frame_size, segment)`` takes one detection round (boxes in the pixels of the
    frame they were found on, and that frame's pan offset and segment). A track unmatched for ``max_missed`` rounds
    while in view leaves the view but is remembered, so the same cell found again at the same slide place keeps its
    id and is not recounted. A cell cut by the frame's edge gives a cut box: it is matched on the part of the
    tracks that lies inside the frame, and it does not move or shrink the box of a track seen whole (otherwise a cell
    leaving the field drags its remembered box along, and is counted again when it comes back). A round of another
    segment than the tracks' (the slide position was lost) retires them: they are remembered in their own segment's coordinates until :meth:`merge` joins the segments. ``unique`` adds up
    every segment's cells; ``unique_min`` is the largest segment's alone, the least the true number can be while
    segments stay apart (``uncertain``). Thread-safe.
    """

    min_hits: int = 2
    max_missed: int = 3
    match_iou: float = 0.25
    tracks: list[Track] = field(default_factory=list)
    memory: list[Track] = field(default_factory=list)
    unique: int = 0
    possible: int = 0  # cells that crossed the view in fewer detection rounds than min_hits, found in each of them
    _next_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            self.tracks, self.memory, self.unique, self.possible, self._next_id = [], [], 0, 0, 1

    @property
    def per_segment(self) -> dict[int, int]:
        """Counted cells per segment."""
        with self._lock:
            out: dict[int, int] = {}
            for t in self.tracks + self.memory:
                if t.counted:
                    out[t.segment] = out.get(t.segment, 0) + 1
            return out

    @property
    def unique_min(self) -> int:
        return max(self.per_segment.values(), default=0)

    @property
    def unique_max(self) -> int:
        return self.unique + self.possible

    @property
    def uncertain(self) -> bool:
        return not self.unique_min == self.unique == self.unique_max

    def update(self, boxes: np.ndarray, scores: np.ndarray, offset: np.ndarray, frame_size: tuple[int, int],
               segment: int = 0) -> None:
        shift = np.array([offset[0], offset[1], offset[0], offset[1]])
        slide = np.asarray(boxes, np.float64).reshape(-1, 4) - shift
        h, w = frame_size
        with self._lock:
            self._retire_other_segments(segment)
            cut = _at_edge(slide + shift, w, h)
            matched_det: set[int] = set()
            if self.tracks and len(slide):
                iou = iou_matrix(_clip(np.array([t.box for t in self.tracks]) + shift, w, h),
                                 _clip(slide + shift, w, h))
                rows, cols = linear_sum_assignment(-iou)
                for r, c in zip(rows, cols):
                    if iou[r, c] >= self.match_iou:
                        self._hit(self.tracks[r], slide[c], float(scores[c]), bool(cut[c]))
                        matched_det.add(c)
            for t in self.tracks:
                if not t.hit_now:
                    # only a cell that should be visible can be missed; one panned out of view simply waits
                    if _in_view(t.box + shift, w, h):
                        t.missed += 1
                        t.misses += 1
                t.hit_now = False
            gone = [t for t in self.tracks if t.missed > self.max_missed or not _in_view(t.box + shift, w, h, 0.0)]
            self.tracks = [t for t in self.tracks if t not in gone]
            self.memory.extend(t for t in gone if t.counted)
            self.possible += sum(1 for t in gone if not t.counted and t.misses == 0)
            for c in range(len(slide)):
                if c in matched_det:
                    continue
                revived = self._recall(slide[c], segment, shift, w, h)
                if revived is not None:
                    self._hit(revived, slide[c], float(scores[c]), bool(cut[c]))
                    revived.hit_now = False
                    revived.missed = 0
                    self.tracks.append(revived)
                    continue
                track = Track(self._next_id, slide[c].copy(), float(scores[c]), segment, whole=not cut[c])
                self._next_id += 1
                self._confirm(track)
                self.tracks.append(track)

    def _retire_other_segments(self, segment: int) -> None:
        """Tracks of another segment cannot be matched by position any more: counted ones are remembered."""
        other = [t for t in self.tracks if t.segment != segment]
        if other:
            self.tracks = [t for t in self.tracks if t.segment == segment]
            self.memory.extend(t for t in other if t.counted)
            self.possible += sum(1 for t in other if not t.counted and t.misses == 0)

    def merge(self, src: int, dst: int, delta: np.ndarray) -> int:
        """Segment ``src`` turned out to be part of segment ``dst``: a box of ``src`` lies at ``box + delta`` there.
        Cells found in both are counted once (the older id is kept). Returns how many were counted twice."""
        d4 = np.array([delta[0], delta[1], delta[0], delta[1]], np.float64)
        with self._lock:
            moved = [t for t in self.tracks + self.memory if t.segment == src]
            for t in moved:
                t.box, t.segment = t.box + d4, dst
            moved_ids = {id(t) for t in moved}
            here = [t for t in self.memory if t.segment == dst and id(t) not in moved_ids]
            twice = 0
            for t in sorted(moved, key=lambda t: not t.counted):
                if not here:
                    break
                iou = iou_matrix(np.array([m.box for m in here]), t.box[None])[:, 0]
                best = int(np.argmax(iou))
                if iou[best] < self.match_iou:
                    continue
                old = here.pop(best)  # the same cell, met before in dst: t takes its id and its place in the count
                self.memory.remove(old)
                if t.counted and old.counted:
                    self.unique -= 1
                    twice += 1
                elif old.counted:
                    t.counted = True
                t.track_id, t.hits = old.track_id, t.hits + old.hits
            return twice

    def _hit(self, track: Track, box: np.ndarray, score: float, cut: bool = False) -> None:
        if not cut:
            track.box = 0.5 * track.box + 0.5 * box if track.whole else box.copy()
            track.whole = True
        elif not track.whole and _area(box) > _area(track.box):
            track.box = box.copy()  # a cell coming into view: the largest part seen so far
        track.score = score
        track.hits += 1
        track.missed = 0
        track.hit_now = True
        self._confirm(track)

    def _confirm(self, track: Track) -> None:
        if not track.counted and track.hits >= self.min_hits:
            track.counted = True
            self.unique += 1

    def _recall(self, box: np.ndarray, segment: int, shift: np.ndarray, w: int, h: int) -> Track | None:
        mine = [i for i, t in enumerate(self.memory) if t.segment == segment]
        if not mine:
            return None
        iou = iou_matrix(_clip(np.array([self.memory[i].box for i in mine]) + shift, w, h),
                         _clip((box + shift)[None], w, h))[:, 0]
        best = int(np.argmax(iou))
        if iou[best] < self.match_iou:
            return None
        return self.memory.pop(mine[best])

    def visible(self, offset: np.ndarray, segment: int = 0) -> list[tuple[int, np.ndarray, float, bool]]:
        """(track id, box in the current frame, score, counted) for the tracks in view now."""
        shift = np.array([offset[0], offset[1], offset[0], offset[1]])
        with self._lock:
            return [(t.track_id, t.box + shift, t.score, t.counted) for t in self.tracks if t.segment == segment]


def _area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def _clip(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Boxes (N, 4) in frame pixels cut to the frame: the part of a cell that a detector can see."""
    return np.stack([boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h), boxes[:, 2].clip(0, w), boxes[:, 3].clip(0, h)],
                    axis=1) if len(boxes) else boxes.reshape(0, 4)


def _at_edge(boxes: np.ndarray, w: int, h: int, margin: float = 2.0) -> np.ndarray:
    """Which boxes (frame pixels) touch the frame's edge, i.e. may show a cell cut by it."""
    if not len(boxes):
        return np.zeros(0, bool)
    return ((boxes[:, 0] <= margin) | (boxes[:, 1] <= margin) | (boxes[:, 2] >= w - margin)
            | (boxes[:, 3] >= h - margin))


def _in_view(box: np.ndarray, w: int, h: int, margin: float = 0.5) -> bool:
    """Whether at least ``margin`` of the box's area lies inside the frame (0.0: any part of it)."""
    x1, y1, x2, y2 = box
    area = max(1e-6, (x2 - x1) * (y2 - y1))
    inside = max(0.0, min(x2, w) - max(x1, 0)) * max(0.0, min(y2, h) - max(y1, 0))
    return inside / area > margin if margin > 0 else inside > 0
