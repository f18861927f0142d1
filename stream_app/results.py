"""The one result type every processor returns for a frame; annotators, sinks, the UI, tests and evaluators read it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Detection:
    """A box in pixel coordinates of the frame that was processed: ``box = (x1, y1, x2, y2)``."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    track_id: int | None = None

    def to_json(self) -> dict:
        out = {"label": self.label, "score": round(float(self.score), 4), "box": [round(float(v), 1) for v in self.box]}
        if self.track_id is not None:
            out["track_id"] = int(self.track_id)
        return out


@dataclass
class FrameResult:
    """What a processor found in one frame.

    Fields a mode does not use keep their empty default: ``detections`` (leukocyte, motion), ``letter`` /
    ``letter_score`` / ``text`` (fingerspelling), ``top_k`` (ranked class probabilities: fingerspelling's top-5
    letters, the classifier's classes), ``counts`` (any mode that counts), ``landmarks`` (hand points in pixels, for
    drawing). ``timings_ms`` holds per-stage times plus ``total``. ``warning`` is a state worth showing (no hand,
    several hands); ``error`` means the frame could not be processed and the raw frame is shown instead.
    """

    mode: str
    detections: list[Detection] = field(default_factory=list)
    letter: str | None = None
    letter_score: float | None = None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    text: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    landmarks: list[tuple[float, float]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    warning: str | None = None
    error: str | None = None

    def to_json(self, frame_index: int, time_s: float) -> dict:
        """One JSONL record (the schema is documented in the README)."""
        return {
            "frame": int(frame_index),
            "time_s": round(float(time_s), 4),
            "mode": self.mode,
            "detections": [d.to_json() for d in self.detections],
            "letter": self.letter,
            "letter_score": None if self.letter_score is None else round(float(self.letter_score), 4),
            "top_k": [[label, round(float(p), 4)] for label, p in self.top_k],
            "text": self.text,
            "counts": {k: int(v) for k, v in self.counts.items()},
            "timings_ms": {k: round(float(v), 2) for k, v in self.timings_ms.items()},
            "warning": self.warning,
            "error": self.error,
        }
