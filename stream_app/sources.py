"""Sources: video files (PyAV), still images and folders of images, as HxWx3 uint8 RGB frames.

Every problem with an input becomes an :class:`InputError` with one clear sentence, which the CLI turns into exit
code 2 and the pages into a message. PyAV (FFmpeg) is used for video because it decodes every common container and
gives exact frame rates and timestamps; OpenCV is used for images because it reads 16-bit PNG/TIFF unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from stream_app.errors import FrameError, InputError
from stream_app.frames import to_rgb8

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".y4m")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    rate: Fraction
    frames: int  # from the container; 0 when it does not say
    duration_s: float
    codec: str


def _check_file(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes)")
    return path


def _open_container(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable video ({exc.__class__.__name__}: {exc})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: the file holds no video stream")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's size, frame rate and length without decoding it; raises :class:`InputError`."""
    path = _check_file(Path(path))
    with _open_container(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        duration = float(stream.duration * stream.time_base) if stream.duration else (
            (container.duration or 0) / 1_000_000)
        if not stream.codec_context.width:
            raise InputError(f"{path}: the video stream has no frame size (unsupported or damaged)")
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, float(rate), Fraction(rate),
                         int(stream.frames or 0), duration, stream.codec_context.name)


def iter_video(path: str | Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(index, time_s, rgb_frame)`` for every decoded frame, rotation metadata applied.

    Raises :class:`InputError` when nothing decodes, or when decoding breaks part-way or ends before the frame
    count the container's index lists (a truncated file); in the latter cases the frames before the break have
    already been yielded.
    """
    import av

    path = _check_file(Path(path))
    count = 0
    with _open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 30)
        try:
            for frame in container.decode(stream):
                time_s = float(frame.time) if frame.time is not None else count / rate
                image = frame.to_ndarray(format="rgb24")
                rotation = getattr(frame, "rotation", 0) or 0
                if rotation % 360:
                    image = np.ascontiguousarray(np.rot90(image, k=int(round(rotation / 90)) % 4))
                yield count, time_s, image
                count += 1
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: decoding failed after {count} frames, the file is damaged or truncated "
                             f"({exc.__class__.__name__})") from None
        declared = int(stream.frames or 0)
    if count == 0:
        raise InputError(f"{path}: no frame could be decoded (damaged file or unsupported codec)")
    if declared and count < declared - 1:
        raise InputError(f"{path}: the file is truncated: {count} of the {declared} frames its index lists could "
                         "be decoded")


def read_image(source: str | Path | bytes) -> np.ndarray:
    """Read an image file or bytes (8/16-bit, greyscale, RGB, RGBA) as HxWx3 uint8 RGB."""
    import cv2

    if isinstance(source, (bytes, bytearray)):
        name, data = "image", bytes(source)
        if not data:
            raise InputError("the image is empty (0 bytes)")
    else:
        path = _check_file(Path(source))
        name, data = str(path), path.read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{name}: not a readable image")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    try:
        return to_rgb8(image)
    except FrameError as exc:
        raise InputError(f"{name}: {exc}") from None


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise InputError(f"{folder}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def input_kind(path: str | Path) -> str:
    """``"folder"``, ``"image"`` or ``"video"`` (by extension, else by trying to open it as a video)."""
    path = _check_file(Path(path))
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return "image"
    return "video"
