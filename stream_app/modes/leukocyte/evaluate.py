"""``python -m stream_app evaluate leukocyte --voc DIR [--split test]``: one JSON object on stdout.

Keys (the issue's schema, plus reference rows):

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
* ``ms_per_image``: detector time per image (median), ``models``: which weight files were used.
* ``settings``: split, thresholds, and the image ids left out with ``--exclude`` (for images whose labels are known
  to be wrong: ``models/leukocyte/bccd_test_unlabelled_wbc.txt``). Report such a run beside the full one, never
  instead of it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from stream_app.config import data_dir
from stream_app.errors import InputError
from stream_app.modes.leukocyte import baseline
from stream_app.modes.leukocyte.data import load_split
from stream_app.modes.leukocyte.detector import WEIGHTS, shared_detector
from stream_app.modes.leukocyte.metrics import coco_ap, image_level
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
    parser.add_argument("--wbc-threshold", type=float, default=DEFAULT_WBC_THRESHOLD,
                        help="WBC score that makes an image positive (image-level metrics)")
    parser.add_argument("--faint-strength", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=2)
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


def evaluate(args: argparse.Namespace) -> int:
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
    for path in (rgb_path, lab_path):
        if not path.is_file():
            raise InputError(f"{path}: detector weights not found (train them with `python -m stream_app train leukocyte`)")
    rgb, lab = shared_detector(str(rgb_path)), shared_detector(str(lab_path))

    def learned(detector, normalise=False):
        def run(image):
            d = detector(image, normalise=normalise)
            return d.boxes, d.labels, d.scores
        return run

    def classical(image):
        boxes, scores = baseline.detect(image)
        return boxes, np.ones(len(boxes), np.int64), scores

    faint_images = [faint(im, args.faint_strength) for im in images]
    shifted_images = [stain_shift(im) for im in images]
    main = _run(learned(lab), samples, images, args.wbc_threshold)
    rgb_main = _run(learned(rgb), samples, images, args.wbc_threshold)
    wbc = ("WBC",)
    out = {
        "n_images": len(samples),
        "map50": main["map50"],
        "per_class": main["per_class"],
        "image_level": main["image_level"],
        "faint": {"preprocessed": _wbc_only(_run(learned(lab), samples, faint_images, args.wbc_threshold, wbc)),
                  "raw": _wbc_only(_run(learned(rgb), samples, faint_images, args.wbc_threshold, wbc)),
                  "stain_normalised": _wbc_only(_run(learned(lab, True), samples, faint_images, args.wbc_threshold, wbc))},
        "stain_shift": {"preprocessed": _wbc_only(_run(learned(lab), samples, shifted_images, args.wbc_threshold, wbc)),
                        "raw": _wbc_only(_run(learned(rgb), samples, shifted_images, args.wbc_threshold, wbc)),
                        "stain_normalised": _wbc_only(_run(learned(lab, True), samples, shifted_images,
                                                           args.wbc_threshold, wbc))},
        "stain_normalised_on_original": _wbc_only(_run(learned(lab, True), samples, images, args.wbc_threshold, wbc)),
        "rgb_model": {"map50": rgb_main["map50"], "per_class": rgb_main["per_class"],
                      "image_level": rgb_main["image_level"]},
    }
    base = _run(classical, samples, images, 0.0, wbc)
    out["baseline"] = {
        "WBC": base["per_class"]["WBC"], "image_level": base["image_level"],
        "faint": _wbc_only(_run(classical, samples, faint_images, 0.0, wbc)),
        "stain_shift": _wbc_only(_run(classical, samples, shifted_images, 0.0, wbc)),
        "ms_per_image": base["ms_per_image"],
    }
    out["ms_per_image"] = {"clahe_lab": main["ms_per_image"], "rgb": rgb_main["ms_per_image"]}
    out["settings"] = {"split": args.split, "wbc_threshold": args.wbc_threshold, "faint_strength": args.faint_strength,
                       "excluded": sorted(excluded)}
    out["models"] = {"clahe_lab": f"{lab_path} ({type(lab).__name__})", "rgb": f"{rgb_path} ({type(rgb).__name__})"}
    print(json.dumps(out))
    return 0
