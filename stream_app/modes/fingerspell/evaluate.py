"""``python -m stream_app evaluate fingerspell``: accuracy of the shipped model and of each classifier alone.

- ``--images DIR``: DIR holds one folder per letter (A-Z, any case). Every image runs through the app's own path
  (IMAGE-mode hand finder with retries -> crop + landmarks -> classifiers). Accuracy is over images with a found hand;
  images with no hand are counted in ``hand_found_rate`` and listed, never dropped silently.
- ``--roboflow-test``: the same on the Roboflow test split (72 photos that share no photo with training; the
  manifest's ``split`` column).
- ``--massey-loho``: Massey leave-one-hand-out from the hand-finder cache: for each of the 5 hands, the landmark MLP
  is trained again (same recipe, seconds) without that hand and tested on it; ``--loho-crop-minutes M`` also trains
  the crop model per hand (M minutes each) and reports crop and fused accuracies. Run it under the CPU lock.

Prints one JSON object: ``accuracy``, ``hand_found_rate``, ``n``, ``labels``, ``per_letter`` {letter: precision,
recall, f1, n}, ``confusion`` (rows = true, columns = predicted, over ``labels``), ``models`` {landmarks, crop,
fused: accuracy}, ``shipped``; ``massey_loho`` when asked.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from stream_app.modes.fingerspell import LETTERS


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", help="folder with one sub-folder per letter (A-Z, any case)")
    parser.add_argument("--roboflow-test", action="store_true",
                        help="evaluate on the Roboflow test split of the shared data (grouped by photo)")
    parser.add_argument("--massey-loho", action="store_true",
                        help="Massey leave-one-hand-out (retrains the landmark MLP per held-out hand)")
    parser.add_argument("--loho-crop-minutes", type=float, default=0.0,
                        help="with --massey-loho: also train the crop model per held-out hand, this long each")
    parser.add_argument("--confusion-png", help="save the confusion matrix of the shipped model as a PNG")
    parser.add_argument("--model-dir", help="trained models (default models/fingerspell)")
    parser.add_argument("--seed", type=int, default=0)


def letter_folders(root: Path) -> list[tuple[Path, str]]:
    """(image, letter) for each image in the letter folders of ``root``."""
    from stream_app.errors import InputError
    from stream_app.sources import IMAGE_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    out = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and len(folder.name) == 1 and folder.name.upper() in LETTERS:
            out += [(p, folder.name.upper()) for p in sorted(folder.rglob("*"))
                    if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not out:
        raise InputError(f"{root}: no images in letter folders (expected {root}/A/*.jpg, {root}/b/*.png, ...)")
    return out


def roboflow_test_items() -> list[tuple[Path, str]]:
    from stream_app.modes.fingerspell.data import roboflow_items

    return [(it.path, it.letter) for it in roboflow_items() if it.split == "test"]


def evaluate_images(items: list[tuple[Path, str]], classifiers, log=None) -> dict:
    """Run the app's still-image path over ``items``; per-image predictions of every model."""
    from stream_app.modes.fingerspell.hands import HandFinder
    from stream_app.frames import fit_within
    from stream_app.modes.fingerspell.recognition import analyse
    from stream_app.sources import read_image

    finder = HandFinder(video=False)
    rows = []
    for i, (path, letter) in enumerate(items):
        image = read_image(path)
        hands, small, scale = finder.find(image)
        hand, probs = analyse(hands, small, scale, image.shape[1], image.shape[0], classifiers, "all")
        row = {"path": str(path), "letter": letter, "found": hand is not None, "hands": len(hands)}
        if probs:
            row.update({k: LETTERS[int(np.argmax(v))] for k, v in probs.items()})
        rows.append(row)
        if log and (i + 1) % 100 == 0:
            log(f"{i + 1}/{len(items)} images")
    finder.close()
    return {"rows": rows}


def summarise(rows: list[dict], shipped: str) -> dict:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    found = [r for r in rows if r["found"]]
    y_true = [r["letter"] for r in found]
    y_pred = [r.get(shipped, r.get("landmarks")) for r in found]
    labels = sorted(set(y_true) | set(y_pred))
    out = {"accuracy": float(np.mean([a == b for a, b in zip(y_true, y_pred)])) if found else None,
           "hand_found_rate": len(found) / len(rows) if rows else None, "n": len(rows), "n_found": len(found),
           "labels": labels, "per_letter": {}, "confusion": []}
    if found:
        p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        out["per_letter"] = {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                                   "f1": round(float(f[i]), 4), "n": int(n[i])} for i, lab in enumerate(labels)}
        out["confusion"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    out["models"] = {}
    for name in ("landmarks", "crop", "fused"):
        if found and name in found[0]:
            out["models"][name] = round(float(np.mean([r["letter"] == r[name] for r in found])), 4)
    out["shipped"] = shipped
    out["no_hand_images"] = [r["path"] for r in rows if not r["found"]]
    out["several_hands_images"] = sum(r["hands"] > 1 for r in rows)
    if out["accuracy"] is not None:
        out["accuracy"] = round(out["accuracy"], 4)
    if out["hand_found_rate"] is not None:
        out["hand_found_rate"] = round(out["hand_found_rate"], 4)
    return out


def save_confusion_png(summary: dict, path: str | Path) -> None:
    from stream_app.training.reports import save_confusion_png as save

    acc = summary.get("accuracy")
    save(np.array(summary["confusion"] or [[0]]), summary["labels"], path,
         f"fingerspell ({summary.get('shipped')}): accuracy {acc if acc is not None else '-'}, "
         f"hand found {summary.get('hand_found_rate')}")


def massey_loho(seed: int = 0, crop_minutes: float = 0.0, log=None) -> dict:
    """Leave one Massey hand out: retrain on Roboflow train + the other four hands, test on the held-out hand."""
    import torch

    from stream_app.modes.fingerspell.data import letter_index, load_cache
    from stream_app.modes.fingerspell.train import (accuracy, cache_features, center_crops, predict_crops,
                                                    predict_landmarks, split_masks, train_crop, train_landmarks)

    torch.set_num_threads(2)
    data = load_cache()
    y = letter_index(data["letter"])
    hands = sorted(set(data["split"][data["source"] == "massey"]))
    per_hand = {}
    for hand in hands:
        t0 = time.time()
        masks = split_masks(data, holdout=hand)
        test_all = (data["source"] == "massey") & (data["split"] == hand)
        test = test_all & data["found"]
        mlp, _ = train_landmarks(cache_features(data, masks["train"]), y[masks["train"]], seed=seed,
                                 valid=(cache_features(data, masks["valid"]), y[masks["valid"]]))
        p_lm = predict_landmarks(mlp, cache_features(data, test))
        res = {"n": int(test_all.sum()), "hand_found_rate": round(float(data["found"][test_all].mean()), 4),
               "landmarks": round(accuracy(p_lm, y[test]), 4)}
        if crop_minutes > 0:
            crop, _, _ = train_crop(data["crops"][masks["train"]], y[masks["train"]],
                                    data["source"][masks["train"]] == "massey", data["backgrounds"],
                                    valid=(data["crops"][masks["valid"]], y[masks["valid"]]),
                                    minutes=crop_minutes, seed=seed)
            p_crop = predict_crops(crop, center_crops(data["crops"][test]))
            res["crop"] = round(accuracy(p_crop, y[test]), 4)
            res["fused"] = round(accuracy(0.5 * p_crop + 0.5 * p_lm, y[test]), 4)
        per_hand[hand] = res
        if log:
            log(f"LOHO {hand}: {res} ({time.time() - t0:.0f} s)")
    mean = {k: round(float(np.mean([r[k] for r in per_hand.values()])), 4)
            for k in ("landmarks", "crop", "fused", "hand_found_rate") if all(k in r for r in per_hand.values())}
    return {"hands": per_hand, "mean": mean,
            "note": "landmark MLP retrained per held-out hand" + (
                f"; crop model too ({crop_minutes} min each, fused with weight 0.5)" if crop_minutes > 0 else
                "; crop/fused not retrained per hand (not measured)")}


def run_evaluate(args: argparse.Namespace) -> int:
    from stream_app.errors import UsageError
    from stream_app.modes.fingerspell.models import load_classifiers
    from stream_app.training.loop import training_logger

    log = training_logger("fingerspell").info

    if not (args.images or args.roboflow_test or args.massey_loho):
        raise UsageError("give --images DIR, --roboflow-test or --massey-loho")
    if args.images and args.roboflow_test:
        raise UsageError("give either --images or --roboflow-test, not both")
    out: dict = {}
    if args.images or args.roboflow_test:
        items = letter_folders(Path(args.images)) if args.images else roboflow_test_items()
        classifiers = load_classifiers(Path(args.model_dir) if args.model_dir else None)
        start = time.time()
        rows = evaluate_images(items, classifiers, log)["rows"]
        out = summarise(rows, classifiers.shipped)
        out["source"] = str(args.images) if args.images else "roboflow test split (manifest.csv)"
        out["seconds"] = round(time.time() - start, 1)
        if args.confusion_png:
            save_confusion_png(out, args.confusion_png)
    if args.massey_loho:
        out["massey_loho"] = massey_loho(args.seed, args.loho_crop_minutes, log)
    print(json.dumps(out))
    return 0
