"""Turning per-frame letters into spelled text, and J / Z from motion. Pure Python + numpy, driven by timestamps.

Spelling rules (:class:`Speller`):
- A letter joins the text once it has been the frame's top letter, at confidence >= ``min_confidence``, for
  ``stable_s`` seconds without interruption.
- The same letter again (a double letter, "LL") needs a RELEASE in between: the hand leaves the frame, or for at least
  ``release_s`` seconds the top letter is something else (another letter or an unsure frame).
- J and Z are motion letters: a still frame that looks like J or Z never joins the text in a stream; the motion
  recogniser adds them (below). ``space()``, ``delete()`` and ``clear()`` are thread-safe (UI buttons); after any of
  them the current letter must be held ``stable_s`` again before it is added.

Motion (:class:`MotionTracker`, :func:`is_j_path`, :func:`is_z_path`): the last ``window_s`` seconds of the pinky tip
(for J) and the index tip (for Z), in hand sizes (the landmark box's longer side), x mirrored for left hands.
- J: the hand shape in the window is mostly I (or J) and the pinky tip moves DOWN by >= 0.35 hand sizes and then
  hooks SIDEWAYS by >= 0.15 hand sizes at the bottom (either side, so a mirrored camera image works too).
- Z: the hand shape is mostly an index-finger shape (D, Z, G or X) and the index tip's path, simplified by
  Ramer-Douglas-Peucker (``cv2.approxPolyDP``), has three strokes: sideways >= 0.3 hand sizes, back diagonally DOWN
  (>= 0.2) and sideways again in the first stroke's direction (either direction, for mirrored images).
- When a motion letter is recognised it is added (a trailing I / D / G / X that the held start of the motion added
  within the window is replaced by it) and the trajectory starts afresh.
"""

from __future__ import annotations

import threading
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


class Speller:
    """Spelled text from timed per-frame letters (see the module docstring for the rules). Thread-safe."""

    def __init__(self, stable_s: float = 0.6, release_s: float = 0.25, min_confidence: float = 0.6,
                 motion_window_s: float = 1.5) -> None:
        self.stable_s = stable_s
        self.release_s = release_s
        self.min_confidence = min_confidence
        self.motion = MotionTracker(motion_window_s)
        self._lock = threading.Lock()
        self._text: list[str] = []
        self._reset_state()

    def _reset_state(self) -> None:
        self._candidate: str | None = None
        self._since = 0.0
        self._last: str | None = None       # the letter last added
        self._last_t = -1e9                 # when it was added
        self._released = True
        self._other_since: float | None = None
        self._restart = False

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._text)

    # -- buttons (any thread)
    def space(self) -> None:
        with self._lock:
            self._text.append(" ")
            self._last, self._restart = " ", True

    def delete(self) -> None:
        with self._lock:
            if self._text:
                self._text.pop()
            self._last = self._text[-1] if self._text else None
            self._restart = True

    def clear(self) -> None:
        with self._lock:
            self._text.clear()
            self._reset_state()
            self._restart = True
            self.motion.reset()

    def reset(self) -> None:
        self.clear()

    # -- frames (the processing thread)
    def update(self, t: float, letter: str | None, score: float = 1.0, *, index_tip=None, pinky_tip=None,
               hand_size: float = 1.0, mirrored: bool = False) -> str | None:
        """One frame at time ``t`` (s): its top letter (None = no hand) and confidence; returns the letter added to
        the text at this frame, if any."""
        with self._lock:
            if self._restart:
                self._restart = False
                self._candidate, self._since = None, t
            if letter is None:  # no hand: a release
                self._released, self._candidate, self._other_since = True, None, None
                self.motion.reset()
                return None
            sure = letter if score >= self.min_confidence else None
            if index_tip is not None and pinky_tip is not None:
                moved = self.motion.update(t, index_tip, pinky_tip, hand_size, mirrored, sure)
                if moved:
                    return self._add_motion(t, moved)
            if sure != self._candidate:
                self._candidate, self._since = sure, t
            if not self._is_last(sure):
                if self._other_since is None:
                    self._other_since = t
                if t - self._other_since >= self.release_s - 1e-9:
                    self._released = True
            else:
                self._other_since = None
            c = self._candidate
            if (c is not None and c not in MOTION_LETTERS and t - self._since >= self.stable_s - 1e-9
                    and (not self._is_last(c) or self._released)):
                self._append(c, t)
                return c
            return None

    def _is_last(self, letter: str | None) -> bool:
        """The letter last added, or the hand shape a motion letter just added ends in (I after J; D, G, X after Z)."""
        if letter is None:
            return False
        return letter == self._last or (self._last == "J" and letter in J_SHAPES) or (
            self._last == "Z" and letter in Z_SHAPES)

    def _append(self, letter: str, t: float) -> None:
        self._text.append(letter)
        self._last, self._last_t, self._released, self._other_since = letter, t, False, None

    def _add_motion(self, t: float, letter: str) -> str:
        shapes = J_SHAPES if letter == "J" else Z_SHAPES
        if self._text and self._text[-1] in shapes and t - self._last_t <= self.motion.window_s + self.stable_s:
            self._text.pop()  # the held start of the motion was added as a still letter: it was the motion letter
        self._append(letter, t)
        self._candidate, self._since = None, t
        return letter
