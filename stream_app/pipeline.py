"""Run a processor over a whole input and send each result to sinks; shared by the CLI and the replay/image pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from stream_app.annotators import annotate as default_annotate
from stream_app.modes import Processor, UnknownModeError, get_mode
from stream_app.results import FrameResult
from stream_app.sinks import JsonlSink, VideoSink, write_image
from stream_app.sources import iter_video, list_images, probe_video, read_image

Progress = Callable[[int, int], None]  # (frames done, frames expected or 0)
Annotate = Callable[[np.ndarray, FrameResult], np.ndarray]


def annotate_for(processor: Processor) -> Annotate:
    """The annotators the processor's mode names in its spec (the shared set for a mode outside the registry)."""
    try:
        return get_mode(processor.mode).annotate
    except UnknownModeError:
        return default_annotate


@dataclass
class RunSummary:
    frames: int = 0
    fps: float = 0.0
    errors: int = 0
    warnings: dict[str, int] = field(default_factory=dict)
    last: FrameResult | None = None

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.last = result
        if result.error:
            self.errors += 1
        if result.warning:
            self.warnings[result.warning] = self.warnings.get(result.warning, 0) + 1


def process_video(path: str | Path, processor: Processor, out: str | Path | None = None,
                  jsonl: str | Path | None = None, progress: Progress | None = None,
                  annotate: Annotate | None = None) -> RunSummary:
    """Process every frame of a video; write the annotated MP4 (same frame rate) and/or the JSONL.

    Raises :class:`~stream_app.sources.InputError` for unreadable input; a frame the processor fails on is recorded
    as an error in its result and the run goes on.
    """
    info = probe_video(path)
    annotate = annotate or annotate_for(processor)
    summary = RunSummary(fps=info.fps)
    video = VideoSink(out, info.rate) if out else None
    lines = JsonlSink(jsonl) if jsonl else None
    try:
        for index, time_s, frame in iter_video(path):
            result = processor.process_safely(frame, time_s)
            summary.add(result)
            if video:
                video.write(annotate(frame, result))
            if lines:
                lines.write(result, index, time_s)
            if progress:
                progress(index + 1, info.frames)
    finally:
        if video:
            video.close()
        if lines:
            lines.close()
    return summary


def process_image(image: np.ndarray, processor: Processor,
                  annotate: Annotate | None = None) -> tuple[FrameResult, np.ndarray]:
    """One still image: its result and the annotated copy."""
    result = processor.process_safely(image)
    return result, (annotate or annotate_for(processor))(image, result)


def process_images(paths: list[Path], processor: Processor, out: str | Path | None = None,
                   jsonl: str | Path | None = None, progress: Progress | None = None,
                   annotate: Annotate | None = None) -> RunSummary:
    """Each image on its own (state reset between them). ``out``: a file for one image, else a folder."""
    summary = RunSummary()
    annotate = annotate or annotate_for(processor)
    lines = JsonlSink(jsonl) if jsonl else None
    try:
        for index, path in enumerate(paths):
            processor.reset()
            result, annotated = process_image(read_image(path), processor, annotate)
            summary.add(result)
            if out:
                target = Path(out)
                if len(paths) > 1 or target.suffix == "" or target.is_dir():
                    target = target / f"{Path(path).stem}_annotated.png"
                write_image(target, annotated)
            if lines:
                lines.write(result, index, 0.0)
            if progress:
                progress(index + 1, len(paths))
    finally:
        if lines:
            lines.close()
    return summary


def images_in(path: str | Path) -> list[Path]:
    path = Path(path)
    return list_images(path) if path.is_dir() else [path]
