"""Seeding, the wall-clock budget, keeping the best checkpoint, and progress logging for training runs."""

from __future__ import annotations

import copy
import logging
import random
import sys
import time
from typing import Any, Callable

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (a run then repeats on the same machine)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TimeBudget:
    """A wall-clock budget (``--max-minutes``) counted from creation, on the monotonic clock."""

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = float(minutes) * 60.0
        self._clock = clock
        self.start = clock()

    def elapsed_s(self) -> float:
        return self._clock() - self.start

    def left_s(self) -> float:
        return max(0.0, self.seconds - self.elapsed_s())

    def fraction(self) -> float:
        """How much of the budget is used, 0 to 1 (schedules that follow the budget, e.g. a cosine)."""
        return min(1.0, self.elapsed_s() / self.seconds) if self.seconds > 0 else 1.0

    def expired(self, grace_s: float = 0.0) -> bool:
        return self.elapsed_s() > self.seconds + grace_s

    def fits(self, seconds: float) -> bool:
        """Whether ``seconds`` more (e.g. one more epoch at the last epoch's pace) end within the budget."""
        return self.elapsed_s() + seconds <= self.seconds


class BestCheckpoint:
    """Keeps the best model seen so far: a copy of its ``state_dict``, its score and what the caller says about it.

    ``consider(score, model, **info)`` returns True when ``score`` is better: higher (``higher_is_better``) or lower,
    by more than ``min_delta``; with ``ties_improve`` an equal score counts as better (the later model is kept).
    Scores may be tuples (compared in order, e.g. WBC AP50, then AP50:95, then mAP50). ``keep_state=False`` keeps
    only the score and info (the caller saves the weights itself). :meth:`restore` loads the best state back.
    """

    def __init__(self, higher_is_better: bool = True, min_delta: float = 0.0, ties_improve: bool = False,
                 keep_state: bool = True, start: Any = None, info: dict | None = None) -> None:
        self.higher_is_better = higher_is_better
        self.min_delta = min_delta
        self.ties_improve = ties_improve
        self.keep_state = keep_state
        self.score = start
        self.info: dict = dict(info or {})
        self.state: dict | None = None

    def better(self, score: Any) -> bool:
        if self.score is None:
            return True
        if self.ties_improve and score == self.score:
            return True
        if self.min_delta:
            return (score > self.score + self.min_delta) if self.higher_is_better else (
                score < self.score - self.min_delta)
        return score > self.score if self.higher_is_better else score < self.score

    def consider(self, score: Any, model=None, **info: Any) -> bool:
        if not self.better(score):
            return False
        self.score, self.info = score, info
        if self.keep_state and model is not None:
            self.state = copy.deepcopy(model.state_dict())
        return True

    def restore(self, model) -> bool:
        """Load the best state into ``model``; False when there is none (nothing was considered)."""
        if self.state is None:
            return False
        model.load_state_dict(self.state)
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest and the CLI may swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def training_logger(name: str) -> logging.Logger:
    """``stream_app.training.<name>``: INFO and up to stderr as ``[HH:MM:SS] message``.

    It has its own handler and does not propagate, so nothing here calls ``logging.basicConfig`` (which would
    replace the CLI's configuration) and progress never mixes into stdout, where commands print their JSON.
    """
    logger = logging.getLogger(f"stream_app.training.{name}")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
