"""J and Z from fingertip motion. Pure Python + numpy + OpenCV, driven by timestamps.

:class:`MotionTracker` keeps the last ``window_s`` seconds of the pinky tip (for J) and the index tip (for Z), in
hand sizes (the landmark box's longer side), x mirrored for left hands.

- J (:func:`is_j_path`): the hand shape in the window is mostly I (or J) and the pinky tip moves DOWN by >= 0.35 hand
  sizes and then hooks SIDEWAYS by >= 0.15 hand sizes at the bottom (either side, so a mirrored camera image works
  too).
- Z (:func:`is_z_path`): the hand shape is mostly an index-finger shape (D, Z, G or X) and the index tip's path,
  simplified by Ramer-Douglas-Peucker (``cv2.approxPolyDP``), has three strokes: sideways >= 0.3 hand sizes, back
  diagonally DOWN (>= 0.2) and sideways again in the first stroke's direction (either direction, for mirrored
  images).
- When a motion letter is recognised the trajectory starts afresh.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import cv2
import numpy as np

MOTION_LETTERS = ("J", "Z")
J_SHAPES = frozenset("IJ")
Z_SHAPES = frozenset("DZGX")


def is_j_path(path: np.ndarray) -> bool:
    """``path`` (N, 2) in hand sizes, y down: a mostly vertical downward stroke of >= 0.35, then a sideways hook of
    >= 0.15 once the tip is near the bottom (within 0.15 of its lowest point)."""
    path = np.asarray(path, dtype=np.float32)
    if len(path) < 4:
        return False
    bottom = float(path[:, 1].max())
    k = int(np.argmax(path[:, 1] >= bottom - 0.15))   # where the tip reaches the bottom region
    top = int(np.argmin(path[:k + 1, 1]))
    drop = path[k, 1] - path[top, 1]
    if drop < 0.35 or abs(path[k, 0] - path[top, 0]) > 0.6 * drop:
        return False
    hook = float(np.abs(path[k:, 0] - path[k, 0]).max())
    return hook >= 0.15


def is_z_path(path: np.ndarray, epsilon: float = 0.12) -> bool:
    """``path`` (N, 2) in hand sizes, y down: sideways, diagonal back and down, sideways (same way as the first)."""
    path = np.asarray(path, dtype=np.float32)
    if len(path) < 6:
        return False
    poly = cv2.approxPolyDP(path.reshape(-1, 1, 2), epsilon, False).reshape(-1, 2)
    strokes = np.diff(poly, axis=0)
    # merge consecutive strokes with the same horizontal direction and similar slope into one
    for i in range(len(strokes) - 2):
        a, b, c = strokes[i], strokes[i + 1], strokes[i + 2]
        for d in (1.0, -1.0):
            first = d * a[0] >= 0.3 and abs(a[1]) <= 0.6 * abs(a[0])
            diag = -d * b[0] >= 0.15 and b[1] >= 0.2
            last = d * c[0] >= 0.3 and abs(c[1]) <= 0.6 * abs(c[0])
            if first and diag and last:
                return True
    return False


@dataclass
class _Sample:
    t: float
    index: tuple[float, float]
    pinky: tuple[float, float]
    letter: str | None


class MotionTracker:
    """Fingertip trajectories over the last ``window_s`` seconds; ``update`` returns "J", "Z" or None."""

    def __init__(self, window_s: float = 1.5) -> None:
        self.window_s = window_s
        self._samples: deque[_Sample] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def update(self, t: float, index_tip: tuple[float, float], pinky_tip: tuple[float, float], hand_size: float,
               mirrored: bool, letter: str | None) -> str | None:
        sx = -1.0 if mirrored else 1.0
        s = max(hand_size, 1e-6)
        self._samples.append(_Sample(t, (sx * index_tip[0] / s, index_tip[1] / s),
                                     (sx * pinky_tip[0] / s, pinky_tip[1] / s), letter))
        while self._samples and t - self._samples[0].t > self.window_s:
            self._samples.popleft()
        if len(self._samples) < 4:
            return None
        shape = Counter(x.letter for x in self._samples).most_common(1)[0][0]
        found = None
        if shape in J_SHAPES and is_j_path(np.array([x.pinky for x in self._samples])):
            found = "J"
        elif shape in Z_SHAPES and is_z_path(np.array([x.index for x in self._samples])):
            found = "Z"
        if found:
            self._samples.clear()
        return found
