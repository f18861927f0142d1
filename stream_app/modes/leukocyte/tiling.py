"""Run the detector at a chosen cell scale on a frame of any size: resize, slice into overlapping tiles of exactly the
network's input size, detect on each, merge the boxes back into the frame's pixels.

Why a small slicer of our own rather than supervision's ``InferenceSlicer`` (supervision 0.31.2 installs beside our
pins without opencv-python, so it would have been possible):

* every tile must be exactly the network's input size (427x320): the Faster R-CNN (and its ONNX graph) resizes any
  other size internally, which would undo the scale we chose. Tiles at the frame's edge are therefore padded with
  the field's own colour, as in training;
* a cell cut by a tile's *inner* edge is dropped, because the overlap is wider than the largest cell, so the same
  cell lies whole in the neighbouring tile. An NMS over partial and whole boxes (what ``InferenceSlicer``'s
  callback-only interface allows, since the callback never learns where its tile lies) keeps a partial box whenever
  it happens to score higher, and that box then misses IoU 0.5. Cells cut by the frame's own edge are kept;
* tiles that lie in the dark outside an eyepiece's circular field are skipped (a third of the tiles of a phone photo
  of the whole field), and boxes centred outside the lit field are dropped.

The merge itself is torchvision's class-wise NMS (``batched_nms``), which the detector already depends on.

Shapes: ``frame`` HxWx3 uint8 RGB; ``detect(tile) ->`` :class:`~stream_app.results.Detections` in the tile's pixels;
:func:`detect_scaled` returns them in the frame's pixels.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from stream_app.results import Detections

TILE_W, TILE_H = 427, 320  # the network's input (min_size 320, max_size 427): no internal resize
OVERLAP = 160  # > the largest WBC at training scale (~155 px on the network's input), so every cell is whole somewhere
EDGE = 3  # a box within this many pixels of a tile's inner edge is "cut"

DetectFn = Callable[[np.ndarray], Detections]


def tile_origins(length: int, tile: int, overlap: int = OVERLAP) -> list[int]:
    """Start positions of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared pixels; the
    last tile ends at the edge. A length shorter than a tile gives one tile at 0 (padded by the caller)."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    n = int(np.ceil((length - tile) / stride)) + 1
    return [int(round(i * (length - tile) / (n - 1))) for i in range(n)]


def field_mask(frame: np.ndarray) -> np.ndarray:
    """HxW bool: the lit field (False in the dark outside an eyepiece's circle or a vignetted corner).

    A pixel is lit when its local brightness (3x3 maximum, smoothed) reaches 35% of the frame's bright level (95th
    percentile of grey). Dark regions that do not reach the frame's border (a stained nucleus, a clump) are holes in
    the field and count as lit: only the dark that surrounds the field is outside it. A frame with no dark border is
    all True."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    lit = cv2.dilate(grey, np.ones((3, 3), np.uint8))
    lit = cv2.blur(lit, (max(3, w // 64) | 1, max(3, h // 64) | 1))
    lit = lit >= 0.35 * float(np.percentile(grey, 95))
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~lit).astype(np.uint8), connectivity=8)
    x, y, bw, bh = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    outside = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    outside[0] = False  # label 0 is the lit part
    return ~outside[labels]


def background_colour(frame: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The field's median colour (what tiles are padded with; training pads zoomed-out images the same way)."""
    pixels = frame[mask] if mask is not None and mask.any() else frame.reshape(-1, 3)
    if len(pixels) > 50_000:
        pixels = pixels[:: len(pixels) // 50_000]
    return np.median(pixels, axis=0).astype(np.uint8)


def detect_scaled(frame: np.ndarray, detect: DetectFn, zoom: float, mask: np.ndarray | None = None,
                  iou: float = 0.5, min_lit: float = 0.05, stop=None) -> tuple[Detections, int]:
    """Detect on ``frame`` resized by ``zoom`` (network pixels per frame pixel), tiled; returns the detections (frame
    pixels, sorted by score) and the number of tiles run.

    ``mask``: the lit field (:func:`field_mask`), or None for all of it. Tiles with less than ``min_lit`` of their
    area lit are skipped; boxes whose centre is not lit are dropped. ``stop``: called before each tile; True ends
    the run early (a closing stream), with the tiles done so far."""
    h, w = frame.shape[:2]
    size = (max(2, round(w * zoom)), max(2, round(h * zoom)))
    image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    H, W = image.shape[:2]
    pad = H < TILE_H or W < TILE_W  # tiles end at the far edge when the image is larger: only a short side pads
    small_mask = None
    if mask is not None and not mask.all():
        small_mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    fill = background_colour(frame, mask) if pad or small_mask is not None else None  # ~5 ms: only when needed
    if small_mask is not None:
        image = image.copy()
        image[~small_mask] = (0.1 * fill).astype(np.uint8)  # the dark outside stays dark, without sensor noise
    all_boxes, all_labels, all_scores, n_tiles = [], [], [], 0
    for y0 in tile_origins(H, TILE_H):
        for x0 in tile_origins(W, TILE_W):
            if stop is not None and stop():
                break
            crop = image[y0:y0 + TILE_H, x0:x0 + TILE_W]
            if small_mask is not None and small_mask[y0:y0 + TILE_H, x0:x0 + TILE_W].mean() < min_lit:
                continue
            ch, cw = crop.shape[:2]
            if (ch, cw) != (TILE_H, TILE_W):
                tile = np.empty((TILE_H, TILE_W, 3), np.uint8)
                tile[:] = fill
                tile[:ch, :cw] = crop
            else:
                tile = crop
            found = detect(np.ascontiguousarray(tile))
            n_tiles += 1
            if len(found) == 0:
                continue
            boxes = found.boxes
            # drop cells cut by an inner tile edge (they are whole in the neighbouring tile)
            cut = np.zeros(len(boxes), bool)
            if x0 > 0:
                cut |= boxes[:, 0] <= EDGE
            if x0 + TILE_W < W:
                cut |= boxes[:, 2] >= TILE_W - EDGE
            if y0 > 0:
                cut |= boxes[:, 1] <= EDGE
            if y0 + TILE_H < H:
                cut |= boxes[:, 3] >= TILE_H - EDGE
            keep = ~cut
            all_boxes.append(boxes[keep] + np.array([x0, y0, x0, y0], np.float32))
            all_labels.append(found.labels[keep])
            all_scores.append(found.scores[keep])
    if not all_boxes:
        return Detections.empty(), n_tiles
    boxes = np.concatenate(all_boxes)
    labels = np.concatenate(all_labels)
    scores = np.concatenate(all_scores).astype(np.float32)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, W)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, H)
    if small_mask is not None and len(boxes):
        cx = ((boxes[:, 0] + boxes[:, 2]) / 2).astype(int).clip(0, W - 1)
        cy = ((boxes[:, 1] + boxes[:, 3]) / 2).astype(int).clip(0, H - 1)
        lit = small_mask[cy, cx]
        boxes, labels, scores = boxes[lit], labels[lit], scores[lit]
    if n_tiles > 1 and len(boxes):
        import torch
        from torchvision.ops import batched_nms

        classes = np.unique(labels, return_inverse=True)[1].reshape(-1)  # NMS within each class
        keep = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), iou).numpy()
        boxes, labels, scores = boxes[keep], labels[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order] / np.float32(zoom)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return Detections(boxes, scores[order], labels[order]), n_tiles
