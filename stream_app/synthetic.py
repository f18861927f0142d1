"""Frames the project makes itself: moving shapes on a textured background.

Used by ``bench`` when no input is given, by tests (known moving objects at known places), and to make the own-made
sample video in ``assets/``. Deterministic for a given seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np


def moving_shapes(n: int, width: int = 640, height: int = 480, seed: int = 0) -> Iterator[np.ndarray]:
    """Yield ``n`` RGB frames with two discs and a square crossing a still, textured background."""
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 120, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_CUBIC)
    for i in range(n):
        frame = background.copy()
        t = i / 30.0
        r = max(4, min(width, height) // 12)
        cx = int((0.1 + 0.8 * ((t * 0.3) % 1.0)) * width)
        cv2.circle(frame, (cx, height // 3), r, (240, 60, 60), -1)
        cy = int((0.15 + 0.7 * (0.5 + 0.5 * np.sin(t * 2.0))) * height)
        cv2.circle(frame, (width * 2 // 3, cy), r, (60, 220, 90), -1)
        sx = int((0.9 - 0.8 * ((t * 0.2) % 1.0)) * width)
        cv2.rectangle(frame, (sx - r, height * 3 // 4 - r), (sx + r, height * 3 // 4 + r), (70, 90, 240), -1)
        yield frame


def write_video(path: str | Path, frames, fps: float = 30.0) -> Path:
    """Encode frames to a video file with the project's own sink (H.264 MP4)."""
    from stream_app.sinks import VideoSink

    with VideoSink(path, fps) as sink:
        for frame in frames:
            sink.write(frame)
    return Path(path)


def write_y4m(path: str | Path, frames, fps: int = 30) -> Path:
    """Write frames as an uncompressed Y4M (4:2:0) file, the format Chromium's fake camera reads."""
    path = Path(path)
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            yuv = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)
            fh.write(b"FRAME\n")
            fh.write(yuv.tobytes())
    return path
