"""The classical reference: a stain-colour threshold in HSV, morphology and connected components.

WBC nuclei are the only strongly stained purple-blue objects in a Wright/Giemsa smear, so a hue/saturation window
finds them; a closing joins the lobes of one nucleus, components smaller than ``min_area`` are dropped, and each
nucleus box is grown by ``grow`` to cover the cytoplasm. It never says "no cell" unless nothing is stained: it is the
row the learned detector has to beat, above all on other stains and faint smears. Parameters were tuned on BCCD
train with :func:`tune` (``python -m stream_app.modes.leukocyte.baseline``); the result is :data:`PARAMS`.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from stream_app.frames import check_frame


@dataclass(frozen=True)
class BaselineParams:
    hue_lo: int = 110  # OpenCV hue (0-180)
    hue_hi: int = 150
    sat_min: int = 70
    min_area: float = 0.004  # fraction of the frame
    close_px: int = 15  # at 640 px width
    grow: float = 1.5


# Tuned on BCCD train (205 images): `python -m stream_app.modes.leukocyte.baseline` printed train WBC AP50 0.9768 with these.
PARAMS = BaselineParams(hue_lo=105, hue_hi=160, sat_min=80, min_area=0.002, close_px=21, grow=1.3)
WORK_SIDE = 640


def detect(image: np.ndarray, params: BaselineParams = PARAMS) -> tuple[np.ndarray, np.ndarray]:
    """WBC boxes (N, 4) in the image's pixels and scores (N,) in [0, 1]."""
    check_frame(image)
    h, w = image.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(image, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1 else image
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    return _detect_hsv(hsv, params, scale, (h, w))


def _detect_hsv(hsv: np.ndarray, p: BaselineParams, scale: float, size: tuple[int, int]):
    mask = cv2.inRange(hsv, (p.hue_lo, p.sat_min, 0), (p.hue_hi, 255, 255))
    k = max(1, int(round(p.close_px * hsv.shape[1] / WORK_SIDE)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    area_px = hsv.shape[0] * hsv.shape[1]
    boxes, scores = [], []
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if area < p.min_area * area_px:
            continue
        cx, cy = x + bw / 2, y + bh / 2
        half = max(bw, bh) * p.grow / 2
        hx, hy = max(half, bw * p.grow / 2), max(half, bh * p.grow / 2)
        boxes.append((cx - hx, cy - hy, cx + hx, cy + hy))
        scores.append(min(1.0, area / (0.03 * area_px)))
    h, w = size
    out = np.asarray(boxes, np.float32).reshape(-1, 4) / scale
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out, np.asarray(scores, np.float32)


def tune(samples) -> tuple[BaselineParams, float]:
    """Grid search on ``samples`` (VOC samples) for the best WBC AP50."""
    from stream_app.modes.leukocyte.metrics import coco_ap

    hsvs, sizes, gts = [], [], []
    for s in samples:
        image = s.load()
        hsvs.append(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
        sizes.append(image.shape[:2])
        wbc = s.labels == 1
        gts.append((s.boxes[wbc], s.labels[wbc]))
    best, best_ap = PARAMS, -1.0
    grid = itertools.product((105, 115), (145, 160), (50, 80, 110), (0.002, 0.005), (9, 21), (1.3, 1.6, 1.9))
    for hue_lo, hue_hi, sat_min, min_area, close_px, grow in grid:
        p = BaselineParams(hue_lo, hue_hi, sat_min, min_area, close_px, grow)
        preds = []
        for hsv, size in zip(hsvs, sizes):
            b, sc = _detect_hsv(hsv, p, 1.0, size)
            preds.append((b, np.ones(len(b), np.int64), sc))
        ap = coco_ap(gts, preds, sizes, classes=("WBC",))["per_class"]["WBC"]["ap50"]
        if ap > best_ap:
            best, best_ap = p, ap
    return best, best_ap


if __name__ == "__main__":
    import json

    from stream_app.config import data_dir
    from stream_app.modes.leukocyte.data import load_split

    params, ap = tune(load_split(data_dir() / "bccd", "train"))
    print(json.dumps({"params": asdict(params), "train_wbc_ap50": ap}))
