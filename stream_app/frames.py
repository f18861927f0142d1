"""The frame layout every processor takes: ``numpy.ndarray`` of shape ``(H, W, 3)``, dtype ``uint8``, RGB order.

Sources convert whatever they read (greyscale, 16-bit, RGBA, BGR from OpenCV) with :func:`to_rgb8`; processors call
:func:`check_frame` so a wrong layout fails loudly instead of producing silent garbage.
"""

from __future__ import annotations

import numpy as np

from stream_app.errors import FrameError


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` if it is HxWx3 uint8 with H, W >= 2; raise :class:`FrameError` otherwise."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise FrameError(f"frame must be HxWx3 RGB, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise FrameError(f"frame must be uint8, got {frame.dtype}")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise FrameError(f"frame is too small: {frame.shape[1]}x{frame.shape[0]}")
    return frame


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Convert greyscale (HxW, HxWx1), RGBA, 16-bit or float [0, 1] images to HxWx3 uint8 RGB.

    Input is assumed RGB(A) order already; 16-bit data is scaled by its own range so 12-bit X-rays stay visible.
    """
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise FrameError("image is empty")
    img = image
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise FrameError(f"unsupported image shape {image.shape}")
    img = img[:, :, :3]
    if img.dtype == np.uint8:
        out = img
    elif img.dtype == np.uint16 or np.issubdtype(img.dtype, np.integer):
        hi = float(img.max()) or 1.0
        out = np.clip(img.astype(np.float32) * (255.0 / hi), 0, 255).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all():
            raise FrameError("image holds NaN or infinite values")
        scale = 255.0 if float(img.max()) <= 1.0 else 1.0
        out = np.clip(img * scale, 0, 255).astype(np.uint8)
    elif img.dtype == np.bool_:
        out = img.astype(np.uint8) * 255
    else:
        raise FrameError(f"unsupported image dtype {image.dtype}")
    return check_frame(np.ascontiguousarray(out))


def fit_within(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most ``max_side``; returns the copy and the scale (small / original).

    Processors infer on the small copy and draw on the original (4K input stays real-time)."""
    import cv2

    h, w = frame.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return frame, 1.0
    small = cv2.resize(frame, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
    return small, scale
