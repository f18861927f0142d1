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

_ALIASES = {name.lower(): i + 1 for i, name in enumerate(CLASSES)} | {"platelet": 3, "plt": 3}


@dataclass
class VocSample:
    image_id: str
    image_path: Path
    boxes: np.ndarray  # (N, 4) float32
    labels: np.ndarray  # (N,) int64

    def load(self) -> np.ndarray:
        return read_image(self.image_path)


def voc_root(path: str | Path) -> Path:
    """Accept the VOC folder itself or a folder holding it (BCCD ships ``bccd/BCCD/...``)."""
    path = Path(path)
    if (path / "JPEGImages").is_dir():
        return path
    for child in sorted(path.iterdir()) if path.is_dir() else []:
        if (child / "JPEGImages").is_dir():
            return child
    raise InputError(f"{path}: not a Pascal VOC folder (no JPEGImages/ in it or its sub-folders)")


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


def load_split(root: str | Path, split: str | None = "test") -> list[VocSample]:
    """The samples of ``ImageSets/Main/<split>.txt`` (``split=None`` or a missing list: every image)."""
    root = voc_root(root)
    images = root / "JPEGImages"
    by_stem = {p.stem: p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".tif")}
    list_file = root / "ImageSets" / "Main" / f"{split}.txt" if split else None
    if list_file is not None and list_file.is_file():
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    elif split and split != "all":
        raise InputError(f"{root}: no split list ImageSets/Main/{split}.txt")
    else:
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
