"""Turning per-frame letters into spelled text; J / Z from motion (:mod:`.motion`). Driven by timestamps.

Spelling rules (:class:`Speller`):
- A letter joins the text once it has been the frame's top letter, at confidence >= ``min_confidence``, for
  ``stable_s`` seconds without interruption.
- The same letter again (a double letter, "LL") needs a RELEASE in between: the hand leaves the frame, or for at least
  ``release_s`` seconds the top letter is something else (another letter or an unsure frame).
- J and Z are motion letters: a still frame that looks like J or Z never joins the text in a stream; the motion
  recogniser adds them (below). ``space()``, ``delete()`` and ``clear()`` are thread-safe (UI buttons); after any of
  them the current letter must be held ``stable_s`` again before it is added.

Motion (:class:`~.motion.MotionTracker`): when a motion letter is recognised it is added (a trailing I / D / G / X
that the held start of the motion added within the window is replaced by it).
"""

from __future__ import annotations

import threading

from stream_app.modes.fingerspell.motion import J_SHAPES, MOTION_LETTERS, Z_SHAPES, MotionTracker


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
