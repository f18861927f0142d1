"""The mode contract the UI, the CLI and the tests share: :class:`Processor`, :class:`ModeSpec` (how a mode plugs
in), :class:`Hook` (a function named by string, imported when called) and :func:`setting` (a settings field).

A processor takes one frame (see :mod:`stream_app.frames`: HxWx3 uint8 RGB) and returns one
:class:`~stream_app.results.FrameResult` whose ``time_s`` is the timestamp it was given, so a result drawn on a
later frame can say how old it is. It keeps per-stream state (spelled text, tracks, counters), so each browser
session or CLI run makes its own instance; heavy models are loaded once per process by the mode module and shared.
Processors never import Streamlit. The registry that finds modes by name is :mod:`stream_app.modes`.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from stream_app.annotators import DEFAULT_ANNOTATORS
from stream_app.annotators import annotate as draw
from stream_app.frames import check_frame
from stream_app.results import FrameResult

log = logging.getLogger(__name__)


def setting(default: Any, help: str, *, min: float | None = None, max: float | None = None,  # noqa: A002
            step: float | None = None, choices: tuple | None = None) -> Any:
    """A field of a mode's settings dataclass, with what the UI needs to draw a control for it."""
    meta = {"help": help, "min": min, "max": max, "step": step, "choices": choices}
    return field(default=default, metadata=meta)


def setting_type(f: dataclasses.Field) -> type | None:
    """The Python type of a settings field's values: its default's, else its annotation's (None when neither says;
    one answer for the CLI's ``--set`` parser and the pages' widgets)."""
    if f.default is not dataclasses.MISSING and f.default is not None:
        return type(f.default)
    names = {"int": int, "float": float, "bool": bool, "str": str}
    return names.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))


class Processor(abc.ABC):
    """Frame in, :class:`FrameResult` out. Subclasses implement :meth:`_process`.

    ``timestamp_s`` is ``None`` for a still image and increasing seconds for the frames of one stream, so a mode can
    track across frames (video) or look at each image alone (stills). A processor is a plain per-frame function with
    state: one thread at a time calls it, and every call does the whole frame. Live pages do not call it from the
    camera's callback: :class:`stream_app.live.LatestFrameWorker` feeds it the newest camera frame in a background
    thread and drops the frames that came in meanwhile, so a live processor sees a stream with gaps (its timestamps
    say how long). ``live=True`` says the frames come that way; ``live=False`` (files, CLI, tests) sees every frame.

    A mode whose work is two steps that share no per-stream state may say so (``two_step = True``, :meth:`_first`,
    :meth:`_second`): the live worker then runs step one of frame t+1 beside step two of frame t, in two threads.
    """

    mode: ClassVar[str]
    two_step: ClassVar[bool] = False

    def __init__(self, settings: Any, live: bool = False) -> None:
        self.settings = settings
        self.live = live

    @abc.abstractmethod
    def _process(self, frame: np.ndarray, timestamp_s: float | None) -> FrameResult:
        """Process a checked frame; fill ``timings_ms`` per stage."""

    def process(self, frame: np.ndarray, timestamp_s: float | None = None) -> FrameResult:
        """Check the frame layout, process it and add the ``total`` time. Raises on bad frames or model errors."""
        start = time.perf_counter()
        result = self._process(check_frame(frame), timestamp_s)
        result.timings_ms["total"] = (time.perf_counter() - start) * 1000.0
        result.time_s = timestamp_s
        return result

    def process_safely(self, frame: np.ndarray, timestamp_s: float | None = None) -> FrameResult:
        """Like :meth:`process`, but an exception becomes ``result.error`` so one bad frame never kills a stream."""
        try:
            return self.process(frame, timestamp_s)
        except Exception as exc:  # noqa: BLE001 - the stream must go on; the error is reported, not hidden
            return self._failed(exc, timestamp_s)

    def _failed(self, exc: Exception, timestamp_s: float | None) -> FrameResult:
        log.debug("frame failed: %s", traceback.format_exception(exc))
        return FrameResult(mode=self.mode, error=f"{type(exc).__name__}: {exc}", time_s=timestamp_s)

    # ---- two-step modes (the live worker's pipeline) ------------------------------------------------------------
    def _first(self, frame: np.ndarray, timestamp_s: float | None) -> Any:
        """Step one of a ``two_step`` mode on a checked frame; returns what step two needs."""
        raise NotImplementedError(f"{type(self).__name__} is not a two-step mode")

    def _second(self, frame: np.ndarray, timestamp_s: float | None, first: Any) -> FrameResult:
        """Step two of a ``two_step`` mode: the frame's result from step one's output."""
        raise NotImplementedError(f"{type(self).__name__} is not a two-step mode")

    def first_step(self, frame: np.ndarray, timestamp_s: float | None = None) -> "Staged":
        """Step one of a ``two_step`` mode, timed; an exception is carried to :meth:`second_step` (never raised)."""
        start = time.perf_counter()
        try:
            value, error = self._first(check_frame(frame), timestamp_s), None
        except Exception as exc:  # noqa: BLE001 - reported as the frame's error by second_step
            value, error = None, exc
        return Staged(frame, timestamp_s, value, (time.perf_counter() - start) * 1000.0, error)

    def second_step(self, staged: "Staged") -> FrameResult:
        """Step two on :meth:`first_step`'s output: the frame's result, as :meth:`process_safely` gives it (``total``
        is both steps' time, without the wait between them)."""
        if staged.error is not None:
            return self._failed(staged.error, staged.time_s)
        start = time.perf_counter()
        try:
            result = self._second(staged.frame, staged.time_s, staged.value)
        except Exception as exc:  # noqa: BLE001 - as in process_safely
            return self._failed(exc, staged.time_s)
        result.timings_ms["total"] = staged.first_ms + (time.perf_counter() - start) * 1000.0
        result.time_s = staged.time_s
        return result

    def update_settings(self, **changes: Any) -> None:
        """Change settings between frames (UI controls); unknown names are an error."""
        self.settings = dataclasses.replace(self.settings, **changes)

    def reset(self) -> None:
        """Forget per-stream state (spelled text, tracks, counts)."""

    def actions(self) -> dict[str, Callable[[], None]]:
        """Buttons the pages show for this mode, by label (e.g. "Space", "Delete", "Clear text", "Reset WBC counts").
        Live pages call them from the page's thread between frames (the session holds the worker meanwhile), like
        :meth:`update_settings` and :meth:`reset`."""
        return {}

    def close(self) -> None:
        """Release per-stream resources (hand trackers, model sessions of its own); the processor is not used after."""


@dataclass(frozen=True)
class Staged:
    """What :meth:`Processor.first_step` hands to :meth:`Processor.second_step`: the frame, its timestamp, step one's
    output and time, or step one's exception."""

    frame: np.ndarray
    time_s: float | None
    value: Any
    first_ms: float
    error: Exception | None = None


class Hook:
    """A function named ``"package.module:function"`` and imported when it is first called.

    Mode specs name their CLI, bench, warm-up and report functions this way: listing the modes (``--help``, the
    pages' selector) then imports no torch, and no hand-written wrapper is needed to put an import off.
    """

    def __init__(self, target: str) -> None:
        module, sep, name = target.partition(":")
        if not (module and sep and name):
            raise ValueError(f"a hook is named 'package.module:function', got {target!r}")
        self.target = target

    def resolve(self) -> Callable:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Hook({self.target!r})"


HOOKS = ("add_evaluate_args", "evaluate", "add_train_args", "train", "bench_frames", "bench_extra", "warm_up", "report",
         "follower")


@dataclass(frozen=True)
class ModeSpec:
    """How a mode plugs in: its processor, its settings, and optional hooks, each a function or a
    ``"package.module:function"`` name (made a :class:`Hook`, imported when called).

    ``add_evaluate_args(parser)`` / ``add_train_args(parser)`` add argparse options; ``evaluate(args)`` and
    ``train(args)`` return an exit code. ``bench_frames(n, width, height)`` yields frames that exercise the mode
    (default: generated moving shapes); ``bench_extra(frames) -> dict`` adds mode-specific numbers to ``bench``'s
    output (e.g. a reference model timed in the same run). ``warm_up()`` loads the shared models ahead of the first
    frame. ``report(image, result) -> bytes`` makes a downloadable PNG report for a still image (the image page
    offers it when present); ``notice`` is a line the pages always show with the mode (e.g. "not a diagnostic
    device"). ``annotators`` draw the mode's results (:meth:`annotate`; the shared ones from
    :mod:`stream_app.annotators` plus any of the mode's own). ``follower()`` makes, per live stream, an object that
    carries the latest result to the newer camera frame it is drawn on: ``see(frame, time_s)`` on every camera frame
    (cheap: it runs in the frame callback), ``carry(result, time_s) -> result`` before drawing (e.g. the boxes moved
    by the slide's motion since the analysed frame; :mod:`stream_app.live`). ``counts_over_time``: the pages
    offer the counts CSV.
    """

    name: str
    title: str
    description: str
    processor_cls: type[Processor]
    settings_cls: type
    add_evaluate_args: Callable | str | None = None
    evaluate: Callable | str | None = None
    add_train_args: Callable | str | None = None
    train: Callable | str | None = None
    bench_frames: Callable | str | None = None
    bench_extra: Callable | str | None = None
    warm_up: Callable[[], None] | str | None = None
    report: Callable | str | None = None
    follower: Callable | str | None = None
    notice: str | None = None
    annotators: tuple = DEFAULT_ANNOTATORS
    counts_over_time: bool = True  # whether a "counts over time" CSV means something (fingerspelling's does not)

    def __post_init__(self) -> None:
        for name in HOOKS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Hook(value))

    def annotate(self, frame: np.ndarray, result: FrameResult, scale: float = 1.0) -> np.ndarray:
        """An annotated copy of ``frame`` drawn by this mode's annotators."""
        return draw(frame, result, scale, self.annotators)

    def create(self, live: bool = False, **settings: Any) -> Processor:
        return self.processor_cls(self.settings_cls(**settings), live=live)

    def settings_fields(self) -> list[dataclasses.Field]:
        return list(dataclasses.fields(self.settings_cls))
