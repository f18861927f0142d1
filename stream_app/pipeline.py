"""Run a processor over a whole input and send each frame and result to sinks; shared by the CLI and the replay/image
pages. :func:`run` is the one loop; :func:`process_video` and :func:`process_images` choose the frames and sinks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from stream_app.annotators import annotate as default_annotate
from stream_app.modes import Processor, UnknownModeError, get_mode
from stream_app.results import FrameResult
from stream_app.sinks import Annotate, CountsCsvSink, ImageSink, JsonlSink, Sink, VideoSink
from stream_app.sources import iter_video, list_images, probe_video, read_image

Progress = Callable[[int, int], None]  # (frames done, frames expected or 0)


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
    counted: int = 0  # frames whose result counts something (rows of the counts CSV)
    warnings: dict[str, int] = field(default_factory=dict)
    last: FrameResult | None = None

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.last = result
        if result.error:
            self.errors += 1
        if result.counts:
            self.counted += 1
        if result.warning:
            self.warnings[result.warning] = self.warnings.get(result.warning, 0) + 1


Frames = Iterable[tuple[int, float | None, np.ndarray]]  # (index, timestamp_s or None for stills, frame)


def run(frames: Frames, processor: Processor, sinks: Sequence[Sink], progress: Progress | None = None,
        expected: int = 0, each_alone: bool = False) -> RunSummary:
    """The one loop: each frame through the processor, then to every sink; the sinks are closed at the end, also
    when reading the input fails part-way. ``each_alone`` forgets the processor's state before every frame (still
    images). A frame the processor fails on is recorded in its result and the run goes on."""
    summary = RunSummary()
    try:
        for index, time_s, frame in frames:
            if each_alone:
                processor.reset()
            result = processor.process_safely(frame, time_s)
            summary.add(result)
            for sink in sinks:
                sink.write(frame, result)
            if progress:
                progress(index + 1, expected)
    finally:
        for sink in sinks:
            sink.close()
    return summary


def process_video(path: str | Path, processor: Processor, out: str | Path | None = None,
                  jsonl: str | Path | None = None, progress: Progress | None = None,
                  annotate: Annotate | None = None, counts_csv: str | Path | None = None) -> RunSummary:
    """Process every frame of a video; write the annotated MP4 (same frame rate), the JSONL and/or the counts CSV.

    Raises :class:`~stream_app.errors.InputError` for unreadable input.
    """
    info = probe_video(path)
    sinks: list[Sink] = []
    if out:
        sinks.append(VideoSink(out, info.rate, annotate or annotate_for(processor)))
    if jsonl:
        sinks.append(JsonlSink(jsonl))
    if counts_csv:
        sinks.append(CountsCsvSink(counts_csv))
    summary = run(iter_video(path), processor, sinks, progress, info.frames)
    summary.fps = info.fps
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
    sinks: list[Sink] = []
    if out:
        sinks.append(ImageSink(out, [Path(p).stem for p in paths], annotate or annotate_for(processor)))
    if jsonl:
        sinks.append(JsonlSink(jsonl))
    frames = ((index, None, read_image(path)) for index, path in enumerate(paths))
    return run(frames, processor, sinks, progress, len(paths), each_alone=True)


def images_in(path: str | Path) -> list[Path]:
    path = Path(path)
    return list_images(path) if path.is_dir() else [path]
