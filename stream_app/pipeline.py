"""Run a processor over a whole input and send each frame and result to sinks; shared by the CLI and the replay/image
pages. :func:`run` is the one loop; :func:`process_video`, :func:`process_images` and :func:`process_folder` choose
the frames and sinks."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from stream_app.annotators import annotate as default_annotate
from stream_app.errors import InputError
from stream_app.modes import Processor, UnknownModeError, get_mode
from stream_app.results import FrameResult
from stream_app.sinks import Annotate, CountsCsvSink, ImageSink, JsonlSink, Sink, VideoSink
from stream_app.sources import IMAGE_EXTENSIONS, SourceSpec, VideoSource, list_folder, read_image

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
    stopped: str = "end"  # or "max-frames", "duration", "interrupted" (Ctrl-C)
    failed_inputs: list[str] = field(default_factory=list)  # files of a folder that could not be (fully) read
    failed_messages: list[str] = field(default_factory=list)  # "name: problem" for each of them
    inputs: int = 1  # files processed (a folder's count)

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.last = result
        if result.error:
            self.errors += 1
        if result.counts:
            self.counted += 1
        if result.warning:
            self.warnings[result.warning] = self.warnings.get(result.warning, 0) + 1

    def merge(self, other: "RunSummary") -> None:
        self.frames += other.frames
        self.errors += other.errors
        self.counted += other.counted
        self.last = other.last or self.last
        for warning, n in other.warnings.items():
            self.warnings[warning] = self.warnings.get(warning, 0) + n


Frames = Iterable[tuple[int, float | None, np.ndarray]]  # (index, timestamp_s or None for stills, frame)


@contextmanager
def _ctrl_c_stops():
    """While a run is in progress, the first Ctrl-C (SIGINT) sets the returned event and the run stops after the
    frame in hand, so every output holds the same frames; a second Ctrl-C interrupts at once. Only in the main
    thread (the pages run files in other threads, where signals cannot be handled)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def run(frames: Frames, processor: Processor, sinks: Sequence[Sink], progress: Progress | None = None,
        expected: int = 0, each_alone: bool = False, max_frames: int | None = None,
        duration_s: float | None = None) -> RunSummary:
    """The one loop: each frame through the processor, then to every sink; the sinks are closed at the end, also
    when reading the input fails part-way. ``each_alone`` forgets the processor's state before every frame (still
    images). A frame the processor fails on is recorded in its result and the run goes on.

    It stops at the end of the frames, after ``max_frames`` frames, at the first frame ``duration_s`` seconds or more
    into the stream, or on Ctrl-C (``summary.stopped`` says which); the sinks are complete and closed in every case.
    """
    summary = RunSummary()
    try:
        with _ctrl_c_stops() as stop:
            for index, time_s, frame in frames:
                if duration_s is not None and time_s is not None and time_s >= duration_s:
                    summary.stopped = "duration"
                    break
                if each_alone:
                    processor.reset()
                result = processor.process_safely(frame, time_s)
                summary.add(result)
                for sink in sinks:
                    sink.write(frame, result)
                if progress:
                    progress(index + 1, expected)
                if max_frames is not None and summary.frames >= max_frames:
                    summary.stopped = "max-frames"
                    break
                if stop.is_set():
                    summary.stopped = "interrupted"
                    break
            if stop.is_set() and summary.stopped == "end":
                summary.stopped = "interrupted"  # Ctrl-C while the input was ending: still a Ctrl-C, not lost
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread
        summary.stopped = "interrupted"
    except InputError as exc:
        # the input broke part-way: the JSONL ends with a record that says so, and the caller learns what was done
        if summary.frames:
            broken = FrameResult(mode=processor.mode, error=str(exc), time_s=None)
            for sink in sinks:
                if isinstance(getattr(sink, "sink", sink), JsonlSink):
                    sink.write(None, broken)
        exc.partial = summary
        raise
    finally:
        for sink in sinks:
            sink.close()
    return summary


def process_video(source: str | Path | SourceSpec, processor: Processor, out: str | Path | None = None,
                  jsonl: str | Path | JsonlSink | None = None, progress: Progress | None = None,
                  annotate: Annotate | None = None, counts_csv: str | Path | None = None,
                  max_frames: int | None = None, duration_s: float | None = None) -> RunSummary:
    """Process the frames of a video file, a camera or a stream (see :class:`~stream_app.sources.VideoSource`);
    write the annotated MP4 (same frame rate), the JSONL and/or the counts CSV; stop as :func:`run` says.
    ``jsonl`` may be an open :class:`JsonlSink` shared with other inputs (it is then left open).

    Raises :class:`~stream_app.errors.InputError` for input that cannot be opened or read.
    """
    with VideoSource(source) as video:
        info = video.info
        sinks: list[Sink] = []
        if out:
            sinks.append(VideoSink(out, info.rate, annotate or annotate_for(processor)))
        if isinstance(jsonl, JsonlSink):
            sinks.append(_LeftOpen(jsonl))
        elif jsonl:
            sinks.append(JsonlSink(jsonl))
        if counts_csv:
            sinks.append(CountsCsvSink(counts_csv))
        expected = min(info.frames, max_frames) if info.frames and max_frames else (info.frames or max_frames or 0)
        try:
            summary = run(video.frames(), processor, sinks, progress, expected, max_frames=max_frames,
                          duration_s=duration_s)
        except InputError as exc:
            partial = getattr(exc, "partial", None)
            if partial is None or not partial.frames:
                raise
            renamed = [_mark_partial(Path(p)) for p in (out, jsonl, counts_csv)
                       if p and not isinstance(p, JsonlSink) and Path(p).exists()]
            raise _partial_error(exc, partial.frames, renamed) from None
    summary.fps = info.fps
    return summary


def _mark_partial(path: Path) -> Path:
    """``out.mp4`` -> ``out.partial.mp4``: an output of an input that broke part-way must not pass for a whole one."""
    target = path.with_name(f"{path.stem}.partial{path.suffix}")
    path.replace(target)
    return target


def _partial_error(exc: InputError, frames: int, renamed: list[Path]) -> InputError:
    message = f"{exc}; the outputs hold the {frames} frames before that"
    if renamed:
        message += " and are named " + ", ".join(p.name for p in renamed)
    new = InputError(message)
    new.partial = exc.partial
    return new


class _LeftOpen:
    """A sink passed on to :func:`run` without being closed by it (a JSONL shared by the files of a folder)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def write(self, frame: np.ndarray, result: FrameResult) -> None:
        self.sink.write(frame, result)

    def close(self) -> None:
        pass


def process_image(image: np.ndarray, processor: Processor,
                  annotate: Annotate | None = None) -> tuple[FrameResult, np.ndarray]:
    """One still image: its result and the annotated copy."""
    result = processor.process_safely(image)
    return result, (annotate or annotate_for(processor))(image, result)


def process_images(paths: list[Path], processor: Processor, out: str | Path | None = None,
                   jsonl: str | Path | JsonlSink | None = None, progress: Progress | None = None,
                   annotate: Annotate | None = None) -> RunSummary:
    """Each image on its own (state reset between them). ``out``: a file for one image, else a folder; ``jsonl`` as
    for :func:`process_video`."""
    sinks: list[Sink] = []
    if out:
        sinks.append(ImageSink(out, [Path(p).stem for p in paths], annotate or annotate_for(processor)))
    if isinstance(jsonl, JsonlSink):
        sinks.append(_LeftOpen(jsonl))
    elif jsonl:
        sinks.append(JsonlSink(jsonl))
    frames = ((index, None, read_image(path)) for index, path in enumerate(paths))
    return run(frames, processor, sinks, progress, len(paths), each_alone=True)


def process_folder(folder: str | Path, processor: Processor, out: str | Path | None = None,
                   jsonl: str | Path | None = None, progress: Progress | None = None,
                   on_failure: Callable[[str], None] | None = None) -> RunSummary:
    """Every video and image in a folder, each on its own (state reset between files). ``out`` is a folder that gets
    ``NAME_annotated.mp4`` / ``NAME_annotated.png``; ``jsonl`` one file whose records carry ``source`` (the file's
    path within the folder), frames numbered within each file. A file that cannot be read becomes one record with
    its ``error`` (and ``on_failure(message)``), and the other files go on."""
    folder = Path(folder)
    files = list_folder(folder)
    summary = RunSummary(inputs=len(files))
    lines = JsonlSink(jsonl) if jsonl else None
    try:
        for done, path in enumerate(files, start=1):
            name = str(path.relative_to(folder))
            if lines:
                lines.start_source(name)
            processor.reset()
            try:
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    part = process_images([path], processor, Path(out) / f"{path.stem}_annotated.png" if out else None,
                                          lines)
                else:
                    part = process_video(path, processor, Path(out) / f"{path.stem}_annotated.mp4" if out else None,
                                         lines)
            except InputError as exc:
                part = getattr(exc, "partial", None)
                if part is None or not part.frames:  # nothing of it was processed: one record says why
                    failed = FrameResult(mode=processor.mode, error=str(exc))
                    part = RunSummary()
                    part.add(failed)
                    if lines:
                        lines.write(None, failed)
                summary.failed_inputs.append(name)
                message = str(exc).replace(str(path), name)
                summary.failed_messages.append(message if message.startswith(name) else f"{name}: {message}")
                if on_failure:
                    on_failure(str(exc))
            summary.merge(part)
            if progress:
                progress(done, len(files))
            if part.stopped == "interrupted":
                summary.stopped = "interrupted"
                break
    finally:
        if lines:
            lines.close()
    return summary
