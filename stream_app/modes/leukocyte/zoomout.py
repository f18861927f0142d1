"""Wider fields of view made from BCCD-like fields, for evaluation and training at other magnifications.

* :func:`mosaic`: K x K fields, each shrunk to 1/K, tiled into one frame of the first field's size (what a camera
  zoomed out K times sees; boxes scaled with them). ``evaluate leukocyte --zoom-out K`` scores these.
* :func:`eyepiece`: a frame seen through an eyepiece by a phone: the dark outside of a circular field with a soft
  edge, vignetting, a colour cast, camera blur, noise and JPEG. Used on shrunk fields by training (multi-scale
  augmentation) and to build a proxy of phone photos for choosing recipes (never committed: made at run time).

All functions are pure (inputs are not modified); images are HxWx3 uint8 RGB, boxes float32 Nx4 x1y1x2y2 pixels.
"""

from __future__ import annotations

import cv2
import numpy as np


def mosaic(images: list[np.ndarray], boxes: list[np.ndarray], labels: list[np.ndarray], k: int,
           size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K x K fields shrunk to 1/K into one frame of ``size`` (w, h; default: the first image's size); needs K*K
    images (their boxes and labels). Returns (frame, boxes, labels)."""
    if k < 1 or len(images) != k * k or len(boxes) != k * k or len(labels) != k * k:
        raise ValueError(f"mosaic of {k}x{k} needs {k * k} images with their boxes and labels, got {len(images)}")
    w, h = size or (images[0].shape[1], images[0].shape[0])
    tw, th = w // k, h // k
    canvas = np.zeros((h, w, 3), np.uint8)
    out_boxes, out_labels = [], []
    for i, (image, b, lab) in enumerate(zip(images, boxes, labels)):
        r, c = divmod(i, k)
        ih, iw = image.shape[:2]
        canvas[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
        scale = np.array([tw / iw, th / ih, tw / iw, th / ih], np.float32)
        out_boxes.append(np.asarray(b, np.float32).reshape(-1, 4) * scale + np.array([c * tw, r * th] * 2, np.float32))
        out_labels.append(np.asarray(lab, np.int64).reshape(-1))
    if k > 1 and (tw * k, th * k) != (w, h):  # fill the few pixels K does not divide with the last row/column
        canvas[th * k:] = canvas[th * k - 1:th * k]
        canvas[:, tw * k:] = canvas[:, tw * k - 1:tw * k]
    return canvas, np.concatenate(out_boxes).reshape(-1, 4), np.concatenate(out_labels)


def circle_mask(h: int, w: int, centre: tuple[float, float], radius: float, softness: float = 2.0) -> np.ndarray:
    """HxW float32 in [0, 1]: 1 inside the circle, 0 outside, a ramp ``softness`` pixels wide at its edge."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.hypot(xx - centre[0], yy - centre[1])
    return np.clip((radius - dist) / max(softness, 1e-3) + 0.5, 0.0, 1.0)


def eyepiece(image: np.ndarray, rng: np.random.Generator, centre: tuple[float, float] | None = None,
             radius: float | None = None, blur: float | None = None, jpeg: int | None = None,
             cast: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A phone's photo through an eyepiece of ``image``: returns (photo, field weight HxW in [0, 1]).

    Defaults are drawn from ``rng``: a circle centred near the middle with a radius of 0.45-0.52 of the shorter side,
    a soft dark edge, vignetting towards it, a colour cast (per-channel gains 0.8-1.15), Gaussian blur sigma 0.3-1.2
    px, sensor noise, and JPEG quality 35-90."""
    h, w = image.shape[:2]
    if centre is None:
        centre = (w / 2 + rng.uniform(-0.05, 0.05) * w, h / 2 + rng.uniform(-0.05, 0.05) * h)
    if radius is None:
        radius = min(h, w) * rng.uniform(0.45, 0.52)
    weight = circle_mask(h, w, centre, radius, softness=rng.uniform(1.0, 0.02 * radius + 1.5))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rel = np.hypot(xx - centre[0], yy - centre[1]) / max(radius, 1.0)
    vignette = np.clip(1.0 - rng.uniform(0.1, 0.45) * rel ** 2, 0.0, 1.0)
    out = image.astype(np.float32)
    sigma = rng.uniform(0.3, 1.2) if blur is None else blur
    if sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    gains = rng.uniform(0.8, 1.15, 3).astype(np.float32) if cast is None else np.asarray(cast, np.float32)
    dark = rng.uniform(0, 12)
    out = out * gains * (vignette * weight)[..., None] + dark * (1.0 - weight)[..., None]
    out = out + rng.normal(0, rng.uniform(0.5, 4.0), out.shape).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    quality = int(rng.integers(35, 91)) if jpeg is None else int(jpeg)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if ok:
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out, weight


def phone_photo(images: list[np.ndarray], boxes: list[np.ndarray], labels: list[np.ndarray],
                rng: np.random.Generator, factor: float = 1 / 7, size: int = 416,
                min_visible: float = 0.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A proxy of a phone photo of a whole eyepiece field: enough fields (drawn from ``images`` by ``rng``) shrunk
    by ``factor`` to cover ``size`` x ``size``, seen through :func:`eyepiece`. Boxes less than ``min_visible`` inside
    the circle are dropped. Returns (photo, boxes, labels)."""
    th, tw = (max(2, round(im_size * factor)) for im_size in images[0].shape[:2])
    rows, cols = -(-size // th), -(-size // tw)
    canvas = np.zeros((rows * th, cols * tw, 3), np.uint8)
    all_boxes, all_labels = [], []
    for r in range(rows):
        for c in range(cols):
            i = int(rng.integers(len(images)))
            ih, iw = images[i].shape[:2]
            canvas[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = cv2.resize(images[i], (tw, th),
                                                                          interpolation=cv2.INTER_AREA)
            scale = np.array([tw / iw, th / ih, tw / iw, th / ih], np.float32)
            all_boxes.append(np.asarray(boxes[i], np.float32).reshape(-1, 4) * scale
                             + np.array([c * tw, r * th] * 2, np.float32))
            all_labels.append(np.asarray(labels[i], np.int64).reshape(-1))
    canvas = np.ascontiguousarray(canvas[:size, :size])
    photo, weight = eyepiece(canvas, rng)
    b = np.concatenate(all_boxes).reshape(-1, 4)
    lab = np.concatenate(all_labels)
    b, lab = visible_boxes(b, lab, weight, min_visible)
    return photo, b, lab


def visible_boxes(boxes: np.ndarray, labels: np.ndarray, weight: np.ndarray, min_visible: float):
    """Boxes clipped to the image, kept when at least ``min_visible`` of their area is lit (``weight`` >= 0.5)."""
    h, w = weight.shape
    boxes = boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    keep = np.zeros(len(boxes), bool)
    lit = weight >= 0.5
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        keep[i] = lit[y1:y2, x1:x2].mean() >= min_visible
    return boxes[keep], labels[keep]
