"""The result of one frame, one type for every mode: annotators, sinks, the UI, tests and evaluators read it.

:class:`FrameResult` knows no mode. It holds what any mode may find (:class:`Detections`, ranked class
probabilities, counts, per-stage timings, a warning or an error) and a mode's own fields as typed :class:`Extras`,
a dataclass the mode's package defines (the fingerspelling letter and spelled text, the classifier's model name).

:class:`Detections` follows the layout of supervision's ``sv.Detections`` (columns of boxes, scores, class and
tracker ids, checked when made, filtered by indexing), in a small type of our own: supervision 0.31.2 installs
beside our pins without opencv-python, but ``import supervision`` takes 1.3-3.9 s here (warm and cold, under load;
its package imports every annotator and ``scipy.interpolate``), it needs four more packages, and it names classes by
integer id where every reader here wants the label; we use four columns of its 2,500-line ``core.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

NO_TRACK = -1  # track_ids entry of a box that no tracker follows


@dataclass(frozen=True)
class Detection:
    """One row of :class:`Detections`: a box in pixel coordinates of the processed frame, ``(x1, y1, x2, y2)``."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    track_id: int | None = None

    def to_json(self) -> dict:
        out = {"label": self.label, "score": round(float(self.score), 4), "box": [round(float(v), 1) for v in self.box]}
        if self.track_id is not None:
            out["track_id"] = int(self.track_id)
        return out


class Detections:
    """The boxes of one frame as columns: ``boxes`` (N, 4) float32 ``x1, y1, x2, y2`` in pixels, ``scores`` (N,)
    float32, ``labels`` (N,) str, ``track_ids`` (N,) int64 (``NO_TRACK`` = -1 where no tracker follows the box).

    Checked when made (shapes, equal lengths, finite boxes with x1 <= x2 and y1 <= y2), so a bad box fails where it
    is made, not where it is drawn. Read-only; index with a boolean mask, a list of indices or a slice for a filtered
    copy (``dets[dets.labels == "WBC"]``); iterating gives :class:`Detection` rows.
    """

    __slots__ = ("boxes", "scores", "labels", "track_ids")

    def __init__(self, boxes: Sequence | np.ndarray = (), scores: Sequence | np.ndarray = (),
                 labels: Sequence | np.ndarray = (), track_ids: Sequence | np.ndarray | None = None) -> None:
        boxes = np.array(boxes, dtype=np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4) x1 y1 x2 y2, got shape {boxes.shape}")
        n = len(boxes)
        scores = np.array(scores, dtype=np.float32).reshape(-1)
        labels = np.array(labels, dtype=str).reshape(-1) if len(labels) else np.zeros(0, dtype=str)
        track_ids = (np.full(n, NO_TRACK, np.int64) if track_ids is None else
                     np.array([NO_TRACK if t is None else t for t in track_ids], dtype=np.int64).reshape(-1))
        for name, column in (("scores", scores), ("labels", labels), ("track_ids", track_ids)):
            if len(column) != n:
                raise ValueError(f"{name} has {len(column)} entries for {n} boxes")
        if not np.isfinite(boxes).all():
            raise ValueError("boxes hold NaN or infinite coordinates")
        if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
            raise ValueError("boxes must have x1 <= x2 and y1 <= y2")
        for name, column in (("boxes", boxes), ("scores", scores), ("labels", labels), ("track_ids", track_ids)):
            column.flags.writeable = False
            object.__setattr__(self, name, column)

    def __setattr__(self, name, value) -> None:
        raise AttributeError("Detections is read-only: index it for a filtered copy")

    @classmethod
    def empty(cls) -> "Detections":
        return cls()

    @classmethod
    def from_rows(cls, rows: Sequence[Detection]) -> "Detections":
        return cls([r.box for r in rows], [r.score for r in rows], [r.label for r in rows],
                   [r.track_id for r in rows])

    @classmethod
    def merge(cls, parts: Sequence["Detections"]) -> "Detections":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls()
        return cls(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                   np.concatenate([p.labels for p in parts]), np.concatenate([p.track_ids for p in parts]))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> "Detections":
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(self.boxes[index], self.scores[index], self.labels[index], self.track_ids[index])

    def __iter__(self) -> Iterator[Detection]:
        for box, score, label, track in zip(self.boxes, self.scores, self.labels, self.track_ids):
            yield Detection(str(label), float(score), tuple(float(v) for v in box),
                            None if track == NO_TRACK else int(track))

    def __eq__(self, other) -> bool:
        return isinstance(other, Detections) and all(
            np.array_equal(getattr(self, c), getattr(other, c)) for c in self.__slots__)

    def __repr__(self) -> str:
        return f"Detections({len(self)}: {', '.join(sorted(set(self.labels.tolist()))) or 'none'})"

    def to_json(self) -> list[dict]:
        return [row.to_json() for row in self]


class Extras:
    """A mode's own fields of a :class:`FrameResult`: the mode defines a dataclass that subclasses this.

    The methods say how the generic readers show them, so no reader needs to know the mode: ``json_fields()`` the
    JSONL fields it fills (README schema: ``letter``, ``letter_score``, ``text``), ``lines()`` plain lines for the
    panels, ``headline()`` a ``(name, value, note)`` the live panel shows large, ``caption`` a line drawn along the
    bottom of the frame and shown under the panel with the title ``caption_title``.
    """

    caption_title = "Text"

    def json_fields(self) -> dict:
        return {}

    def lines(self) -> list[str]:
        return []

    def headline(self) -> tuple[str, str, str] | None:
        return None

    @property
    def caption(self) -> str:
        return ""


@dataclass
class FrameResult:
    """What a processor found in one frame.

    Fields a mode does not use keep their empty default: ``detections`` (boxes), ``top_k`` (ranked class
    probabilities, most probable first: fingerspelling's top-5 letters, the classifier's classes), ``counts`` (any
    mode that counts), ``extras`` (the mode's own typed fields). ``timings_ms`` holds per-stage times plus ``total``.
    ``warning`` is a state worth showing (no hand, several hands); ``error`` means the frame could not be processed
    and the raw frame is shown instead. ``time_s`` is the timestamp the processor was given with the frame.
    """

    mode: str
    detections: Detections = field(default_factory=Detections)
    top_k: list[tuple[str, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    warning: str | None = None
    error: str | None = None
    extras: Extras | None = None
    time_s: float | None = None  # the frame's timestamp in its stream (None: a still image)

    @property
    def caption(self) -> str:
        return self.extras.caption if self.extras is not None else ""

    def to_json(self, frame_index: int, time_s: float) -> dict:
        """One JSONL record (the schema is documented in the README; the same keys for every mode)."""
        record = {
            "frame": int(frame_index),
            "time_s": round(float(time_s), 4),
            "mode": self.mode,
            "detections": self.detections.to_json(),
            "letter": None,
            "letter_score": None,
            "top_k": [[label, round(float(p), 4)] for label, p in self.top_k],
            "text": "",
            "counts": {k: int(v) for k, v in self.counts.items()},
            "timings_ms": {k: round(float(v), 2) for k, v in self.timings_ms.items()},
            "warning": self.warning,
            "error": self.error,
        }
        if self.extras is not None:
            record.update(self.extras.json_fields())
        return record
