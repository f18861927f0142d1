"""Turning the letters a stream shows into spelled text. Pure Python, driven by timestamps; thread-safe buttons.

The letters come from :class:`~.decide.LetterDecider` (averaged, with hysteresis, J / Z only from motion); the
speller applies the spelling rules (:class:`Speller`):

- A letter joins the text once it has been held for ``stable_s`` seconds without interruption: counted from when it
  began to win (the decision's ``since``), or, for a caller that gives no ``since``, from its first frame.
- The same letter again (a double letter, "LL") needs a RELEASE in between: the hand leaves the frame, or for at least
  ``release_s`` seconds another letter or no letter is shown.
- J and Z are motion letters: they join the text at once when the motion recogniser sees them (``motion=True``), a
  trailing I (for J) or D / G / X (for Z) that the held start of the motion added within the motion window is
  replaced by it, and holding the motion's end shape (I after J; D, G, X after Z) does not add that letter again. A J
  or Z that comes without its motion never joins the text.
- ``space()``, ``delete()`` and ``clear()`` are thread-safe (UI buttons); after any of them the current letter must
  be held ``stable_s`` again before it is added.
"""

from __future__ import annotations

import threading

from stream_app.modes.fingerspell.motion import J_SHAPES, MOTION_LETTERS, Z_SHAPES


class Speller:
    """Spelled text from the timed letters a stream shows (see the module docstring for the rules). Thread-safe."""

    def __init__(self, stable_s: float = 0.6, release_s: float = 0.25, motion_window_s: float = 1.5) -> None:
        self.stable_s = stable_s
        self.release_s = release_s
        self.motion_window_s = motion_window_s
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
        self._floor = -1e9                  # a letter's hold counts from here at the earliest (the last button)

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

    def reset(self) -> None:
        self.clear()

    # -- frames (the processing thread)
    def update(self, t: float, letter: str | None, *, hand: bool | None = None, since: float | None = None,
               motion: bool = False) -> str | None:
        """One frame at time ``t`` (s): the letter shown (None = none), whether a hand is in view (default: a
        letter is shown), since when the letter has been winning (optional), and whether it was recognised from a
        motion at this frame. Returns the letter added to the text at this frame, if any."""
        with self._lock:
            if self._restart:
                self._restart = False
                self._candidate, self._since, self._floor = None, t, t
            if not (letter is not None if hand is None else hand):  # no hand: a release
                self._released, self._candidate, self._other_since = True, None, None
                return None
            if motion and letter in MOTION_LETTERS:
                return self._add_motion(t, letter)
            if letter != self._candidate:
                self._candidate, self._since = letter, t
            if not self._is_last(letter):
                if self._other_since is None:
                    self._other_since = t
                if t - self._other_since >= self.release_s - 1e-9:
                    self._released = True
            else:
                self._other_since = None
            c = self._candidate
            start = self._since if since is None else max(since, self._floor)
            if (c is not None and c not in MOTION_LETTERS and t - start >= self.stable_s - 1e-9
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
        if self._text and self._text[-1] in shapes and t - self._last_t <= self.motion_window_s + self.stable_s:
            self._text.pop()  # the held start of the motion was added as a still letter: it was the motion letter
        self._append(letter, t)
        self._candidate, self._since = None, t
        return letter
