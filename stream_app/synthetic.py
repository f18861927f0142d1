"""Frames the project makes itself: moving shapes on a textured background; a still image held up to the camera.

Used by ``bench`` when no input is given, by tests (known moving objects at known places; clips of a photo held
still, made at test time from the shared data), and to make the own-made sample video in ``assets/``.
Deterministic for a given seed.
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


def held_image(image: np.ndarray, n: int, width: int = 640, height: int = 480, *, lead_in: int = 0,
               fill: float = 0.8, tilt_deg: float = 0.0, wobble_deg: float = 0.0, jitter_px: float = 0.0,
               offsets=None, seed: int = 0) -> Iterator[np.ndarray]:
    """Yield ``lead_in`` frames of a textured background alone, then ``n`` frames of ``image`` (RGB) held in front of
    it: scaled so that its longer side is ``fill`` of the canvas's shorter side, centred, turned by ``tilt_deg`` plus
    a slow sway of up to ``wobble_deg`` (degrees, counter-clockwise positive), shifted at random by up to
    ``jitter_px`` pixels each frame, and moved by ``offsets[i] = (dx, dy, degrees)`` when given (a traced motion)."""
    rng = np.random.default_rng(seed)
    wall = rng.integers(95, 135, size=(height // 48 + 2, width // 48 + 2, 1)) + np.array([6, 0, -8])  # a plain wall
    background = cv2.resize(wall.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(lead_in):
        yield background.copy()
    h, w = image.shape[:2]
    k = fill * min(width, height) / max(h, w)
    for i in range(n):
        dx, dy, angle = offsets[i] if offsets is not None else (0.0, 0.0, 0.0)
        angle += tilt_deg + wobble_deg * np.sin(2 * np.pi * i / 45.0 + 0.5)
        jx, jy = rng.uniform(-jitter_px, jitter_px, 2) if jitter_px else (0.0, 0.0)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, k)
        m[:, 2] += (width / 2 - w / 2 + dx + jx, height / 2 - h / 2 + dy + jy)
        frame = background.copy()
        cv2.warpAffine(image, m, (width, height), dst=frame, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_TRANSPARENT)
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
