"""Labelled images for training and evaluation: MedMNIST-style ``.npz`` files and folders of class folders.

* ``--npz FILE``: arrays ``{train,val,test}_images`` (N,H,W) or (N,H,W,3) uint8 and ``{split}_labels`` (N,) or (N,1).
  The file holds no class names: pass them (``--classes normal,pneumonia``) or get ``class0``, ``class1``, ...
* ``--images DIR``: ``DIR/<class>/*.png|jpg|...`` (any size, 8/16-bit, grey or colour). If ``DIR`` holds ``train/``
  and ``val/`` (and optionally ``test/``) folders, those are the splits; otherwise training makes a seeded, stratified
  train/val/test split (scikit-learn ``train_test_split``) and records the file lists in the model's ``split.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream_app.errors import InputError
from stream_app.sources import list_images, read_image

SPLITS = ("train", "val", "test")


@dataclass
class LabelledImages:
    """Images (a list of HxW / HxWx3 uint8 arrays, or one stacked array) with integer labels into ``classes``."""

    images: list | np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    files: list[str] | None = None  # relative paths, for folders

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "LabelledImages":
        images = self.images[index] if isinstance(self.images, np.ndarray) else [self.images[i] for i in index]
        files = None if self.files is None else [self.files[i] for i in index]
        return LabelledImages(images, self.labels[index], self.classes, files)


def npz_classes(npz_path: str | Path, given: str | None = None) -> tuple[str, ...]:
    """Class names for an npz file: ``given`` (comma-separated) or ``class0..classK`` from the labels present."""
    with np.load(npz_path) as data:
        top = max(int(np.max(data[f"{s}_labels"])) for s in SPLITS if f"{s}_labels" in data.files)
    if given:
        names = tuple(n.strip() for n in given.split(",") if n.strip())
        if len(names) <= top:
            raise InputError(f"--classes names {len(names)} classes but {npz_path} has labels up to {top}")
        return names
    return tuple(f"class{i}" for i in range(top + 1))


def load_npz(path: str | Path, split: str, classes: tuple[str, ...] | None = None) -> LabelledImages:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    with data:
        keys = (f"{split}_images", f"{split}_labels")
        missing = [k for k in keys if k not in data.files]
        if missing:
            raise InputError(f"{path}: no {', '.join(missing)} (arrays present: {', '.join(data.files)})")
        images, labels = data[keys[0]], data[keys[1]].reshape(-1).astype(np.int64)
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3):
        raise InputError(f"{path}: {keys[0]} must be uint8 (N,H,W) or (N,H,W,3), got {images.shape} {images.dtype}")
    if len(images) != len(labels):
        raise InputError(f"{path}: {len(images)} images but {len(labels)} labels in split {split!r}")
    classes = classes or npz_classes(path)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise InputError(f"{path}: labels outside 0..{len(classes) - 1} in split {split!r}")
    return LabelledImages(images, labels, tuple(classes))


def class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_split_folders(root: str | Path) -> bool:
    root = Path(root)
    return (root / "train").is_dir() and (root / "val").is_dir()


def scan_folder(root: str | Path, classes: tuple[str, ...] | None = None) -> tuple[list[Path], np.ndarray, tuple]:
    """Image paths and labels of ``root/<class>/...``; ``classes`` fixes the order (and rejects unknown folders)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    folders = class_folders(root)
    if not folders:
        raise InputError(f"{root}: expected one sub-folder of images per class, found no sub-folders")
    names = tuple(p.name for p in folders)
    if classes is None:
        classes = names
    else:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise InputError(f"{root}: folders {', '.join(unknown)} are not classes of the model ({', '.join(classes)})")
    paths, labels = [], []
    for folder in folders:
        try:
            found = list_images(folder)
        except InputError:
            continue
        paths += found
        labels += [classes.index(folder.name)] * len(found)
    if not paths:
        raise InputError(f"{root}: the class folders hold no images")
    return paths, np.asarray(labels, np.int64), tuple(classes)


def load_folder(root: str | Path, classes: tuple[str, ...] | None = None,
                files: list[str] | None = None) -> LabelledImages:
    """Read the images of ``root`` (or only ``files``, relative to it) as RGB uint8 arrays with labels."""
    root = Path(root)
    paths, labels, classes = scan_folder(root, classes)
    rel = [p.relative_to(root).as_posix() for p in paths]
    if files is not None:
        keep = set(files)
        index = [i for i, r in enumerate(rel) if r in keep]
        if len(index) != len(keep):
            raise InputError(f"{root}: {len(keep) - len(index)} files of the recorded split are missing")
        paths, labels, rel = [paths[i] for i in index], labels[index], [rel[i] for i in index]
    return LabelledImages([read_image(p) for p in paths], labels, classes, rel)


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float,
                     seed: int) -> dict[str, np.ndarray]:
    """Seeded stratified train/val/test indices (every class in every split when it has >= 3 images)."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    if counts.min() < 3:
        raise InputError(f"every class needs at least 3 images for a train/val/test split; counts: {counts.tolist()}")
    index = np.arange(len(labels))
    n_classes = len(counts)

    def cut(idx: np.ndarray, fraction: float, seed_: int) -> tuple[np.ndarray, np.ndarray]:
        size = max(n_classes, int(round(fraction * len(idx))))
        return train_test_split(idx, test_size=size, stratify=labels[idx], random_state=seed_)

    rest, test = cut(index, test_fraction, seed) if test_fraction > 0 else (index, index[:0])
    train, val = cut(rest, val_fraction / max(1e-9, 1 - test_fraction), seed + 1)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def write_split(path: Path, root: Path, data: LabelledImages, split: dict[str, np.ndarray]) -> None:
    record = {"root": str(Path(root).resolve()), "classes": list(data.classes)}
    record.update({name: [data.files[i] for i in idx] for name, idx in split.items()})
    path.write_text(json.dumps(record, indent=1) + "\n")


def read_split(model_dir: Path, split: str) -> list[str] | None:
    path = Path(model_dir) / "split.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get(split)
