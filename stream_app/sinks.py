"""Sinks: where a run's frames and results go. Each is a :class:`Sink`: ``write(frame, result)`` once per frame, in
order, then ``close()`` (also a context manager), so :mod:`stream_app.pipeline` runs one loop whatever it writes.

- :class:`VideoSink`: the annotated MP4 (PyAV, H.264), frames drawn by the mode's annotators;
- :class:`JsonlSink`: one JSON object per frame (the README's schema, :meth:`FrameResult.to_json`);
- :class:`CountsCsvSink`: counts over time as CSV (one row per frame that has counts);
- :class:`ImageSink`: annotated PNGs, one per still image.
"""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from stream_app.results import FrameResult

Annotate = Callable[[np.ndarray, FrameResult], np.ndarray]


class Sink(Protocol):
    def write(self, frame: np.ndarray, result: FrameResult) -> None:
        """One processed frame (the original pixels) and its result."""

    def close(self) -> None:
        """Finish the output (flush, write the file); a sink is complete only after this."""


class _ClosingSink:
    """``with sink:`` closes it."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoSink(_ClosingSink):
    """Write RGB frames to an H.264 MP4 at a fixed frame rate, each drawn by ``annotate(frame, result)`` when given
    (without it, or without a result, the frame is written as it is: :func:`stream_app.synthetic.write_video`).

    H.264 in yuv420p needs even sizes, so an odd width or height is padded by one edge pixel.
    """

    def __init__(self, path: str | Path, fps: float | Fraction, annotate: Annotate | None = None,
                 codec: str = "libx264") -> None:
        import av

        self.annotate = annotate
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"preset": "veryfast", "crf": "23"}
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray, result: FrameResult | None = None) -> None:
        import av

        if self.annotate is not None and result is not None:
            frame = self.annotate(frame, result)
        h, w = frame.shape[:2]
        if self._size is None:
            self._size = (w + w % 2, h + h % 2)
            self._stream.width, self._stream.height = self._size
        if (w, h) != self._size:
            frame = _fit(frame, self._size)
        elif w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        if self._size is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()
        self._container = None


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


class JsonlSink(_ClosingSink):
    """One JSON object per line per frame (schema in the README and :meth:`FrameResult.to_json`); ``frame`` counts
    the records written, ``time_s`` is the result's (0.0 for a still image). One JSONL for the files of a folder:
    :meth:`start_source` before each file adds ``source`` to its records and numbers its frames from 0."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", encoding="utf-8")
        self.lines = 0
        self._source: str | None = None
        self._first_line = 0

    def start_source(self, name: str) -> None:
        self._source, self._first_line = name, self.lines

    def write(self, frame: np.ndarray | None, result: FrameResult) -> None:
        record = result.to_json(self.lines - self._first_line, result.time_s or 0.0)
        if self._source is not None:
            record["source"] = self._source
        self._fh.write(json.dumps(record) + "\n")
        self.lines += 1

    def close(self) -> None:
        self._fh.close()


class CountsCsvSink(_ClosingSink):
    """Counts over time: a row (``time_s`` plus one column per count name) for each frame whose result counts
    something, written as CSV by :func:`write_counts_csv` on :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []

    def write(self, frame: np.ndarray, result: FrameResult) -> None:
        if result.counts:
            self.rows.append({"time_s": round(float(result.time_s or 0.0), 4), **result.counts})

    def close(self) -> None:
        write_counts_csv(self.path, self.rows)


class ImageSink(_ClosingSink):
    """Annotated PNGs: ``target`` is the file for a single image, else a folder that gets ``<stem>_annotated.png``
    for each of ``stems`` (the images' names, in the order they are written)."""

    def __init__(self, target: str | Path, stems: Sequence[str], annotate: Annotate) -> None:
        self.target, self.annotate = Path(target), annotate
        self._stems = list(stems)
        self._folder = len(self._stems) > 1 or self.target.suffix == "" or self.target.is_dir()
        self.written: list[Path] = []

    def write(self, frame: np.ndarray, result: FrameResult) -> None:
        stem = self._stems[len(self.written)]
        path = self.target / f"{stem}_annotated.png" if self._folder else self.target
        self.written.append(write_image(path, self.annotate(frame, result)))

    def close(self) -> None:
        pass


def write_counts_csv(path: str | Path, rows: list[dict]) -> Path:
    """Counts over time (``time_s`` plus one column per count name) as CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["time_s"] + sorted({k for row in rows for k in row if k != "time_s"})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval=0)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_image(path: str | Path, frame: np.ndarray) -> Path:
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the image (unknown extension?)")
    return path


def encode_png(frame: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()
