"""``python -m stream_app evaluate classify``: accuracy, AUC, per-class precision/recall/F1 and the confusion matrix.

Metrics are scikit-learn's (``accuracy_score``, ``roc_auc_score`` - one-vs-rest macro average for more than two
classes - ``precision_recall_fscore_support``, ``confusion_matrix``) so the numbers mean what they mean everywhere;
the plots are its displays (:mod:`stream_app.training.reports`).
The predicted class is the most probable one. Output: one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stream_app.errors import InputError
from stream_app.modes.classify.data import LabelledImages, has_split_folders, load_folder, load_npz, read_split
from stream_app.modes.classify.network import DEFAULT_MODEL, LoadedModel, load_model, prepare
from stream_app.training.reports import save_confusion_png, save_roc_png


def compute_metrics(labels: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

    k = len(classes)
    pred = probs.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, pred, labels=list(range(k)), zero_division=0)
    auc = None
    if len(np.unique(labels)) == k:  # AUC is undefined when a class is absent
        auc = float(roc_auc_score(labels, probs[:, 1]) if k == 2 else
                    roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=list(range(k))))
    return {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, pred)) if len(labels) else None,
        "auc": auc,
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i])}
                      for i, name in enumerate(classes)},
        "confusion": confusion_matrix(labels, pred, labels=list(range(k))).astype(int).tolist(),
    }


def predict_data(model: LoadedModel, data: LabelledImages) -> np.ndarray:
    prepared = np.stack([prepare(img, model.meta) for img in data.images])
    return model.predict_prepared(prepared)


def evaluate_data(model: LoadedModel, data: LabelledImages, confusion_png: str | Path | None = None,
                  roc_png: str | Path | None = None) -> dict:
    if len(data) == 0:
        raise InputError("nothing to evaluate: the split holds no images")
    if tuple(data.classes) != tuple(model.meta.classes):
        raise InputError(f"data classes {data.classes} differ from the model's {model.meta.classes}")
    probs = predict_data(model, data)
    result = compute_metrics(data.labels, probs, model.meta.classes)
    title = f"{model.meta.name} {model.meta.version} (n={len(data)})"
    if confusion_png:
        save_confusion_png(np.asarray(result["confusion"]), model.meta.classes, confusion_png,
                           f"Confusion matrix\n{title}")
    if roc_png:
        save_roc_png(data.labels, probs, model.meta.classes, roc_png, title)
    return result


def load_eval_data(model: LoadedModel, npz: str | None, images: str | None, split: str | None) -> LabelledImages:
    if bool(npz) == bool(images):
        raise InputError("give exactly one of --npz FILE or --images DIR")
    classes = model.meta.classes
    if npz:
        return load_npz(npz, split or "test", classes)
    root = Path(images)
    if split is None:
        return load_folder(root, classes)
    if has_split_folders(root) and (root / split).is_dir():
        return load_folder(root / split, classes)
    files = read_split(model.path, split)
    if files is None:
        raise InputError(f"{root}: no {split}/ folder and the model records no {split!r} split (split.json)")
    return load_folder(root, classes, files)


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"model name under models/classify/ or a model folder (default {DEFAULT_MODEL})")
    parser.add_argument("--npz", help="MedMNIST-style .npz file")
    parser.add_argument("--images", help="folder with one sub-folder of images per class")
    parser.add_argument("--split", choices=("train", "val", "test"),
                        help="split to evaluate: npz key prefix (default test); for --images a DIR/<split>/ folder "
                             "or the split recorded at training (default: every image in DIR)")
    parser.add_argument("--confusion-png", help="save the confusion matrix as a PNG")
    parser.add_argument("--roc-png", help="save the ROC curve(s) as a PNG")


def run_evaluate(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    data = load_eval_data(model, args.npz, args.images, args.split)
    print(json.dumps(evaluate_data(model, data, args.confusion_png, args.roc_png)))
    return 0
