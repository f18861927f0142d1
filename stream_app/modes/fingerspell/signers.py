"""Data with signer identity, for choosing and measuring models on people who are not in training.

- Massey: 5 hands (``massey:handN`` in the hand-finder cache, :mod:`stream_app.modes.fingerspell.data`).
- ``asl_landmarks``: 1022 rows of 21 MediaPipe landmarks from ONE webcam collector (no images; a sixth signer, for
  landmark models only). How it was made (its repository's ``data_collector.py``): legacy ``mediapipe.solutions.Hands``
  on a horizontally FLIPPED 640x480-class webcam frame, each landmark minus the wrist, x and y as fractions of the
  image width and height, z as MediaPipe gives it; every row's hand label is "Right" on the flipped image (a right
  hand). To bring a row to this project's convention (pixels, z on the x scale, a right hand unmirrored) x is
  scaled by 4/3 relative to y (a 4:3 frame), the x axis is mirrored, and z is scaled by ``WEBCAM_Z``. Both scales
  were fitted WITHOUT labels: the x and z scales that make the palm's rigid bone lengths most constant over all rows
  (x: 1.35, the 4:3 frame; z: 2.25 relative to y), with z matched to the same fit on our own cache (1.25 there), so
  ``WEBCAM_Z = 2.25 / 1.25 = 1.8``.
- ``sign_language_digits``: 218 students, 100x100 photos, about one per student per digit, no person ids. Digits
  0, 2, 6, 9 have the handshapes of O, V, W, F: a many-signer TEST of those four letters (never trained on). Its own
  hand-finder cache (``digits.npz``) is made with the app's still-image path (retries with padding).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from stream_app.config import data_dir

LANDMARKS_CSV = Path("asl_landmarks") / "data" / "asl_landmarks.csv"
DIGITS_DIR = Path("sign_language_digits") / "Dataset"
DIGIT_LETTERS = {"0": "O", "2": "V", "6": "W", "9": "F"}
WEBCAM_X = 4.0 / 3.0
WEBCAM_Z = 1.8
WEBCAM = "webcam"


def webcam_landmarks(root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``asl_landmarks`` rows as (letters (N,), points (N, 21, 3)) in this project's convention, already
    mirrored to the right hand (their ``mirror`` flag is False)."""
    path = (root or data_dir()) / LANDMARKS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (set STREAM_APP_DATA to the shared data folder)")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], [r for r in rows[1:] if r]
    if len(header) != 65:
        raise ValueError(f"{path}: expected 65 columns (label, hand_label, 21 x/y/z), got {len(header)}")
    letters = np.array([r[0].upper() for r in rows])
    points = np.array([[float(v) for v in r[2:]] for r in rows], np.float64).reshape(-1, 21, 3)
    points = points * np.array([-WEBCAM_X, 1.0, WEBCAM_Z])  # 4:3 pixels, mirrored (a flipped frame), z scale
    return letters, points


def digit_items(root: Path | None = None) -> list[tuple[Path, str]]:
    """(photo, letter) for the digits that are letters (0 -> O, 2 -> V, 6 -> W, 9 -> F)."""
    base = (root or data_dir()) / DIGITS_DIR
    items = []
    for digit, letter in DIGIT_LETTERS.items():
        items += [(p, letter) for p in sorted((base / digit).glob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return items


def digits_cache(force: bool = False, log=print) -> dict[str, np.ndarray]:
    """The digits set through the app's still-image hand finder, cached beside the main cache (never in git)."""
    from stream_app.modes.fingerspell.data import cache_dir, find_hands, hand_model_id

    target = cache_dir() / "digits.npz"
    hand_model = hand_model_id()
    if target.is_file() and not force:
        with np.load(target) as z:
            if str(z["hand_model"]) == hand_model:
                return {k: z[k] for k in z.files}
    items = digit_items()
    if not items:
        raise FileNotFoundError(f"no digit photos under {data_dir() / DIGITS_DIR}")
    hands = find_hands([p for p, _ in items], log=log)
    data = dict(hands, path=np.array([str(p) for p, _ in items]), letter=np.array([c for _, c in items]),
                hand_model=np.array(hand_model))
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, **data)
    log(f"digits cache: wrote {target} ({len(items)} photos, {hands['found'].mean():.1%} with a hand)")
    return data
