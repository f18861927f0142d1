"""The source paper's preprocessing, and the "faint, unstained-looking smear" transform used to evaluate it.

:func:`clahe_lab` = CLAHE (contrast-limited adaptive histogram equalisation) on each RGB channel, then RGB -> CIELAB,
both with OpenCV (about 2.5 ms for a 640x480 frame on one core). It stretches local contrast, so a faint, pale smear
and a well-stained one look alike to a model trained on this input; the L channel carries the nucleus/cytoplasm
contrast and a/b the stain colour.

Shapes and values (all functions are pure; input is never modified):

* ``clahe_rgb(image, clip, grid)``: HxWx3 uint8 RGB -> HxWx3 uint8 RGB.
* ``rgb_to_lab(image)``: HxWx3 uint8 RGB -> HxWx3 uint8 OpenCV 8-bit CIELAB: ``L*255/100`` in channel 0,
  ``a+128`` and ``b+128`` in channels 1 and 2.
* ``clahe_lab(image, clip, grid)`` = ``rgb_to_lab(clahe_rgb(...))``.
* ``normalise_stain(image, mask=None)``: HxWx3 uint8 RGB -> same: Reinhard colour transfer, i.e. each CIELAB
  channel's mean and spread (over ``mask``, the lit field, when given) matched to those of the BCCD training smears
  (gain capped at ``max_gain``). A training-free step that makes a faint or differently stained smear look like the
  stain the detectors were trained on; optional, before CLAHE.
* ``faint(image, strength)``: HxWx3 uint8 RGB -> same shape: a pale, low-contrast, nearly colourless version
  (what an unstained or under-stained smear under bright illumination looks like).
"""

from __future__ import annotations

import cv2
import numpy as np

from stream_app.errors import FrameError
from stream_app.frames import check_frame


def _check_params(clip: float, grid: int) -> None:
    if not (clip > 0):
        raise ValueError(f"CLAHE clip limit must be > 0, got {clip}")
    if int(grid) < 1:
        raise ValueError(f"CLAHE tile grid must be >= 1, got {grid}")


def clahe_rgb(image: np.ndarray, clip: float = 2.0, grid: int = 8) -> np.ndarray:
    """CLAHE on each of the R, G, B channels separately (as in the paper)."""
    check_frame(image)
    _check_params(clip, grid)
    clahe = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(grid), int(grid)))
    return np.dstack([clahe.apply(np.ascontiguousarray(image[:, :, c])) for c in range(3)])


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """RGB uint8 -> OpenCV 8-bit CIELAB (D65)."""
    return cv2.cvtColor(check_frame(image), cv2.COLOR_RGB2LAB)


def clahe_lab(image: np.ndarray, clip: float = 2.0, grid: int = 8) -> np.ndarray:
    """The paper's input: CLAHE per RGB channel, then CIELAB. HxWx3 uint8 in, HxWx3 uint8 out."""
    return rgb_to_lab(clahe_rgb(image, clip, grid))


# Mean and standard deviation of CIELAB (float: L 0-100, a, b) over BCCD's 205 training images (per-image values,
# averaged); computed with OpenCV on the train split only.
REFERENCE_LAB_MEAN = np.array([73.31, 4.93, -1.05], np.float32)
REFERENCE_LAB_STD = np.array([7.94, 8.55, 10.77], np.float32)


def normalise_stain(image: np.ndarray, mask: np.ndarray | None = None, max_gain: float = 6.0) -> np.ndarray:
    """Reinhard et al. (2001) colour transfer to the BCCD training stain: per CIELAB channel,
    ``(x - mean) / std * ref_std + ref_mean``, with the scale capped at ``max_gain`` so a nearly flat channel is not
    blown up into noise. ``mask`` (HxW bool): the pixels whose statistics count (the lit field of an eyepiece view;
    None: all)."""
    check_frame(image)
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    flat = lab.reshape(-1, 3) if mask is None or not mask.any() else lab[mask]
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    gain = np.minimum(REFERENCE_LAB_STD / np.maximum(std, 1e-3), max_gain)
    lab = (lab - mean) * gain + REFERENCE_LAB_MEAN
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def model_input(image: np.ndarray, kind: str, clip: float = 2.0, grid: int = 8) -> np.ndarray:
    """What a detector with ``input=kind`` expects ("rgb": unchanged; "clahe_lab": :func:`clahe_lab`)."""
    if kind == "rgb":
        return check_frame(image)
    if kind == "clahe_lab":
        return clahe_lab(image, clip, grid)
    raise ValueError(f"unknown model input {kind!r}")


def faint(image: np.ndarray, strength: float = 0.7) -> np.ndarray:
    """A faint, unstained-looking smear: colour mostly removed, contrast squeezed towards a bright background.

    ``strength`` in [0, 1]: 0 returns the image, 0.7 (the evaluation default) keeps 30% of the stain saturation and
    30% of the contrast around a light grey level.
    """
    check_frame(image)
    if not 0.0 <= strength <= 1.0:
        raise FrameError(f"faint strength must be in [0, 1], got {strength}")
    img = image.astype(np.float32)
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    keep = 1.0 - strength
    img = grey[..., None] + (img - grey[..., None]) * keep  # desaturate
    background = 235.0
    img = background + (img - background) * keep  # low contrast, bright field
    img = img + strength * 6.0  # slightly over-exposed
    return np.clip(img, 0, 255).astype(np.uint8)
