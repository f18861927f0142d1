"""Sinks: annotated MP4 (PyAV, H.264), JSONL (one result per frame) and CSV (counts over time)."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from stream_app.results import FrameResult


class VideoSink:
    """Write RGB frames to an H.264 MP4 at a fixed frame rate.

    H.264 in yuv420p needs even sizes, so an odd width or height is padded by one edge pixel.
    Use as a context manager; the file is complete only after :meth:`close`.
    """

    def __init__(self, path: str | Path, fps: float | Fraction, codec: str = "libx264") -> None:
        import av

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

    def write(self, frame: np.ndarray) -> None:
        import av

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

    def __enter__(self) -> "VideoSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


class JsonlSink:
    """One JSON object per line per frame (schema in the README and :meth:`FrameResult.to_json`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", encoding="utf-8")
        self.lines = 0

    def write(self, result: FrameResult, frame_index: int, time_s: float) -> None:
        self._fh.write(json.dumps(result.to_json(frame_index, time_s)) + "\n")
        self.lines += 1

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "JsonlSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_counts_csv(path: str | Path, rows: list[dict]) -> Path:
    """Counts over time (``time_s`` plus one column per count name) as CSV."""
    path = Path(path)
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
