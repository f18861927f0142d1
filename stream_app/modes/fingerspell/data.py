"""The shared fingerspelling data sets, run once through the app's own hand finder and cached OUTSIDE git.

Sources (read-only, ``config.data_dir()``):
- ``asl_roboflow_letters``: ``manifest.csv`` gives split (train/valid/test) and the photo id; augmented copies of one
  photo share the id and never cross splits. Group = ``rf:<photo id>``.
- ``asl_massey``: letters a-z only, group = ``massey:handN`` (5 hands, for leave-one-hand-out).

The cache (``.cache/fingerspell/`` in the project, gitignored; or ``STREAM_APP_CACHE``) holds, per image: whether a
hand was found (IMAGE mode with retries, exactly as ``evaluate`` runs it), the 21 landmarks, handedness, and a
``CACHE_CROP`` px square crop (mirrored to the right hand) whose centre ``CROP_SIZE`` region is the classifier's input
crop, and which hand model found them (a cache from another MediaPipe bundle is rebuilt). Plus a bank of background
patches cut from Roboflow training photos OUTSIDE their labelled hand box, used to paste Massey's cut-out hands on
varied backgrounds. None of this is ever committed.
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stream_app.config import ROOT, data_dir
from stream_app.modes.fingerspell import LETTERS
from stream_app.modes.fingerspell.hands import HandFinder, choose_signing_hand, square_crop

CROP_SIZE = 128          # classifier input
CROP_MARGIN = 0.2        # margin around the landmark box, per side, as a fraction of its longer side
CACHE_CROP = 160         # cached crop: the classifier crop plus room for augmentation
CACHE_MARGIN = ((1 + 2 * CROP_MARGIN) * CACHE_CROP / CROP_SIZE - 1) / 2
RF_DIR = "asl_roboflow_letters"
MASSEY_DIR = "asl_massey"
CACHE_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("STREAM_APP_CACHE", ROOT / ".cache")) / "fingerspell"


@dataclass
class Item:
    path: Path
    letter: str
    source: str   # "rf" | "massey"
    split: str    # rf: train/valid/test; massey: handN
    group: str    # photo id or hand


def roboflow_items(root: Path | None = None) -> list[Item]:
    base = (root or data_dir()) / RF_DIR
    items = []
    with open(base / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            letter = row["letter_from_filename"].upper()
            items.append(Item(base / row["image_path"], letter, "rf", row["split"], f"rf:{row['source_image_id']}"))
    return items


def massey_items(root: Path | None = None) -> list[Item]:
    base = (root or data_dir()) / MASSEY_DIR / "asl_dataset"
    items = []
    for folder in sorted(base.iterdir()):
        if not (folder.is_dir() and len(folder.name) == 1 and folder.name.isalpha()):
            continue
        for path in sorted(folder.glob("*.jp*g")):
            hand = path.name.split("_")[0]
            items.append(Item(path, folder.name.upper(), "massey", hand, f"massey:{hand}"))
    return items


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _background_patches(items: list[Item], rng: np.random.Generator, per_image: int = 1) -> np.ndarray:
    """Square patches of Roboflow training photos that do not overlap the labelled hand box (YOLO label)."""
    patches = []
    for item in items:
        label = Path(str(item.path).replace("/images/", "/labels/")).with_suffix(".txt")
        if not label.is_file():
            continue
        image = read_rgb(item.path)
        h, w = image.shape[:2]
        _, cx, cy, bw, bh = (float(v) for v in label.read_text().split()[:5])
        bx1, by1, bx2, by2 = (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h
        for _ in range(per_image * 10):
            side = int(rng.uniform(0.25, 0.5) * min(h, w))
            x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            if x + side < bx1 or x > bx2 or y + side < by1 or y > by2:
                patches.append(cv2.resize(image[y:y + side, x:x + side], (CACHE_CROP, CACHE_CROP),
                                          interpolation=cv2.INTER_AREA))
                if len(patches) % per_image == 0:
                    break
    return np.stack(patches) if patches else np.zeros((0, CACHE_CROP, CACHE_CROP, 3), np.uint8)


def hand_model_id() -> str:
    """Which MediaPipe bundle found the hands: a cache made with another one is rebuilt, never reused."""
    from stream_app.modes.fingerspell.hands import bundle_bytes

    return hashlib.sha256(bundle_bytes()).hexdigest()[:16]


def find_hands(paths: list[Path], log=print) -> dict[str, np.ndarray]:
    """The app's still-image hand finder (IMAGE mode with retries) over ``paths``: per image whether a hand was found,
    how many, the signing hand's landmarks (pixels), world landmarks, handedness and its ``CACHE_CROP`` crop."""
    finder = HandFinder(video=False)
    n = len(paths)
    out = {"found": np.zeros(n, bool), "n_hands": np.zeros(n, np.int8), "points": np.zeros((n, 21, 3), np.float32),
           "world": np.zeros((n, 21, 3), np.float32), "mirrored": np.zeros(n, bool),
           "crops": np.zeros((n, CACHE_CROP, CACHE_CROP, 3), np.uint8), "sizes": np.zeros((n, 2), np.int32)}
    start = time.time()
    for i, path in enumerate(paths):
        image = read_rgb(path)
        out["sizes"][i] = image.shape[1], image.shape[0]
        hands, _, _ = finder.find(image)
        out["n_hands"][i] = len(hands)
        hand = choose_signing_hand(hands, image.shape[1], image.shape[0])
        if hand is not None:
            out["found"][i] = True
            out["points"][i], out["world"][i], out["mirrored"][i] = hand.points, hand.world, hand.mirrored
            out["crops"][i] = square_crop(image, hand.points[:, :2], CACHE_CROP, CACHE_MARGIN, hand.mirrored)
        if (i + 1) % 250 == 0:
            log(f"hand cache: {i + 1}/{n} images, {out['found'][:i + 1].mean():.1%} found, {time.time() - start:.0f} s")
    finder.close()
    return out


def build_cache(force: bool = False, log=print) -> Path:
    """Run the hand finder over both data sets; write ``samples.npz`` and ``backgrounds.npy`` (idempotent)."""
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    target = out / "samples.npz"
    hand_model = hand_model_id()
    if target.is_file() and not force:
        with np.load(target) as z:
            if int(z["version"]) == CACHE_VERSION and "hand_model" in z.files and str(z["hand_model"]) == hand_model:
                return target
        log(f"hand cache: {target} was made with another hand model or cache version: rebuilding")
    items = roboflow_items() + massey_items()
    start = time.time()
    hands = find_hands([it.path for it in items], log=log)
    rf_train = [it for it in items if it.source == "rf" and it.split == "train"]
    backgrounds = _background_patches(rf_train, np.random.default_rng(0))
    np.save(out / "backgrounds.npy", backgrounds)
    np.savez(target, version=CACHE_VERSION, hand_model=hand_model, path=np.array([str(it.path) for it in items]),
             letter=np.array([it.letter for it in items]), source=np.array([it.source for it in items]),
             split=np.array([it.split for it in items]), group=np.array([it.group for it in items]),
             **hands)
    n, found = len(items), hands["found"]
    log(f"hand cache: wrote {target} ({n} images, {found.mean():.1%} with a hand) and {len(backgrounds)} backgrounds "
        f"in {time.time() - start:.0f} s")
    return target


def load_cache() -> dict[str, np.ndarray]:
    target = build_cache()
    with np.load(target) as z:
        data = {k: z[k] for k in z.files}
    bg = cache_dir() / "backgrounds.npy"
    data["backgrounds"] = np.load(bg) if bg.is_file() else np.zeros((0, CACHE_CROP, CACHE_CROP, 3), np.uint8)
    return data


def letter_index(letters) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(LETTERS)}
    return np.array([lookup[c] for c in letters], np.int64)


if __name__ == "__main__":  # python -m stream_app.modes.fingerspell.data [--force]
    import sys

    build_cache(force="--force" in sys.argv)
