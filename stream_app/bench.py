"""``bench``: time a mode per stage on real 640x480 frames and report medians and 90th percentiles; with ``live``,
also feed the frames at a camera's rate through the live path (:mod:`stream_app.live`) and report what a viewer
would see: frames shown per second, fresh results per second and how old the overlay is."""

from __future__ import annotations

import time
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from stream_app.live import LiveStream
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
              settings: dict | None = None, live: bool = False, pipelined: bool | None = None) -> dict:
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
    if live:
        out["live"] = run_live(mode, frames[warmup:], settings, pipelined=pipelined)
    return out


def run_live(mode: str, frames: list[np.ndarray], settings: dict | None = None, fps: float = 30.0,
             pipelined: bool | None = None, first_result_s: float = 120.0) -> dict:
    """Feed ``frames`` at ``fps`` (camera time i / fps, paced by the wall clock) through :class:`LiveStream`, as the
    live page's callback does: each frame is handed to the worker and comes back with the latest result drawn on it.

    ``shown_fps``: frames that came back per second (the camera's rate when the callback keeps up);
    ``fresh_per_s``: results the processor made per second (each on the newest frame of its time);
    ``overlay_age_ms``: for each shown frame, its camera time minus that of the frame its overlay came from;
    ``callback_ms``: the callback's own time (submit + draw). A warm-up on the first frame until the first result
    (models loaded, first hand found) comes before the clock starts."""
    spec = get_mode(mode)
    processor = spec.create(live=True, **(settings or {}))
    stream = LiveStream(processor, spec.annotate, pipelined=pipelined, name=f"bench-{mode}",
                        follower=spec.follower() if spec.follower else None)
    try:
        deadline = time.perf_counter() + first_result_s
        t = 0.0
        while stream.worker.latest() is None and time.perf_counter() < deadline:  # warm-up, at the camera's rate
            stream.show(frames[0], t)
            t += 1.0 / fps
            time.sleep(1.0 / fps)
        before = stream.worker.stats()
        ages, callback_ms, shown = [], [], 0
        start = time.perf_counter()
        for i, frame in enumerate(frames):
            due = start + i / fps
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            result = stream.show(frame, t + i / fps)
            callback_ms.append((time.perf_counter() - t0) * 1000.0)
            shown += 1
            if result.age_ms is not None:
                ages.append(result.age_ms)
        elapsed = max(time.perf_counter() - start, len(frames) / fps)  # the last frame is shown for 1/fps too
        after = stream.worker.stats()
    finally:
        stream.close()
        processor.close()
    fresh = after.processed - before.processed
    return {
        "camera_fps": fps,
        "seconds": round(elapsed, 2),
        "shown_fps": round(shown / elapsed, 2),
        "fresh_per_s": round(fresh / elapsed, 2),
        "overlay_age_ms": ({k: v for k, v in summarise(ages).items() if k != "mean"} if ages
                           else {"median": None, "p90": None}),
        "callback_ms": summarise(callback_ms),
        "dropped_by_worker": after.dropped - before.dropped,
        "errors": after.errors - before.errors,
        "pipelined": stream.worker.pipelined,
    }
