"""Command line: the same processors as the web app, no Streamlit. ``stream-app`` (installed by ``pip install .``)
and ``python -m stream_app`` are the same command.

    stream-app process INPUT --mode MODE [--out FILE] [--jsonl FILE] [--set NAME=VALUE ...]
                       [--max-frames N] [--duration S]
    stream-app bench --mode MODE [--input INPUT] [--frames N] [--set NAME=VALUE ...] [--live [--steps S]]
    stream-app batch INPUT... --mode MODE --out DIR [--engine local|ray] [--address ADDR] [--jobs N] [--threads T]
                     [--set NAME=VALUE ...] [--force]
    stream-app evaluate MODE ...     (options per mode)
    stream-app train MODE ...        (options per mode)
    stream-app modes [--json]
    stream-app --version

INPUT is a video file, an image, a folder of videos and images, a camera index (``0``), a capture device
(``/dev/video0``) or a network stream (``rtsp://``, ``http(s)://``, ...). Bad input exits with code 2 and one line on
stderr, never a traceback: a folder is processed to the end first (its bad files listed on that line), and a video
that breaks part-way leaves outputs renamed ``*.partial.*``. MediaPipe's and TFLite's own log lines (written by their
C++ code to file descriptor 2) are dropped unless ``-v``, which may come before or after the subcommand.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path

from stream_app import __version__
from stream_app.errors import FrameError, InputError, UsageError
from stream_app.modes import UnknownModeError, get_mode, mode_names
from stream_app.modes.base import setting_type

EXIT_BAD_INPUT = 2


TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _setting_type(f: dataclasses.Field) -> type:
    return setting_type(f) or str


def parse_setting(f: dataclasses.Field, raw: str):
    """One ``--set`` value, typed by its field and checked against its min, max and choices (:class:`UsageError`
    naming the setting otherwise)."""
    kind = _setting_type(f)
    meta = f.metadata or {}
    if kind is bool:
        if raw.lower() not in TRUE + FALSE:
            raise UsageError(f"--set {f.name}={raw}: {f.name} is true or false")
        value = raw.lower() in TRUE
    else:
        try:
            value = kind(raw)
        except ValueError:
            what = {int: "an integer", float: "a number"}.get(kind, f"a {kind.__name__}")
            raise UsageError(f"--set {f.name}={raw}: {f.name} must be {what}") from None
        if kind is float and not math.isfinite(value):
            raise UsageError(f"--set {f.name}={raw}: {f.name} must be a finite number")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise UsageError(f"--set {f.name}={raw}: {f.name} must be one of {', '.join(map(str, choices))}")
    if meta.get("min") is not None and value < meta["min"]:
        raise UsageError(f"--set {f.name}={raw}: {f.name} must be at least {meta['min']}")
    if meta.get("max") is not None and value > meta["max"]:
        raise UsageError(f"--set {f.name}={raw}: {f.name} must be at most {meta['max']}")
    return value


def parse_settings(mode: str, pairs: list[str]) -> dict:
    """``--set name=value`` pairs, typed by the mode's settings dataclass and checked against its limits."""
    fields = {f.name: f for f in get_mode(mode).settings_fields()}
    out = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or name not in fields:
            raise UsageError(f"--set {pair!r}: expected NAME=VALUE with NAME one of {', '.join(fields) or '(none)'}")
        out[name] = parse_setting(fields[name], raw)
    return out


def settings_json(spec) -> list[dict]:
    """A mode's settings as ``modes --json`` prints them."""
    out = []
    for f in spec.settings_fields():
        meta = f.metadata or {}
        out.append({"name": f.name, "type": _setting_type(f).__name__,
                    "default": None if f.default is dataclasses.MISSING else f.default, "help": meta.get("help"),
                    "min": meta.get("min"), "max": meta.get("max"), "step": meta.get("step"),
                    "choices": list(meta["choices"]) if meta.get("choices") else None})
    return out


def _progress_bar(desc: str, unit: str = "frame"):
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return bar, update


VIDEO_OUT = (".mp4", ".mov", ".mkv")
IMAGE_OUT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def check_out(kind: str, out: str | None) -> None:
    """``--out`` must name what the input gives: a video file, an image file, or a folder for a folder."""
    if not out:
        return
    suffix = Path(out).suffix.lower()
    if kind == "folder":
        if suffix:
            raise UsageError(f"--out {out}: for a folder, --out is a folder (the annotated files go in it)")
    elif kind == "image":
        if suffix not in IMAGE_OUT:
            raise UsageError(f"--out {out}: an annotated image is written as {', '.join(IMAGE_OUT)}")
    elif suffix not in VIDEO_OUT:
        raise UsageError(f"--out {out}: an annotated video is written as {', '.join(VIDEO_OUT)}")


def cmd_process(args: argparse.Namespace) -> int:
    from stream_app.pipeline import process_folder, process_images, process_video
    from stream_app.sources import VideoSource, parse_source

    _check_limits(args)
    spec = get_mode(args.mode)
    settings = parse_settings(args.mode, args.set)
    source = parse_source(args.input)
    check_out(source.kind, args.out)
    if source.kind not in ("image", "folder"):
        VideoSource(source).close()  # fail on input that cannot be opened before a progress bar is drawn
    processor = spec.create(**settings)
    label = Path(args.input).name if source.kind in ("video", "image", "folder") else source.label
    bar, update = _progress_bar(f"{args.mode} {label}", "file" if source.kind == "folder" else "frame")
    try:
        if source.kind == "image":
            summary = process_images([Path(source.target)], processor, args.out, args.jsonl, update)
        elif source.kind == "folder":
            summary = process_folder(source.target, processor, args.out, args.jsonl, update,
                                     on_failure=lambda message: bar.write(f"skipped: {message}", file=sys.stderr))
        else:
            if source.live and args.max_frames is None and args.duration is None:
                bar.write(f"{source.label}: a live source; Ctrl-C stops it (outputs are kept)", file=sys.stderr)
            summary = process_video(source, processor, args.out, args.jsonl, update, max_frames=args.max_frames,
                                    duration_s=args.duration)
    finally:
        bar.close()
        processor.close()
    report = {"input": str(args.input), "mode": args.mode, "frames": summary.frames, "errors": summary.errors,
              "warnings": summary.warnings, "stopped": summary.stopped}
    if summary.failed_inputs:
        report["failed_inputs"] = summary.failed_inputs
    if summary.last is not None:
        report.update(text=summary.last.caption, counts=summary.last.counts)
    print(json.dumps(report))
    if summary.stopped == "interrupted":
        return 130
    if summary.failed_inputs:  # the whole folder was processed; now say which files were not
        raise InputError(f"{args.input}: {len(summary.failed_inputs)} of {summary.inputs} files could not be "
                         f"processed: " + "; ".join(summary.failed_messages))
    return 0


def _check_limits(args: argparse.Namespace) -> None:
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    if args.duration is not None and not args.duration > 0:
        raise UsageError("--duration must be more than 0 seconds")


def cmd_bench(args: argparse.Namespace) -> int:
    from stream_app.bench import run_bench

    if args.frames < 1:
        raise UsageError("--frames must be at least 1")
    pipelined = None if args.steps == "auto" else args.steps == "two"
    print(json.dumps(run_bench(args.mode, args.frames, args.input, settings=parse_settings(args.mode, args.set),
                               live=args.live, pipelined=pipelined)))
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from stream_app.batch import run_batch

    settings = parse_settings(args.mode, args.set)
    report = run_batch(args.inputs, args.mode, args.out, settings, engine=args.engine, jobs=args.jobs,
                       threads=args.threads, address=args.address, force=args.force)
    print(json.dumps(report))
    if report["failed"]:
        print(f"batch: {report['failed']} of {report['videos']} videos failed; see {report['summary']}",
              file=sys.stderr)
        return 1
    return 0


def cmd_modes(args: argparse.Namespace) -> int:
    if args.json:
        modes = []
        for name in mode_names():
            spec = get_mode(name)
            modes.append({"name": name, "title": spec.title, "description": spec.description, "notice": spec.notice,
                          "settings": settings_json(spec)})
        print(json.dumps(modes, indent=1))
        return 0
    for name in mode_names():
        spec = get_mode(name)
        settings = ", ".join(f"{f.name}={f.default!r}" for f in spec.settings_fields())
        print(f"{name}: {spec.description}\n    settings: {settings}")
    return 0


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose every subcommand also takes ``-v`` (after the subcommand as well as before)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # SUPPRESS: a subcommand without -v leaves the value set before it (or the default) alone
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="log details (and tracebacks, and MediaPipe's own log lines) to stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stream-app", description=__doc__.split("\n")[0])
    parser.set_defaults(verbose=False)
    parser.add_argument("--version", action="version", version=f"stream-app {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    inputs = ("a video, an image, a folder of videos and images, a camera index (0), a capture device (/dev/video0) "
              "or a stream (rtsp://, http(s)://)")

    p = sub.add_parser("process", help=f"annotate {inputs}")
    p.add_argument("input", help=inputs)
    p.add_argument("--mode", required=True, choices=mode_names())
    p.add_argument("--out", help="annotated MP4 for a video, camera or stream; PNG file for an image; a folder for a "
                                 "folder")
    p.add_argument("--jsonl", help="one JSON object per frame")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a mode setting (see `modes`)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (a camera or stream runs until "
                                                               "Ctrl-C otherwise)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of video")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("bench", help="time a mode per stage at 640x480; prints one JSON object")
    p.add_argument("--mode", required=True, choices=mode_names())
    p.add_argument("--input", help=f"where frames come from: {inputs} (default: frames the mode makes)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a mode setting (see `modes`)")
    p.add_argument("--live", action="store_true",
                   help="also feed the frames at 30 fps through the live path (the page's worker); adds a 'live' "
                        "block: shown_fps, fresh_per_s, overlay_age_ms")
    p.add_argument("--steps", choices=("auto", "one", "two"), default="auto",
                   help="--live: run a two-step mode (fingerspell) as a two-thread pipeline (two), in one thread "
                        "(one), or as the app does (auto: two where the mode has two steps)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("batch", help="replay many videos through a mode, split by video over workers (local or Ray)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders (searched for videos) or globs")
    p.add_argument("--mode", required=True, choices=mode_names())
    p.add_argument("--out", required=True, metavar="DIR", help="per video NAME.mp4, NAME.jsonl, NAME_counts.csv; "
                                                               "summary.csv")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: a pool of processes here; ray: Ray actors (a Ray started for the run, or --address)")
    p.add_argument("--address", help="the Ray cluster to use (e.g. 192.168.1.10:6379); with --engine ray")
    p.add_argument("--jobs", type=int, help="workers (default: one per core here, at most one per video)")
    p.add_argument("--threads", type=int, help="threads per worker (default: the cores here shared by the workers)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a mode setting (see `modes`)")
    p.add_argument("--force", action="store_true", help="redo videos whose outputs are already complete")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("modes", help="list the modes and their settings")
    p.add_argument("--json", action="store_true", help="as JSON: name, title, description, settings with their "
                                                       "type, default, min, max, step and choices")
    p.set_defaults(func=cmd_modes)

    for verb in ("evaluate", "train"):
        verb_parser = sub.add_parser(verb, help=f"{verb} a mode's model (options per mode)")
        verb_sub = verb_parser.add_subparsers(dest="mode", required=True)
        for name in mode_names():
            spec = get_mode(name)
            add_args, run = getattr(spec, f"add_{verb}_args"), getattr(spec, verb)
            if run is None:
                continue
            mode_parser = verb_sub.add_parser(name, help=f"{verb} {spec.title}")
            if add_args:
                add_args(mode_parser)
            mode_parser.set_defaults(func=lambda a, run=run: run(a))
    return parser


@contextlib.contextmanager
def native_logs_dropped(drop: bool = True):
    """While inside, what C++ code writes to file descriptor 2 (MediaPipe's absl log, TFLite's "INFO: Created
    TensorFlow Lite XNNPACK delegate", glog lines) goes to /dev/null, while Python's ``sys.stderr`` (progress bars,
    the error line, ``logging``) still reaches the real stderr through a copy of the descriptor. Neither MediaPipe
    1.2 nor TFLite has a setting for those lines (GLOG_minloglevel and TF_CPP_MIN_LOG_LEVEL were tried). Restored on
    the way out."""
    if not drop:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (an embedding host): nothing to do
        yield
        return
    try:
        on_fd_2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # sys.stderr is not a file (a test's capture): it stays as it is
        on_fd_2 = False
    python_stderr = sys.stderr
    if on_fd_2:
        sys.stderr = open(os.dup(saved), "w", buffering=1, errors="backslashreplace",
                          encoding=getattr(python_stderr, "encoding", None) or "utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if on_fd_2:
            sys.stderr.close()
            sys.stderr = python_stderr


@contextlib.contextmanager
def _log_to_stderr(verbose: bool):
    """Python's logging to (the current) ``sys.stderr`` for the run: DEBUG with ``-v``, else WARNING; removed after
    (so that ``main`` can run many times in one process, as the tests do)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with native_logs_dropped(not args.verbose), _log_to_stderr(args.verbose):
        try:
            return int(args.func(args) or 0)
        except (InputError, FrameError, UsageError, UnknownModeError, FileNotFoundError) as exc:
            if args.verbose:
                logging.exception("bad input")
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, whatever the message holds
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # noqa: BLE001 - the last guard: one line naming what was being done, not a traceback
            if args.verbose:
                logging.exception("unexpected error")
            what = getattr(args, "input", None) or getattr(args, "command", "stream-app")
            print(f"error: {what}: {type(exc).__name__}: {' '.join(str(exc).split())} (run with -v for details)",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
