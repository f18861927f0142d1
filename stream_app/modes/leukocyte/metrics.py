"""Detection metrics: COCO AP per class from pycocotools (the reference implementation, not hand-written), and the
source paper's image-level measure (an image is positive when it holds a WBC)."""

from __future__ import annotations

import contextlib
import io

import numpy as np

from stream_app.modes.leukocyte.model import CLASSES


def coco_ap(ground_truth: list[tuple[np.ndarray, np.ndarray]], predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
            sizes: list[tuple[int, int]], classes: tuple[str, ...] = CLASSES) -> dict:
    """Per-class ``{"ap50", "ap50_95"}`` and ``map50`` (mean over classes that have ground truth).

    ``ground_truth[i] = (boxes Nx4 xyxy, labels N)``, ``predictions[i] = (boxes, labels, scores)``, ``sizes[i] = (h, w)``.
    A class with no ground-truth box anywhere gets ``None`` (COCO's -1) and is left out of the mean.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, ((gb, gl), (pb, pl, ps), (h, w)) in enumerate(zip(ground_truth, predictions, sizes)):
        images.append({"id": i, "height": int(h), "width": int(w)})
        for box, label in zip(np.asarray(gb).reshape(-1, 4), np.asarray(gl).reshape(-1)):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        for box, label, score in zip(np.asarray(pb).reshape(-1, 4), np.asarray(pl).reshape(-1), np.asarray(ps).reshape(-1)):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append({"image_id": i, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": float(score)})
    out: dict = {"per_class": {}}
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results) if results else None
    for cid, name in enumerate(classes, start=1):
        has_gt = any(a["category_id"] == cid for a in annotations)
        if not has_gt:
            out["per_class"][name] = {"ap50": None, "ap50_95": None}
            continue
        if dt is None:
            out["per_class"][name] = {"ap50": 0.0, "ap50_95": 0.0}
            continue
        ev = COCOeval(gt, dt, "bbox")
        ev.params.catIds = [cid]
        ev.params.maxDets = [1, 10, 100]
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out["per_class"][name] = {"ap50": round(max(0.0, float(ev.stats[1])), 4),
                                  "ap50_95": round(max(0.0, float(ev.stats[0])), 4)}
    aps = [v["ap50"] for v in out["per_class"].values() if v["ap50"] is not None]
    out["map50"] = round(float(np.mean(aps)), 4) if aps else None
    return out


def image_level(truth: list[bool], predicted: list[bool], ids: list[str] | None = None) -> dict:
    """Accuracy, precision, recall, F1 of "this image holds a WBC" (plus the ids of the wrong images)."""
    t, p = np.asarray(truth, bool), np.asarray(predicted, bool)
    tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": round(float((t == p).mean()) if len(t) else 0.0, 4), "precision": round(precision, 4),
            "recall": round(recall, 4), "f1": round(f1, 4), "false_positive_images": fp, "missed_images": fn,
            **({"false_positive_ids": [i for i, a, b in zip(ids, t, p) if b and not a],
                "missed_ids": [i for i, a, b in zip(ids, t, p) if a and not b][:20]} if ids is not None else {})}
