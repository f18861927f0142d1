"""Which letter a stream shows: the decision a reader makes while watching a held hand. Pure numpy, timestamp-driven.

Per-frame letter probabilities (26, from :mod:`.recognition`, whichever classifier ships) flicker on a held hand:
neighbours such as Y/J, I/Y or M/N trade places from one frame to the next. :class:`LetterDecider` turns them into
the letter a reader would name, one call per frame of one stream:

1. **Average over the held hand.** An exponential moving average of the probabilities with time constant
   ``average_s`` (weights follow the timestamps, so a late frame counts for the time it stood for). It restarts
   when the hand is lost, when time jumps by more than ``MAX_GAP_S`` (time going back starts a new stream), and
   when the hand's shape clearly changes: the 21 landmarks (wrist-relative, in hand sizes, left hands mirrored,
   turned about the wrist to fit best, so a sway of the hand is no change) move on average by more than
   ``SHAPE_CHANGE`` from their own running average. A new letter is then not mixed with the last one.
2. **J and Z only from motion.** In the average, the still-shape probabilities of J and Z are dropped and the rest
   renormalised over the other 24 letters. J / Z are shown only when :class:`~.motion.MotionTracker` sees the J
   hook / the Z strokes. After that, holding the motion's end shape keeps showing it, as a reader would: the
   averaged probabilities of the letters that shape looks like (I and J's still for J; D, G, X and Z's still for Z)
   count for the motion letter, until the hand is lost or another letter wins by the rule below.
3. **Hysteresis.** With no letter shown, a letter is shown once it has clearly won for ``show_s`` seconds without a
   break: averaged probability >= ``min_confidence`` and >= ``margin`` ahead of the runner-up. A shown letter is
   replaced only by a letter that stays >= ``margin`` ahead of it (and >= ``min_confidence``) for ``show_s``; it
   goes back to none only when its own averaged probability stays below ``min_confidence - margin`` for
   ``show_s`` (a motion letter stays until release or another letter). Brief dips flip nothing.

:class:`Decision` carries the shown letter (None while nothing is stable, and without a hand), its averaged
probability, the averaged top 5 (over the 24 letters, or with the end shape counted for a shown motion letter),
when that letter began to win (``since``: the speller counts ``stable_s`` from there), and the motion letter
recognised at this frame, if any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stream_app.modes.fingerspell import LETTERS
from stream_app.modes.fingerspell.hands import INDEX_TIP, PINKY_TIP
from stream_app.modes.fingerspell.motion import J_SHAPES, MOTION_LETTERS, Z_SHAPES, MotionTracker

# Mean landmark displacement (hand sizes, after the best turn about the wrist) from the running average that counts
# as a new hand shape. Measured on the 72 Roboflow test photos held up in streams (sway +-10 degrees, 3 px jitter):
# the largest displacement within a clip was 0.04 (median over clips; 4 clips with MediaPipe tracking jumps reached
# 0.2-0.5); between the shapes of two photos of different letters it was 0.31 (median), 0.13 (5th percentile).
# Close pairs (H/U, U/V, B/F, S/T: 0.04-0.09) stay under it: the average alone, not a restart, carries those.
SHAPE_CHANGE = 0.12
MAX_GAP_S = 1.0          # a pause longer than this between two frames starts the average afresh
TOP_K = 5
_INDEX = {letter: i for i, letter in enumerate(LETTERS)}
_MOTION_IDX = [_INDEX[m] for m in MOTION_LETTERS]
END_SHAPES = {"J": J_SHAPES, "Z": Z_SHAPES}   # what a motion letter's end shape looks like to a still classifier


@dataclass
class Decision:
    """The decision at one frame (see the module docstring)."""

    letter: str | None = None
    score: float | None = None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    since: float | None = None
    motion: str | None = None


def hand_shape(points: np.ndarray, size: float, mirrored: bool) -> np.ndarray:
    """(21, 2) pixel landmarks -> wrist-relative, divided by the hand size, x mirrored for left hands."""
    xy = np.asarray(points, np.float32)[:, :2]
    shape = (xy - xy[0]) / max(float(size), 1e-6)
    if mirrored:
        shape[:, 0] = -shape[:, 0]
    return shape


def shape_distance(reference: np.ndarray, shape: np.ndarray) -> float:
    """Mean landmark distance between two :func:`hand_shape` arrays once ``shape`` is turned about the wrist to fit
    ``reference`` best (2-D orthogonal Procrustes, rotation only)."""
    cross = float((reference[:, 0] * shape[:, 1] - reference[:, 1] * shape[:, 0]).sum())
    angle = math.atan2(cross, float((reference * shape).sum()))
    c, s = math.cos(angle), math.sin(angle)
    turned = shape @ np.array([[c, -s], [s, c]], np.float32)
    return float(np.linalg.norm(reference - turned, axis=1).mean())


class LetterDecider:
    """One per stream. ``update`` once per frame with increasing timestamps; ``reset`` forgets the stream."""

    def __init__(self, average_s: float = 0.3, show_s: float = 0.2, margin: float = 0.15,
                 min_confidence: float = 0.5, motion_letters: bool = True, motion_window_s: float = 1.5) -> None:
        self.average_s = average_s
        self.show_s = show_s
        self.margin = margin
        self.min_confidence = min_confidence
        self.motion_letters = motion_letters
        self.motion = MotionTracker(motion_window_s)
        self.reset()

    def reset(self) -> None:
        """Forget the hand: the average, the shown letter and the motion trajectory."""
        self._t: float | None = None
        self._avg: np.ndarray | None = None
        self._shape: np.ndarray | None = None
        self._shown: str | None = None
        self._since: float | None = None
        self._motion: str | None = None       # the shown letter came from a motion (its end shape counts for it)
        self._challenger: str | None = None
        self._challenger_since = 0.0
        self._low_since: float | None = None
        self.motion.reset()

    def update(self, t: float, probs: np.ndarray | None, points: np.ndarray | None = None, hand_size: float = 1.0,
               mirrored: bool = False) -> Decision:
        """One frame at time ``t`` (s): the hand's 26 letter probabilities (None = no hand) and its (21, 2+) landmarks
        in pixels (optional; without them there is no shape-change restart and no motion)."""
        if probs is None or (self._t is not None and t < self._t):  # no hand, or time went back: a new stream
            self.reset()
            if probs is None:
                return Decision()
        probs = np.asarray(probs, np.float64).reshape(len(LETTERS))
        shape = None if points is None else hand_shape(points, hand_size, mirrored)
        self._average(t, probs, shape)
        moved = None
        if self.motion_letters and points is not None:
            top = LETTERS[int(np.argmax(probs))]
            moved = self.motion.update(t, tuple(points[INDEX_TIP, :2]), tuple(points[PINKY_TIP, :2]), hand_size,
                                       mirrored, top)
            if moved:
                self._show(moved, t, motion=True)
        scores = self._scores()
        self._hysteresis(t, scores)
        order = np.argsort(-scores)[:TOP_K]
        shown = self._shown
        return Decision(shown, None if shown is None else float(scores[_INDEX[shown]]),
                        [(LETTERS[i], float(scores[i])) for i in order], self._since if shown else None, moved)

    # -- averaging
    def _average(self, t: float, probs: np.ndarray, shape: np.ndarray | None) -> None:
        dt = None if self._t is None else t - self._t
        self._t = t
        restart = self._avg is None or dt is None or dt > MAX_GAP_S
        if not restart and shape is not None and self._shape is not None:
            restart = shape_distance(self._shape, shape) > SHAPE_CHANGE
        if restart:
            self._avg = probs.copy()
            self._shape = shape
            return
        a = 1.0 if self.average_s <= 0 else 1.0 - math.exp(-dt / self.average_s)
        self._avg += a * (probs - self._avg)
        if shape is not None:
            self._shape = shape if self._shape is None else self._shape + a * (shape - self._shape)

    def _scores(self) -> np.ndarray:
        """The averaged probabilities the decision reads: J and Z dropped and the rest renormalised, or, while a
        motion letter is shown, its end shape's letters counted for it."""
        s = self._avg.copy()
        if self._motion is not None:
            group = [_INDEX[x] for x in END_SHAPES[self._motion]]
            merged = float(s[group].sum())
            s[group] = 0.0
            s[_MOTION_IDX] = 0.0
            s[_INDEX[self._motion]] = merged
        else:
            s[_MOTION_IDX] = 0.0
        total = float(s.sum())
        return s / total if total > 0 else s

    # -- hysteresis
    def _show(self, letter: str | None, since: float, motion: bool = False) -> None:
        self._shown, self._since = letter, since
        self._motion = letter if motion else None
        self._challenger, self._low_since = None, None

    def _hysteresis(self, t: float, scores: np.ndarray) -> None:
        order = np.argsort(-scores)
        best = LETTERS[int(order[0])]
        shown = self._shown
        if shown is None:
            wins = scores[order[0]] >= self.min_confidence and scores[order[0]] - scores[order[1]] >= self.margin
        else:
            wins = best != shown and scores[order[0]] >= max(self.min_confidence,
                                                             scores[_INDEX[shown]] + self.margin)
        if wins:
            if best != self._challenger:
                self._challenger, self._challenger_since = best, t
            if t - self._challenger_since >= self.show_s - 1e-9:
                self._show(best, self._challenger_since)
                return
        else:
            self._challenger = None
        if shown is not None and self._motion is None:
            if scores[_INDEX[shown]] < self.min_confidence - self.margin:
                if self._low_since is None:
                    self._low_since = t
                if t - self._low_since >= self.show_s - 1e-9:
                    self._show(None, t)
            else:
                self._low_since = None
