"""Sources: video files, cameras, capture devices and network streams (PyAV), still images, and folders of videos
and images, as HxWx3 uint8 RGB frames.

Every problem with an input becomes an :class:`InputError` with one clear sentence, which the CLI turns into exit
code 2 and the pages into a message. PyAV (FFmpeg) is used for video because it decodes every common container and
gives exact frame rates and timestamps; OpenCV is used for images because it reads 16-bit PNG/TIFF unchanged.
"""

from __future__ import annotations

import sys
import time
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


LIVE_KINDS = ("camera", "device", "stream")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "rtp", "srt", "udp", "tcp", "http", "https")
OPEN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SourceSpec:
    """What an INPUT names: ``kind`` is ``camera`` (an index), ``device`` (a path such as /dev/video0), ``stream``
    (rtsp://, http(s)://, ...), ``video``, ``image`` or ``folder``; ``target`` is what PyAV or OpenCV opens."""

    kind: str
    target: str
    label: str

    @property
    def live(self) -> bool:
        """A camera or a network stream: it may never end, so runs stop on Ctrl-C, --max-frames or --duration."""
        return self.kind in LIVE_KINDS


def parse_source(text: str | Path) -> SourceSpec:
    """Classify an INPUT; raises :class:`InputError` for a file or folder that does not exist (or is empty) and for
    an unknown URL scheme. Whether a camera or a stream can be opened is found out by :class:`VideoSource`."""
    raw = str(text)
    if raw.isdigit():
        if sys.platform == "darwin":
            return SourceSpec("camera", raw, f"camera {raw}")
        return SourceSpec("camera", f"/dev/video{int(raw)}", f"camera {raw} (/dev/video{int(raw)})")
    scheme, sep, _ = raw.partition("://")
    if sep:
        if scheme.lower() not in STREAM_SCHEMES:
            raise InputError(f"{raw}: unsupported URL scheme {scheme!r} (use {', '.join(STREAM_SCHEMES)})")
        return SourceSpec("stream", raw, raw)
    if raw.startswith("/dev/"):
        return SourceSpec("device", raw, raw)
    path = _check_file(Path(raw))
    if path.is_dir():
        return SourceSpec("folder", raw, raw)
    return SourceSpec("image" if path.suffix.lower() in IMAGE_EXTENSIONS else "video", raw, raw)


def _open_container(spec: SourceSpec):
    import av

    kwargs: dict = {}
    if spec.kind == "camera":
        kwargs["format"] = "avfoundation" if sys.platform == "darwin" else "v4l2"
    elif spec.kind == "device":
        kwargs["format"] = "v4l2"
    if spec.kind == "stream":
        kwargs["timeout"] = (OPEN_TIMEOUT_S, OPEN_TIMEOUT_S)
        if spec.target.lower().startswith("rtsp"):
            kwargs["options"] = {"rtsp_transport": "tcp"}
    try:
        container = av.open(spec.target, **kwargs)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        what = "not a readable video" if spec.kind == "video" else "cannot be opened"
        raise InputError(f"{spec.label}: {what} ({exc.__class__.__name__}: {' '.join(str(exc).split())})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{spec.label}: holds no video stream")
    return container


class VideoSource:
    """An opened video: a file, a camera, a capture device or a network stream, decoded by PyAV (FFmpeg).

    ``info`` is read at open (``frames`` is 0 for live sources); :meth:`frames` yields ``(index, time_s, rgb)`` with
    rotation metadata applied. For a live source ``time_s`` counts from its first frame and a packet that does not
    decode is skipped; for a file, decoding that breaks or ends short of the container's index is an
    :class:`InputError` (raised after the frames before the break were yielded).
    """

    def __init__(self, source: str | Path | SourceSpec) -> None:
        self.spec = source if isinstance(source, SourceSpec) else parse_source(source)
        if self.spec.kind in ("image", "folder"):
            raise InputError(f"{self.spec.label}: not a video")
        self._container = _open_container(self.spec)
        try:
            self.info = self._probe()
        except InputError:
            self.close()
            raise

    def _probe(self) -> VideoInfo:
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        duration = float(stream.duration * stream.time_base) if stream.duration else (
            (self._container.duration or 0) / 1_000_000)
        context = stream.codec_context
        if context is None:  # FFmpeg has no decoder for it
            tag = getattr(stream, "codec_tag", None) or "?"
            raise InputError(f"{self.spec.label}: unsupported video codec ({tag}); convert it, e.g. to H.264 MP4")
        if not context.width:
            raise InputError(f"{self.spec.label}: the video stream has no frame size (unsupported or damaged)")
        return VideoInfo(context.width, context.height, float(rate), Fraction(rate),
                         0 if self.spec.live else int(stream.frames or 0), duration, context.name)

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        import av

        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        count, t0, bad = 0, None, 0
        wall0 = time.monotonic()
        packets = self._container.demux(stream)
        while True:
            try:
                packet = next(packets)
                decoded = packet.decode()
                bad = 0
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                if self.spec.live and not isinstance(exc, (av.error.EOFError, av.error.ExitError)) and bad < 100:
                    bad += 1  # a damaged packet of a live stream: skip it
                    continue
                what = "the stream stopped" if self.spec.live else "decoding failed"
                raise InputError(f"{self.spec.label}: {what} after {count} frames"
                                 + ("" if self.spec.live else ", the file is damaged or truncated")
                                 + f" ({exc.__class__.__name__})") from None
            for frame in decoded:
                if frame.time is not None:
                    t0 = frame.time if t0 is None else t0
                    time_s = float(frame.time - t0) if self.spec.live else float(frame.time)
                else:
                    time_s = time.monotonic() - wall0 if self.spec.live else count / self.info.fps
                image = frame.to_ndarray(format="rgb24")
                rotation = getattr(frame, "rotation", 0) or 0
                if rotation % 360:
                    image = np.ascontiguousarray(np.rot90(image, k=int(round(rotation / 90)) % 4))
                yield count, time_s, image
                count += 1
        declared = int(stream.frames or 0)
        if count == 0:
            raise InputError(f"{self.spec.label}: no frame could be decoded (damaged file or unsupported codec)")
        if not self.spec.live and declared and count < declared - 1:
            raise InputError(f"{self.spec.label}: the file is truncated: {count} of the {declared} frames its index "
                             "lists could be decoded")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's size, frame rate and length without decoding it; raises :class:`InputError`."""
    with VideoSource(SourceSpec("video", str(_check_file(Path(path))), str(path))) as source:
        return source.info


def iter_video(path: str | Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(index, time_s, rgb_frame)`` for every decoded frame of a video file (see :class:`VideoSource`)."""
    with VideoSource(SourceSpec("video", str(_check_file(Path(path))), str(path))) as source:
        yield from source.frames()


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


def list_folder(folder: str | Path) -> list[Path]:
    """The videos and images in a folder (recursively), sorted; :class:`InputError` when it holds neither."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS and p.is_file())
    if not files:
        raise InputError(f"{folder}: the folder holds no images or videos "
                         f"({', '.join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})")
    return files


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise InputError(f"{folder}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images
