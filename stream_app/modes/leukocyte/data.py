"""Pascal VOC trees like BCCD's: ``JPEGImages/``, ``Annotations/*.xml``, ``ImageSets/Main/<split>.txt``.

Any image size, images with no objects, and missing XML files (= no objects) are accepted; unknown class names are
skipped. Boxes are returned as float32 ``Nx4`` (x1, y1, x2, y2) in pixels, labels as int64 class ids (1=WBC,
2=RBC, 3=Platelets, see :data:`stream_app.modes.leukocyte.model.CLASSES`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream_app.errors import InputError
from stream_app.modes.leukocyte.model import CLASSES
from stream_app.sources import read_image

_ALIASES = {name.lower(): i + 1 for i, name in enumerate(CLASSES)} | {
    "platelet": 3, "plt": 3, "white blood cell": 1, "white_blood_cell": 1, "white-blood-cell": 1, "leukocyte": 1,
    "leukocytes": 1, "red blood cell": 2, "red_blood_cell": 2, "red-blood-cell": 2, "erythrocyte": 2,
    "erythrocytes": 2, "thrombocyte": 3, "thrombocytes": 3}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass
class VocSample:
    image_id: str
    image_path: Path
    boxes: np.ndarray  # (N, 4) float32
    labels: np.ndarray  # (N,) int64

    def load(self) -> np.ndarray:
        return read_image(self.image_path)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)


def _is_flat_voc(folder: Path) -> bool:
    """Images with their ``.xml`` beside them (Roboflow's "Pascal VOC" export)."""
    return folder.is_dir() and any(p.with_suffix(".xml").is_file() for p in _images_in(folder))


def voc_root(path: str | Path) -> Path:
    """Accept the VOC folder itself or a folder holding it (BCCD ships ``bccd/BCCD/...``), or a flat folder of images
    with their ``.xml`` files beside them (or such folders per split: ``train/``, ``valid/``, ``test/``)."""
    path = Path(path)
    if (path / "JPEGImages").is_dir() or _is_flat_voc(path):
        return path
    children = sorted(path.iterdir()) if path.is_dir() else []
    for child in children:
        if (child / "JPEGImages").is_dir():
            return child
    if any(_is_flat_voc(child) for child in children):
        return path
    raise InputError(f"{path}: not a Pascal VOC folder (no JPEGImages/, and no images with .xml files beside them, "
                     "in it or its sub-folders)")


def parse_annotation(xml_path: Path) -> tuple[np.ndarray, np.ndarray]:
    boxes, labels = [], []
    if xml_path.is_file():
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            raise InputError(f"{xml_path}: not valid XML ({exc})") from None
        for obj in root.iter("object"):
            name = (obj.findtext("name") or "").strip().lower()
            box = obj.find("bndbox")
            if name not in _ALIASES or box is None:
                continue
            x1, y1, x2, y2 = (float(box.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
            if not np.isfinite([x1, y1, x2, y2]).all() or x2 <= x1 or y2 <= y1:
                continue
            boxes.append((x1, y1, x2, y2))
            labels.append(_ALIASES[name])
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def load_flat(folder: Path) -> list[VocSample]:
    """Every image of a flat folder, boxes from the ``.xml`` beside each (none: no objects)."""
    samples = []
    for image in _images_in(folder):
        boxes, labels = parse_annotation(image.with_suffix(".xml"))
        samples.append(VocSample(image.stem, image, boxes, labels))
    if not samples:
        raise InputError(f"{folder}: no images")
    return samples


def split_folder(root: str | Path, split: str | None) -> Path | None:
    """For a folder of flat splits (``test/``, ``valid/`` ...): the folder of ``split`` ("val" also finds
    ``valid/``); None when ``root`` is not such a folder."""
    root = voc_root(root)
    if (root / "JPEGImages").is_dir():
        return None
    if _is_flat_voc(root):
        return root
    for name in ([split, "valid"] if split == "val" else [split]) if split and split != "all" else []:
        if _is_flat_voc(root / name):
            return root / name
    return None


def load_split(root: str | Path, split: str | None = "test") -> list[VocSample]:
    """The samples of ``ImageSets/Main/<split>.txt`` (``split=None``, "all" or a tree without ``ImageSets/Main/``:
    every image). A flat folder (images
    with their ``.xml`` beside them) is read whole; a folder of flat splits gives the ``split`` sub-folder."""
    root = voc_root(root)
    flat = split_folder(root, split)
    if flat is not None:
        return load_flat(flat)
    if not (root / "JPEGImages").is_dir():
        if split in (None, "all"):
            return [s for child in sorted(root.iterdir()) if _is_flat_voc(child) for s in load_flat(child)]
        raise InputError(f"{root}: no split {split!r} (sub-folders: "
                         f"{', '.join(c.name for c in sorted(root.iterdir()) if _is_flat_voc(c))})")
    images = root / "JPEGImages"
    by_stem = {p.stem: p for p in _images_in(images)}
    list_file = root / "ImageSets" / "Main" / f"{split}.txt" if split else None
    if list_file is not None and list_file.is_file():
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    elif split and split != "all" and (root / "ImageSets" / "Main").is_dir():
        raise InputError(f"{root}: no split list ImageSets/Main/{split}.txt")
    else:  # no split lists at all: a folder that is one set (every image)
        ids = sorted(by_stem)
    samples = []
    for image_id in ids:
        if image_id not in by_stem:
            raise InputError(f"{root}: split {split!r} lists {image_id!r} but JPEGImages/ has no such image")
        boxes, labels = parse_annotation(root / "Annotations" / f"{image_id}.xml")
        samples.append(VocSample(image_id, by_stem[image_id], boxes, labels))
    if not samples:
        raise InputError(f"{root}: split {split!r} is empty")
    return samples
