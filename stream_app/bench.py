"""``bench``: time a mode per stage on real 640x480 frames and report medians and 90th percentiles."""

from __future__ import annotations

import time
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from stream_app.modes import get_mode
from stream_app.sources import IMAGE_EXTENSIONS, VideoSource, list_folder, parse_source, read_image
from stream_app.synthetic import moving_shapes

WIDTH, HEIGHT = 640, 480


def source_frames(input_path: str | Path, n: int) -> list[np.ndarray]:
    """Up to ``n`` frames from any INPUT: a video, an image, a folder of both, a camera or a stream."""
    spec = parse_source(input_path)
    files = list_folder(spec.target) if spec.kind == "folder" else [spec.target]
    frames: list[np.ndarray] = []
    for item in files:
        if spec.kind == "image" or Path(item).suffix.lower() in IMAGE_EXTENSIONS and spec.kind == "folder":
            frames.append(read_image(item))
        else:
            with VideoSource(spec if spec.kind != "folder" else str(item)) as video:
                frames.extend(frame for _, _, frame in islice(video.frames(), n - len(frames)))
        if len(frames) >= n:
            break
    return frames


def bench_frames(mode: str, n: int, input_path: str | Path | None = None) -> list[np.ndarray]:
    """``n`` frames at 640x480: from an INPUT (looped), from the mode's own generator, or moving shapes."""
    if input_path is not None:
        source = source_frames(input_path, n)
        frames = [source[i % len(source)] for i in range(n)]
    else:
        spec = get_mode(mode)
        generator = spec.bench_frames(n, WIDTH, HEIGHT) if spec.bench_frames else moving_shapes(n, WIDTH, HEIGHT)
        frames = list(generator)
    return [f if f.shape[:2] == (HEIGHT, WIDTH) else cv2.resize(f, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
            for f in frames]


def summarise(values: list[float]) -> dict:
    """Median (the typical frame), 90th percentile (the slow ones) and mean (what sets the sustained frame rate when
    a mode does the expensive work only on some frames)."""
    arr = np.asarray(values, dtype=float)
    return {"median": round(float(np.median(arr)), 2), "p90": round(float(np.percentile(arr, 90)), 2),
            "mean": round(float(arr.mean()), 2)}


def run_bench(mode: str, n: int = 100, input_path: str | Path | None = None, warmup: int = 5,
              settings: dict | None = None) -> dict:
    spec = get_mode(mode)
    frames = bench_frames(mode, n + warmup, input_path)
    processor = spec.create(**(settings or {}))
    for i, frame in enumerate(frames[:warmup]):
        processor.process(frame, i / 30.0)
    stages: dict[str, list[float]] = {}
    start = time.perf_counter()
    for i, frame in enumerate(frames[warmup:]):
        result = processor.process(frame, (warmup + i) / 30.0)
        for stage, ms in result.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    elapsed = time.perf_counter() - start
    processor.close()
    out = {
        "mode": mode,
        "frames": n,
        "fps": round(n / elapsed, 2),
        "settings": settings or {},
        "stages_ms": {"total": summarise(stages.pop("total"))} | {k: summarise(v) for k, v in stages.items()},
    }
    if spec.bench_extra:
        out.update(spec.bench_extra(frames[warmup:]))
    return out
