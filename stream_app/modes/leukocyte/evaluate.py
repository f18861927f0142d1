"""``python -m stream_app evaluate leukocyte --voc DIR [--split test] [--zoom-out K,...] [--cell-size auto|rule|PX]``:
one JSON object on stdout (a one-line summary with the targets on stderr).

Every row runs the app's pipeline (:func:`~stream_app.modes.leukocyte.scale.detect_auto`): the red-cell size is found
in each image, the image is brought to the training scale and tiled where needed; ``--cell-size rule`` gives the
pipeline before that (each image taken as one BCCD-sized field). ``--voc`` takes a Pascal VOC tree (BCCD's, with or
without ``ImageSets/Main`` split lists: without them every image is used), a flat folder of images with their
``.xml`` beside them, or a folder of such flat splits (``test/``, ``valid/``); a set labelled with WBC only works
(RBC and platelet AP are then null and ``map50`` is the WBC AP50).

``--zoom-out K,...`` replaces the default rows by one row per K: the split as K x K mosaics (each image shrunk to
1/K into a frame of its size), with WBC / per-class AP, image-level, ms per frame (estimate + all tiles), tiles per
frame, the scale estimate against the labelled RBC sizes (``median_ratio_to_truth``, ``within_20pct``) and the
target. ``targets`` names the issue's targets.

Keys of the default run (the issue's schema, plus reference rows):

* ``n_images``, ``map50`` (mean of the three classes' AP50), ``per_class`` {WBC, RBC, Platelets: {ap50, ap50_95}}
  (COCO AP from pycocotools), ``image_level`` {accuracy, precision, recall, f1, ...}: an image is positive when it
  holds a WBC, and predicted positive when a WBC scores at least ``--wbc-threshold``. These are for the default
  model (the paper's CLAHE + CIELAB input).
* ``faint`` {preprocessed, raw}: the same images through :func:`~stream_app.modes.leukocyte.preprocess.faint` (a pale,
  colourless, low-contrast, unstained-looking smear); ``preprocessed`` = the CLAHE + CIELAB model on them, ``raw`` =
  the RGB model on them, each {ap50, ap50_95, image_level} for WBC.
  ``stain_normalised`` adds the optional Reinhard stain normalisation before CLAHE + CIELAB (the processor's
  ``stain_normalise`` setting).
* ``stain_shift`` {preprocessed, raw, stain_normalised}: the same for a hue/saturation-shifted stain (a different
  lab's colours). ``stain_normalised_on_original``: what that setting costs on the untouched images.
* ``rgb_model``: the plain-RGB model on the untouched images (same keys as the top level).
* ``baseline``: the HSV threshold reference (:mod:`stream_app.modes.leukocyte.baseline`) on the untouched, faint and
  stain-shifted images, and its time per image.
* ``scale``: median estimated RBC size, images where no cells were found, median tiles per image.
* ``ms_per_image``: detector time per image (median, with the scale estimate), ``models``: which weight files were
  used. The reference rows (``faint`` ... ``baseline``) run only when the images need at most 2 tiles
  (``--reference-rows auto``), since each repeats the whole run.
* ``settings``: split, thresholds, and the image ids left out with ``--exclude`` (for images whose labels are known
  to be wrong: ``models/leukocyte/bccd_test_unlabelled_wbc.txt``). Report such a run beside the full one, never
  instead of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from stream_app.config import data_dir
from stream_app.errors import InputError
from stream_app.modes.leukocyte import baseline
from stream_app.modes.leukocyte.data import load_split
from stream_app.modes.leukocyte.detector import RESCALED_WEIGHTS, WEIGHTS, routed_detector, shared_detector
from stream_app.modes.leukocyte.metrics import coco_ap, image_level
from stream_app.modes.leukocyte.model import class_ids
from stream_app.modes.leukocyte.preprocess import faint

DEFAULT_WBC_THRESHOLD = 0.5


def stain_shift(image: np.ndarray, hue: float = -18.0, saturation: float = 0.6) -> np.ndarray:
    """Another lab's stain: hue turned (OpenCV units, 180 = full turn) and saturation scaled."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def _run(detect, samples, images, wbc_threshold: float, classes=("WBC", "RBC", "Platelets")) -> dict:
    gts, preds, sizes, truth, said, times = [], [], [], [], [], []
    for sample, image in zip(samples, images):
        t0 = time.perf_counter()
        boxes, labels, scores = detect(image)
        times.append((time.perf_counter() - t0) * 1000)
        if len(classes) == 1:
            keep = sample.labels == 1
            gts.append((sample.boxes[keep], sample.labels[keep]))
        else:
            gts.append((sample.boxes, sample.labels))
        preds.append((boxes, labels, scores))
        sizes.append(image.shape[:2])
        truth.append(bool((sample.labels == 1).any()))
        said.append(bool(((labels == 1) & (scores >= wbc_threshold)).any()))
    out = coco_ap(gts, preds, sizes, classes=classes)
    out["image_level"] = image_level(truth, said, [s.image_id for s in samples])
    out["ms_per_image"] = round(float(np.median(times)), 1) if times else None
    return out


def _wbc_only(full: dict) -> dict:
    return {**full["per_class"]["WBC"], "image_level": full["image_level"]}


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--voc", default=None, help="Pascal VOC folder (default: STREAM_APP_DATA/bccd)")
    parser.add_argument("--split", default="test", help="ImageSets/Main/<split>.txt ('all' = every image)")
    parser.add_argument("--weights", default=None, help="RGB-input detector (default: the shipped one)")
    parser.add_argument("--lab-weights", default=None, help="CLAHE+CIELAB detector (default: the shipped one)")
    parser.add_argument("--lab-rescaled-weights", default=None,
                        help="CLAHE+CIELAB detector for rescaled frames (tiles, the scale search; default: the "
                             "shipped multi-scale model, unless --lab-weights is given: then that model alone); "
                             "'none': the --lab-weights model for every frame")
    parser.add_argument("--wbc-threshold", type=float, default=DEFAULT_WBC_THRESHOLD,
                        help="WBC score that makes an image positive (image-level metrics)")
    parser.add_argument("--faint-strength", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cell-size", type=cell_size_arg, default="auto",
                        help="auto (default: the RBC size found in each image, cells brought to the training scale, "
                             "tiled when larger than the network's input), rule (each image taken as one BCCD-sized "
                             "field: the app before the scale estimate) or an RBC diameter in pixels")
    parser.add_argument("--zoom-out", type=zoom_out_arg, default=None, metavar="K[,K...]",
                        help="score the split as K x K mosaics (each image shrunk to 1/K; K=1: as it is) instead of "
                             "the default rows, e.g. --zoom-out 1,2,3,4")
    parser.add_argument("--stain-normalise", action="store_true",
                        help="the main row (and --zoom-out) with stain normalisation first")
    parser.add_argument("--reference-rows", choices=("auto", "on", "off"), default="auto",
                        help="faint / stain-shift / RGB-model / HSV-baseline rows; auto: only when the images need "
                             "at most 2 tiles (BCCD-sized fields), since each row repeats the whole run")
    parser.add_argument("--exclude", default=None,
                        help="image ids to leave out: comma-separated, or @FILE with one id per line ('#' comments), "
                             "e.g. @models/leukocyte/bccd_test_unlabelled_wbc.txt (BCCD test images whose WBC is "
                             "not annotated)")


def excluded_ids(spec: str | None) -> set[str]:
    """``--exclude``: "id1,id2" or "@FILE" (one id per line, text after '#' ignored)."""
    if not spec:
        return set()
    if spec.startswith("@"):
        path = Path(spec[1:])
        if not path.is_file():
            raise InputError(f"{path}: --exclude file not found")
        lines = (line.split("#", 1)[0] for line in path.read_text().splitlines())
    else:
        lines = spec.split(",")
    return {line.strip() for line in lines if line.strip()}


TARGETS = {"wbc_ap50_zoom_out": {"1": 0.97, "2": 0.95, "3": 0.90}, "wbc_ap50_phone_photos": 0.80}


def cell_size_arg(value: str) -> str | float:
    """``--cell-size``: "auto" (estimate per image), "rule" (the model's own size rule: the frame taken as one
    BCCD-sized field, what the app did before the scale estimate) or an RBC diameter in pixels."""
    if value in ("auto", "rule"):
        return value
    try:
        px = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected auto, rule or a number of pixels") from None
    if not 2 <= px <= 2000:
        raise argparse.ArgumentTypeError(f"{value!r}: an RBC diameter between 2 and 2000 pixels")
    return px


def zoom_out_arg(value: str) -> list[int]:
    try:
        ks = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected K or K1,K2,... (whole numbers 1-8)") from None
    if not ks or any(not 1 <= k <= 8 for k in ks):
        raise argparse.ArgumentTypeError(f"{value!r}: each K must be 1-8")
    return ks


def zoomed_out(samples, images, k: int):
    """The split as K x K mosaics (each field shrunk to 1/K, :func:`~.zoomout.mosaic`); the last mosaic is filled
    with the split's first images again. Returns (ids, frames, boxes, labels)."""
    from stream_app.modes.leukocyte.zoomout import mosaic

    if k == 1:
        return [s.image_id for s in samples], images, [s.boxes for s in samples], [s.labels for s in samples]
    n = len(samples)
    ids, frames, boxes, labels = [], [], [], []
    for start in range(0, n, k * k):
        idx = [(start + i) % n for i in range(k * k)]
        frame, b, lab = mosaic([images[i] for i in idx], [samples[i].boxes for i in idx],
                               [samples[i].labels for i in idx], k)
        ids.append("+".join(samples[i].image_id for i in idx[:2]) + ("+..." if k > 1 else ""))
        frames.append(frame)
        boxes.append(b)
        labels.append(lab)
    return ids, frames, boxes, labels


class _Sample:
    """What :func:`_run` needs of a sample (a mosaic has no VocSample)."""

    def __init__(self, image_id, boxes, labels) -> None:
        self.image_id, self.boxes, self.labels = image_id, boxes, labels


def _true_rbc_px(boxes: np.ndarray, labels: np.ndarray) -> float | None:
    rbc = boxes[labels == 2]
    if len(rbc) < 5:
        return None
    return float(np.median(np.sqrt((rbc[:, 2] - rbc[:, 0]) * (rbc[:, 3] - rbc[:, 1]))))


def evaluate(args: argparse.Namespace) -> int:
    from stream_app.modes.leukocyte.scale import detect_at, detect_auto

    torch.set_num_threads(args.threads)
    voc = Path(args.voc) if args.voc else data_dir() / "bccd"
    samples = load_split(voc, args.split)
    excluded = excluded_ids(args.exclude)
    unknown = excluded - {s.image_id for s in samples}
    if unknown:
        raise InputError(f"--exclude: {', '.join(sorted(unknown))} not in split {args.split!r} of {voc}")
    samples = [s for s in samples if s.image_id not in excluded]
    if not samples:
        raise InputError(f"--exclude leaves no image in split {args.split!r}")
    images = [s.load() for s in samples]
    rgb_path = Path(args.weights) if args.weights else WEIGHTS["rgb"]
    lab_path = Path(args.lab_weights) if args.lab_weights else WEIGHTS["clahe_lab"]
    rescaled = args.lab_rescaled_weights
    if rescaled is None and not args.lab_weights and RESCALED_WEIGHTS["clahe_lab"].is_file():
        rescaled = str(RESCALED_WEIGHTS["clahe_lab"])
    rescaled_path = None if rescaled in (None, "none") else Path(rescaled)
    for path in (rgb_path, lab_path, rescaled_path):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: detector weights not found (train them with `python -m stream_app train leukocyte`)")
    rgb = shared_detector(str(rgb_path))
    lab = routed_detector(str(lab_path), None if rescaled_path is None else str(rescaled_path))
    cell_size = args.cell_size
    seen: list[dict] = []  # per image of the last learned run: tiles, estimated RBC size

    def learned(detector, normalise=False):
        def run(image):
            if cell_size == "rule":
                d, _ = detector(image, normalise=normalise)
                seen.append({"tiles": 1, "rbc_px": None})
            elif cell_size == "auto":
                d, timings, estimate = detect_auto(detector, image, None, normalise)
                seen.append({"tiles": timings["tiles"], "rbc_px": estimate.rbc_px})
            else:
                d, timings = detect_at(detector, image, float(cell_size), None, normalise)
                seen.append({"tiles": timings["tiles"], "rbc_px": float(cell_size)})
            return d.boxes, class_ids(d.labels), d.scores
        return run

    settings = {"split": args.split, "wbc_threshold": args.wbc_threshold, "faint_strength": args.faint_strength,
                "excluded": sorted(excluded), "cell_size": cell_size}
    models = {"clahe_lab": f"{lab_path} ({type(shared_detector(str(lab_path))).__name__})",
              "clahe_lab_rescaled_frames": None if rescaled_path is None
              else f"{rescaled_path} ({type(lab.rescaled).__name__})",
              "rgb": f"{rgb_path} ({type(rgb).__name__})"}
    if args.zoom_out:
        rows = {}
        for k in args.zoom_out:
            ids, frames, boxes, labels = zoomed_out(samples, images, k)
            seen.clear()
            row = _run(learned(lab, args.stain_normalise), [_Sample(*t) for t in zip(ids, boxes, labels)], frames,
                       args.wbc_threshold)
            truth = [_true_rbc_px(b, lab_) for b, lab_ in zip(boxes, labels)]
            ratios = [x["rbc_px"] / t for x, t in zip(seen, truth) if t and x["rbc_px"]]
            target = TARGETS["wbc_ap50_zoom_out"].get(str(k))
            rows[str(k)] = {
                "n_frames": len(frames), "frame_size": [int(frames[0].shape[1]), int(frames[0].shape[0])],
                "WBC": row["per_class"]["WBC"], "map50": row["map50"], "per_class": row["per_class"],
                "image_level": row["image_level"], "ms_per_frame": row["ms_per_image"],
                "tiles_per_frame": float(np.median([x["tiles"] for x in seen])),
                "frames_tiled": int(sum(x["tiles"] > 1 for x in seen)),
                "scale_estimate": {"median_ratio_to_truth": round(float(np.median(ratios)), 3) if ratios else None,
                                   "within_20pct": round(float(np.mean([abs(r - 1) <= 0.2 for r in ratios])), 3)
                                   if ratios else None,
                                   "not_found": int(sum(x["rbc_px"] is None for x in seen))},
                "target_wbc_ap50": target,
                "target_met": None if target is None else bool(row["per_class"]["WBC"]["ap50"] >= target),
            }
            print(f"zoom-out {k}x{k}: WBC AP50 {row['per_class']['WBC']['ap50']:.4f} (target {target}), "
                  f"{row['ms_per_image']} ms a frame", file=sys.stderr)
        out = {"n_images": len(samples), "zoom_out": rows, "targets": TARGETS,
               "settings": {**settings, "stain_normalise": args.stain_normalise}, "models": models}
        print(json.dumps(out))
        return 0

    def classical(image):
        boxes, scores = baseline.detect(image)
        return boxes, np.ones(len(boxes), np.int64), scores

    seen.clear()
    main = _run(learned(lab, args.stain_normalise), samples, images, args.wbc_threshold)
    tiles = float(np.median([x["tiles"] for x in seen]))
    estimates = [x["rbc_px"] for x in seen]
    out = {
        "n_images": len(samples),
        "map50": main["map50"],
        "per_class": main["per_class"],
        "image_level": main["image_level"],
        "scale": {"rbc_px_median": round(float(np.median([e for e in estimates if e])), 1)
                  if any(estimates) else None,
                  "not_found": int(sum(e is None for e in estimates)) if cell_size == "auto" else None,
                  "tiles_per_image": tiles},
        "targets": TARGETS,
    }
    reference = args.reference_rows == "on" or (args.reference_rows == "auto" and tiles <= 2)
    settings["reference_rows"] = reference if args.reference_rows != "auto" else (
        f"{reference} (auto: {'BCCD-sized fields' if reference else 'zoomed-out images, each needs many tiles'})")
    if reference:
        faint_images = [faint(im, args.faint_strength) for im in images]
        shifted_images = [stain_shift(im) for im in images]
        rgb_main = _run(learned(rgb), samples, images, args.wbc_threshold)
        wbc = ("WBC",)
        out.update({
            "faint": {"preprocessed": _wbc_only(_run(learned(lab), samples, faint_images, args.wbc_threshold, wbc)),
                      "raw": _wbc_only(_run(learned(rgb), samples, faint_images, args.wbc_threshold, wbc)),
                      "stain_normalised": _wbc_only(_run(learned(lab, True), samples, faint_images,
                                                         args.wbc_threshold, wbc))},
            "stain_shift": {"preprocessed": _wbc_only(_run(learned(lab), samples, shifted_images, args.wbc_threshold,
                                                           wbc)),
                            "raw": _wbc_only(_run(learned(rgb), samples, shifted_images, args.wbc_threshold, wbc)),
                            "stain_normalised": _wbc_only(_run(learned(lab, True), samples, shifted_images,
                                                               args.wbc_threshold, wbc))},
            "stain_normalised_on_original": _wbc_only(_run(learned(lab, True), samples, images, args.wbc_threshold,
                                                           wbc)),
            "rgb_model": {"map50": rgb_main["map50"], "per_class": rgb_main["per_class"],
                          "image_level": rgb_main["image_level"]},
        })
        base = _run(classical, samples, images, 0.0, wbc)
        out["baseline"] = {
            "WBC": base["per_class"]["WBC"], "image_level": base["image_level"],
            "faint": _wbc_only(_run(classical, samples, faint_images, 0.0, wbc)),
            "stain_shift": _wbc_only(_run(classical, samples, shifted_images, 0.0, wbc)),
            "ms_per_image": base["ms_per_image"],
        }
        out["ms_per_image"] = {"clahe_lab": main["ms_per_image"], "rgb": rgb_main["ms_per_image"]}
    else:
        out["ms_per_image"] = {"clahe_lab": main["ms_per_image"]}
    out["settings"] = {**settings, "stain_normalise": args.stain_normalise}
    out["models"] = models
    print(f"WBC AP50 {main['per_class']['WBC']['ap50']} on {len(samples)} images; targets: BCCD test >= "
          f"{TARGETS['wbc_ap50_zoom_out']['1']}, phone photos >= {TARGETS['wbc_ap50_phone_photos']}", file=sys.stderr)
    print(json.dumps(out))
    return 0
