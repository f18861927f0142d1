"""The cell scale of a frame, found from the image itself, and detection at the training scale.

BCCD's training fields (640x480) show red cells about :data:`TRAIN_RBC_PX` = 102 px across (median of
``sqrt(w * h)`` of the train split's RBC boxes); the detector sees such a field at 427x320, where an RBC is ~68 px.
A phone on an eyepiece or a USB microscope zoomed out shows the same cells at 10-30 px, where the detector finds
nothing. So:

1. :func:`estimate_scale` finds the RBC diameter in the frame's pixels with the detector itself. It looks at the
   middle of the lit field at a ladder of candidate RBC sizes (a third of the frame's shorter side down to 8 px,
   steps of 1.5x; one network input each) and, for each, takes the median size of the confident RBC boxes (at least
   :data:`MIN_CELLS`). Looked at from too far, the detector reports the cells' true size, smaller than the
   candidate; looked at too closely, it boxes parts of cells and reports sizes above the candidate. The truth is
   where found/candidate crosses 1 (interpolated between the two candidates around the first crossing; the search
   stops there, so a BCCD-sized field takes 2-3 runs and a phone photo ~8). Red cells are many and nearly round, so
   they make a steady ruler. Classical estimates (the autocorrelation of the stained image, a distance transform of
   the stained area) were tried first: within 10-20% on BCCD mosaics, but 1.6-2.5x too large on phone-photo proxies,
   where the camera's blur and JPEG set the smallest scale the image holds. On BCCD val mosaics (K = 1-4) and
   phone-photo proxies (fields at 1/5-1/9) the detector's estimate came within 0.78-1.17x of the labelled RBC size.
2. :func:`detect_at` resizes the frame so that RBCs are at the training scale and runs the detector on overlapping
   network-sized tiles (:mod:`.tiling`). When the frame at that scale is within 20% of what the model's own size
   rule gives (a BCCD-like field), the model's rule is used: one network run, exactly as before. A
   :class:`~.detector.RoutedDetector` sends rescaled frames (tiles, and the looks of step 1) to a model fine-tuned
   with multi-scale augmentation and keeps the model measured on other labs for BCCD-like fields.

A :class:`ScaleEstimate` carries the RBC size, the magnification relative to BCCD's (``rbc_px / TRAIN_RBC_PX``) and
the micrometres per pixel that a 7.5 um red cell implies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stream_app.modes.leukocyte.tiling import TILE_H, TILE_W, background_colour, detect_scaled, field_mask
from stream_app.results import Detections

TRAIN_RBC_PX = 102.0  # median RBC box size (sqrt(w*h)) on BCCD's train split, 640x480 frames
TRAIN_FRAME = (640, 480)
RBC_UM = 7.5  # a red blood cell's diameter in micrometres (for the um/px shown to users)
MIN_CELLS = 4  # confident RBCs a candidate scale needs before it counts
REFINE = 1.25  # a still image whose detected RBCs are this far off the estimate is detected again at their size
SNAP = 1.2  # within this factor of the model's own size rule, use the rule (one network run)
TILED_SCALE = 1.0  # cells on tiled frames at this fraction of the training size (< 1: fewer tiles, smaller cells)
MIN_RBC_PX, LADDER_STEP = 8.0, 1.5
RBC, CONFIDENT = "RBC", 0.5


@dataclass
class ScaleEstimate:
    """``rbc_px``: RBC diameter in the frame's pixels (None: no cells found); ``source``: "auto", "fixed" (the
    ``cell_size`` setting) or "none" (nothing found: the model's own size rule is used); ``n_cells``: confident RBCs
    behind the estimate; ``runs``: detector runs it took."""

    rbc_px: float | None
    source: str
    n_cells: int = 0
    runs: int = 0

    @property
    def found(self) -> bool:
        return self.rbc_px is not None

    @property
    def magnification(self) -> float | None:
        """Cell size relative to BCCD's training fields (1.0 = BCCD; 0.14 = cells 7x smaller)."""
        return None if self.rbc_px is None else self.rbc_px / TRAIN_RBC_PX

    @property
    def um_per_px(self) -> float | None:
        return None if self.rbc_px is None else RBC_UM / self.rbc_px

    def describe(self) -> str:
        """One line for the panel and the JSONL ``text``."""
        if self.rbc_px is None:
            return "cell size: no red cells found at any scale; detecting as if the frame were one BCCD-sized field"
        how = "set" if self.source == "fixed" else "auto"
        return (f"cell size: RBC {self.rbc_px:.0f} px ({how}), magnification {self.magnification:.2f}x of training, "
                f"{self.um_per_px:.2f} um/px")


def network_rbc_px(detector) -> float:
    """RBC size on the network's input at the training scale (a 640x480 BCCD field through the model's size rule)."""
    return TRAIN_RBC_PX * detector.network_size(TRAIN_FRAME[1], TRAIN_FRAME[0])


def zoom_for(detector, shape: tuple[int, ...], rbc_px: float | None) -> float:
    """Network pixels per frame pixel for a frame of ``shape`` whose RBCs are ``rbc_px`` across (None: the model's
    own size rule)."""
    h, w = shape[:2]
    rule = detector.network_size(h, w)
    if rbc_px is None or rbc_px <= 0:
        return rule
    ideal = network_rbc_px(detector) / rbc_px
    if 1 / SNAP <= rule / ideal <= SNAP:
        return rule
    return ideal * TILED_SCALE if w * ideal > TILE_W * SNAP or h * ideal > TILE_H * SNAP else ideal


def _lit_mask(frame: np.ndarray) -> np.ndarray | None:
    mask = field_mask(frame)
    return None if mask.mean() > 0.98 else mask


def detect_at(detector, frame: np.ndarray, rbc_px: float | None, mask: np.ndarray | None = None,
              normalise: bool = False, stop=None) -> tuple[Detections, dict]:
    """Detections (frame pixels) with the frame brought to the training scale; ``rbc_px`` None: the model's rule.
    Returns (detections, timings_ms: preprocess, detect (all tiles), tiles, zoom).

    ``mask``: the lit field (None: all of it); ``normalise``: stain normalisation on the whole frame first (its lit
    part), as the processor's ``stain_normalise`` setting; ``stop()``: checked between tiles (True: give up)."""
    import time

    from stream_app.modes.leukocyte.preprocess import normalise_stain

    t0 = time.perf_counter()
    if normalise:
        frame = normalise_stain(frame, mask)
    zoom = zoom_for(detector, frame.shape, rbc_px)
    timings = {"preprocess": 0.0, "detect": 0.0}
    net = detector if zoom == detector.network_size(*frame.shape[:2]) else detector.rescaled

    def run(tile):
        found, ms = net(tile)
        timings["detect"] += ms["detect"]
        return found

    detections, n_tiles = detect_scaled(frame, run, zoom, mask, stop=stop)
    total = (time.perf_counter() - t0) * 1000
    timings["preprocess"] = total - timings["detect"]
    return detections, {**timings, "tiles": float(n_tiles), "zoom": zoom}


def ladder(shape: tuple[int, ...]) -> list[float]:
    """Candidate RBC sizes (frame pixels), small to large: 8 px up to a third of the shorter side."""
    top = max(MIN_RBC_PX, min(shape[:2]) / 3)
    n = int(math.floor(math.log(top / MIN_RBC_PX) / math.log(LADDER_STEP))) + 1
    return [MIN_RBC_PX * LADDER_STEP ** i for i in range(n)]


def estimate_scale(detector, frame: np.ndarray, mask: np.ndarray | None = None,
                   normalise: bool = False) -> ScaleEstimate:
    """Find the RBC diameter in ``frame``'s pixels (see the module docstring); ``source="none"`` when no candidate
    scale shows :data:`MIN_CELLS` confident red cells."""
    import cv2

    from stream_app.modes.leukocyte.preprocess import normalise_stain

    h, w = frame.shape[:2]
    if mask is None:
        mask = _lit_mask(frame)
    if normalise:
        frame = normalise_stain(frame, mask)
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        cx, cy = float(xs.mean()), float(ys.mean())
    else:
        cx, cy = w / 2, h / 2
    net_rbc = network_rbc_px(detector)
    looks, runs = [], 0  # (candidate, median RBC size found, confident RBCs, their mean score)
    for candidate in reversed(ladder(frame.shape)):  # from far to close: stop at the first crossing (see _settle)
        if _crossing(looks) is not None:
            break
        zoom = net_rbc / candidate
        cw, ch = min(w, TILE_W / zoom), min(h, TILE_H / zoom)
        x0 = int(round(min(max(cx - cw / 2, 0), w - cw)))
        y0 = int(round(min(max(cy - ch / 2, 0), h - ch)))
        crop = frame[y0:y0 + int(round(ch)), x0:x0 + int(round(cw))]
        if crop.shape[0] < 2 or crop.shape[1] < 2:
            continue
        size = (max(2, min(TILE_W, round(crop.shape[1] * zoom))), max(2, min(TILE_H, round(crop.shape[0] * zoom))))
        tile = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
        if size != (TILE_W, TILE_H):  # pad to the network's input so the model does not resize it
            padded = np.empty((TILE_H, TILE_W, 3), np.uint8)
            padded[:] = background_colour(crop)
            padded[:size[1], :size[0]] = tile
            tile = padded
        det, _ = detector.rescaled(np.ascontiguousarray(tile))
        runs += 1
        size, n = _rbc_size(det)
        if n < MIN_CELLS:
            continue
        keep = (det.labels == RBC) & (det.scores >= CONFIDENT)
        looks.append((candidate, size / zoom, n, float(det.scores[keep].mean())))
    return _settle(looks, runs)


def _crossing(looks) -> tuple[float, int] | None:
    """(size, cells) where found/candidate crosses 1 between the last two looks (far, then closer), else None."""
    if len(looks) < 2:
        return None
    (c1, m1, n1, _), (c0, m0, n0, _) = looks[-2], looks[-1]
    r0, r1 = math.log(m0 / c0), math.log(m1 / c1)
    if r0 >= 0 > r1:
        t = r0 / (r0 - r1)
        return math.exp(math.log(c0) + t * (math.log(c1) - math.log(c0))), n0 + n1
    return None


def _settle(looks: list[tuple[float, float, int, float]], runs: int) -> ScaleEstimate:
    """The RBC size where the size found equals the size looked for.

    Looked at too closely (candidate below the truth) the detector boxes parts of cells and reports sizes above the
    candidate; looked at from too far, it reports the cells' true, smaller size. The ratio found/candidate crosses 1
    at the truth: interpolate (in log scale) between the two candidates around the crossing. Without a crossing: the
    size found by the candidate with the highest mean score."""
    if not looks:
        return ScaleEstimate(None, "none", 0, runs)
    crossing = _crossing(looks)
    if crossing is not None:
        return ScaleEstimate(crossing[0], "auto", crossing[1], runs)
    c, m, n, _ = max(looks, key=lambda look: look[3])
    return ScaleEstimate(m, "auto", n, runs)


def detect_auto(detector, frame: np.ndarray, cell_size: float | None = None,
                normalise: bool = False) -> tuple[Detections, dict, ScaleEstimate]:
    """One still image: estimate the scale (or take ``cell_size``, the RBC diameter in pixels), then detect there.
    Returns (detections in the frame's pixels, timings_ms as :func:`detect_at`'s plus the estimate's ``scale``,
    the ScaleEstimate)."""
    import time

    t0 = time.perf_counter()
    mask = _lit_mask(frame)
    if cell_size:
        estimate = ScaleEstimate(float(cell_size), "fixed")
    else:
        estimate = estimate_scale(detector, frame, mask, normalise)
    scale_ms = (time.perf_counter() - t0) * 1000
    det, timings = detect_at(detector, frame, estimate.rbc_px, mask, normalise)
    if estimate.source == "auto":  # the whole frame's red cells disagree with the middle's: detect again at theirs
        size, n = _rbc_size(det)
        if n >= 2 * MIN_CELLS and max(size / estimate.rbc_px, estimate.rbc_px / size) > REFINE:
            estimate = ScaleEstimate(size, "auto", n, estimate.runs + int(timings["tiles"]))
            det, timings = detect_at(detector, frame, size, mask, normalise)
    return det, {**timings, "scale": scale_ms}, estimate


def _rbc_size(detections: Detections) -> tuple[float, int]:
    """Median size (sqrt(w*h)) of the confident RBC boxes and their number (0.0, n below :data:`MIN_CELLS`)."""
    keep = (detections.labels == RBC) & (detections.scores >= CONFIDENT)
    if keep.sum() < MIN_CELLS:
        return 0.0, int(keep.sum())
    b = detections.boxes[keep]
    return float(np.median(np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))), int(keep.sum())


class ScaleKeeper:
    """A stream's cell scale: estimated once, looked at again when the picture changes. Thread-safe.

    :meth:`due` says when to (re-)estimate: no estimate yet, the frame size or the ``cell_size`` setting changed, a
    failed estimate is ``retry_s`` old, the red cells found in ``patience`` detection rounds in a row were fewer than
    :data:`MIN_CELLS` (the picture changed: another zoom, empty glass, out of focus; at most every ``retry_s``).
    :meth:`observe` also follows a drift: when the confident RBCs of ``patience`` rounds in a row are more than
    ``drift`` times off the estimate, the estimate becomes their median size without a new search."""

    def __init__(self, retry_s: float = 2.0, drift: float = 1.3, patience: int = 3) -> None:
        import threading

        self.retry_s, self.drift, self.patience = retry_s, drift, patience
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.estimate: ScaleEstimate | None = None
            self._key: tuple | None = None
            self._tried_at = -1e9
            self._lost = 0
            self._sizes: list[float] = []
            self._stale = False

    def due(self, shape: tuple[int, ...], cell_size: float, now: float) -> bool:
        with self._lock:
            if self.estimate is None or self._key != (shape[:2], float(cell_size or 0)):
                return True
            if cell_size:
                return False
            if self.estimate.rbc_px is None or self._stale:
                return now - self._tried_at >= self.retry_s
            return False

    def set(self, estimate: ScaleEstimate, shape: tuple[int, ...], cell_size: float, now: float) -> None:
        with self._lock:
            self.estimate, self._key, self._tried_at = estimate, (shape[:2], float(cell_size or 0)), now
            self._lost, self._sizes, self._stale = 0, [], False

    def observe(self, detections: Detections) -> None:
        """One detection round in the pixels of the frame the estimate is for."""
        with self._lock:
            est = self.estimate
            if est is None or est.source != "auto" or est.rbc_px is None:
                return
            size, n = _rbc_size(detections)
            if n < MIN_CELLS:
                self._lost += 1
                self._sizes = []
                self._stale = self._lost >= self.patience
                return
            self._lost = 0
            if max(size / est.rbc_px, est.rbc_px / size) > self.drift:
                self._sizes.append(size)
                if len(self._sizes) >= self.patience:
                    self.estimate = ScaleEstimate(float(np.median(self._sizes)), "auto", n, 0)
                    self._sizes = []
            else:
                self._sizes = []
