"""``bench --mode leukocyte`` helpers: real smear frames when the shared BCCD data is present (read at run time,
never stored), generated smear-like frames otherwise; and the ResNet-50 FPN Faster R-CNN timed in the same run."""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch

from stream_app.config import data_dir

_SOURCE = {"frames": "generated"}


def synthetic_smear(width: int = 640, height: int = 480, seed: int = 0, n_wbc: int = 1) -> np.ndarray:
    """A smear-like RGB frame: pale background, pink red cells, purple-nucleus white cells (not a BCCD image)."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), (225, 215, 200), np.uint8)
    r = max(6, min(width, height) // 14)
    for _ in range(int(width * height / (r * r * 6))):
        c = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(img, c, int(r * rng.uniform(0.8, 1.2)), (200, 120, 130), -1, cv2.LINE_AA)
        cv2.circle(img, c, int(r * 0.4), (215, 160, 160), -1, cv2.LINE_AA)
    for _ in range(n_wbc):
        c = (int(rng.integers(r * 3, width - r * 3)), int(rng.integers(r * 3, height - r * 3)))
        cv2.circle(img, c, int(r * 1.8), (210, 190, 215), -1, cv2.LINE_AA)
        for _ in range(3):
            o = (c[0] + int(rng.integers(-r, r)), c[1] + int(rng.integers(-r, r)))
            cv2.circle(img, o, int(r * 0.7), (110, 60, 160), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 1.2)


PAN_PX = 5  # slide movement per frame: a sixth of a 640 px field a second at 30 fps, a slow, steady pan
PAN_FIELDS = 4  # fields side by side in the panned slide


def bench_frames(n: int, width: int, height: int):
    """A camera over a moving slide: a window of ``width`` x ``height`` panned ``PAN_PX`` a frame, back and forth,
    along one slide made of :data:`PAN_FIELDS` BCCD test-split fields side by side when the shared data is present
    (read at run time, never stored), else of generated smear-like fields. Consecutive frames overlap, so the
    tracker follows the slide as in use (unrelated fields in a row would each be a jump to an unseen place)."""
    from stream_app.modes.leukocyte.data import load_split

    root = data_dir() / "bccd"
    try:
        samples = load_split(root, "test")[:PAN_FIELDS]
        _SOURCE["frames"] = (f"BCCD test split ({root}), read at run time: {PAN_FIELDS} fields side by side, panned "
                             f"{PAN_PX} px a frame")
    except Exception:  # noqa: BLE001 - no shared data: generated frames, said in the output
        samples = []
        _SOURCE["frames"] = f"generated smear-like frames (BCCD not found), panned {PAN_PX} px a frame"
    fields = [s.load() for s in samples] or [synthetic_smear(width, height, seed=i) for i in range(PAN_FIELDS)]
    slide = np.hstack([f if f.shape[:2] == (height, width) else
                       cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in fields])
    span = slide.shape[1] - width
    for i in range(n):
        x = (i * PAN_PX) % (2 * span)
        x = x if x <= span else 2 * span - x
        yield np.ascontiguousarray(slide[:, x:x + width])


def _median_ms(fn, frames, warmup: int = 1) -> float:
    for f in frames[:warmup]:
        fn(f)
    times = []
    for f in frames[warmup:]:
        t0 = time.perf_counter()
        fn(f)
        times.append((time.perf_counter() - t0) * 1000)
    return round(float(np.median(times)), 1)


TARGETS = {"detect_ms": 60.0, "live_fresh_per_s": 10.0}  # live: `bench --mode leukocyte --live` (fresh_per_s)


def wide_field_timing(frames: list[np.ndarray]) -> dict:
    """What a wider field costs, one frame each (scale estimate + every tile): 640x480 frames made of K x K of the
    bench frames (K = 2, 3, 4), and a 416x416 phone-photo proxy (fields at 1/7 in a circular eyepiece view), all with
    the automatic cell scale."""
    from stream_app.modes.leukocyte.detector import mode_detector
    from stream_app.modes.leukocyte.scale import detect_auto
    from stream_app.modes.leukocyte.zoomout import mosaic, phone_photo

    detector = mode_detector("clahe_lab")
    empty = [np.zeros((0, 4), np.float32)] * 16
    labels = [np.zeros(0, np.int64)] * 16
    cases = {f"{k}x{k}": mosaic([frames[i % len(frames)] for i in range(k * k)], empty[:k * k], labels[:k * k], k)[0]
             for k in (2, 3, 4)}
    cases["phone_416_at_1/7"] = phone_photo(frames, empty, labels, np.random.default_rng(0), 1 / 7)[0]
    out = {}
    for name, frame in cases.items():
        t0 = time.perf_counter()
        _, timings, estimate = detect_auto(detector, frame)
        total = (time.perf_counter() - t0) * 1000
        out[name] = {"rbc_px": None if estimate.rbc_px is None else round(estimate.rbc_px, 1),
                     "tiles": int(timings["tiles"]), "estimate_ms": round(timings["scale"], 1),
                     "detect_ms": round(total - timings["scale"], 1), "total_ms": round(total, 1),
                     "fresh_detections_per_s": round(1000 / max(total - timings["scale"], 1e-3), 2)}
    return out


def reference_timing(frames: list[np.ndarray], n: int = 6) -> dict:
    """Time the shipped default detector (resize + preprocessing + network) and a ResNet-50 FPN Faster R-CNN (torch,
    random init: the cost is the same; at BCCD's native 480 lines and at our input size) on the same frames in this
    run, and what wider fields cost (:func:`wide_field_timing`). (``bench --live`` feeds the frames through the live
    path: ``live.fresh_per_s`` against ``targets.live_fresh_per_s``.)"""
    from stream_app.modes.leukocyte.detector import mode_detector
    from stream_app.modes.leukocyte.model import DetectorConfig, build_detector

    torch.set_num_threads(2)
    frames = list(frames[: n + 1])
    detector = mode_detector("clahe_lab")  # the default model
    tensors = {}

    def ours(frame):
        detector(frame)

    out = {"frames_source": _SOURCE["frames"], "detector_ms": _median_ms(ours, frames),
           "detector": f"{detector.cfg.backbone} input {detector.cfg.input} min_size {detector.cfg.min_size} "
                       f"({type(detector).__name__}, incl. resize + CLAHE/CIELAB)"}
    out["wide_field"] = wide_field_timing(frames)
    out["targets"] = TARGETS
    for min_size in (480, detector.cfg.min_size):
        cfg = DetectorConfig(backbone="resnet50_fpn", min_size=min_size, max_size=max(640, min_size * 4 // 3))
        ref = build_detector(cfg, pretrained_backbone=False).eval()

        def run(frame, ref=ref):
            t = tensors.setdefault(id(frame), torch.from_numpy(frame).permute(2, 0, 1).float().div_(255.0))
            with torch.inference_mode():
                ref([t])

        ms = _median_ms(run, frames[:4])
        out[f"resnet50_fpn_min{min_size}_ms"] = ms
        out[f"speedup_vs_resnet50_fpn_min{min_size}"] = round(ms / max(out["detector_ms"], 1e-3), 1)
    return out
