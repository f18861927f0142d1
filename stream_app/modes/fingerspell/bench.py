"""``bench --mode fingerspell`` helpers: frames with a real hand, and what the output should say about them."""

from __future__ import annotations

import numpy as np

_BENCH_SOURCE = {"frames": "not made yet"}


def bench_frames(n: int, width: int, height: int):
    """Frames with a real hand: Roboflow test photos from the shared data (read at bench time, never committed),
    each held for 15 frames on a 640x480 canvas as a signer holds a letter; generated frames without a hand when the
    data is absent (then the numbers time the no-hand path; the output says which)."""
    import cv2

    from stream_app.config import data_dir

    folder = data_dir() / "asl_roboflow_letters" / "datasets" / "american_sign_language" / "test" / "images"
    paths = sorted(folder.glob("*.jpg"))[:: 3] if folder.is_dir() else []
    if not paths:
        from stream_app.synthetic import moving_shapes

        _BENCH_SOURCE["frames"] = "generated moving shapes (no hand: shared data absent)"
        yield from moving_shapes(n, width, height)
        return
    _BENCH_SOURCE["frames"] = f"Roboflow test photos from {folder} (each held 15 frames, letterboxed to {width}x{height})"
    canvases = []
    for path in paths:
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        s = min(width / img.shape[1], height / img.shape[0])
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)))
        canvas = np.full((height, width, 3), 90, np.uint8)
        y, x = (height - img.shape[0]) // 2, (width - img.shape[1]) // 2
        canvas[y:y + img.shape[0], x:x + img.shape[1]] = img
        canvases.append(canvas)
    for i in range(n):
        yield canvases[(i // 15) % len(canvases)]


def bench_extra(frames) -> dict:
    from stream_app.modes.fingerspell.models import shared_classifiers

    out = {"bench_frames": _BENCH_SOURCE["frames"]}
    try:
        out["shipped_model"] = shared_classifiers().shipped
    except FileNotFoundError:
        pass
    return out
