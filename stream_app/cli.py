"""Command line: the same processors as the web app, no Streamlit.

    python -m stream_app process INPUT --mode MODE [--out FILE] [--jsonl FILE] [--set NAME=VALUE ...]
    python -m stream_app bench --mode MODE [--input FILE] [--frames N] [--set NAME=VALUE ...] [--live]
    python -m stream_app evaluate MODE ...     (options per mode)
    python -m stream_app train MODE ...        (options per mode)
    python -m stream_app modes

Bad input exits with code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from stream_app.errors import FrameError, InputError, UsageError
from stream_app.modes import UnknownModeError, get_mode, mode_names

EXIT_BAD_INPUT = 2


def parse_settings(mode: str, pairs: list[str]) -> dict:
    """``--set name=value`` pairs, typed by the mode's settings dataclass."""
    fields = {f.name: f for f in get_mode(mode).settings_fields()}
    out = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or name not in fields:
            raise UsageError(f"--set {pair!r}: expected NAME=VALUE with NAME one of {', '.join(fields) or '(none)'}")
        kind = type(fields[name].default)
        try:
            out[name] = raw.lower() in ("1", "true", "yes", "on") if kind is bool else kind(raw)
        except ValueError:
            raise UsageError(f"--set {pair!r}: {raw!r} is not a valid {kind.__name__}") from None
    return out


def _progress_bar(desc: str):
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return bar, update


def cmd_process(args: argparse.Namespace) -> int:
    from stream_app.pipeline import images_in, process_images, process_video
    from stream_app.sources import input_kind, probe_video

    spec = get_mode(args.mode)
    processor = spec.create(**parse_settings(args.mode, args.set))
    kind = input_kind(args.input)
    if kind == "video":
        probe_video(args.input)  # fail on unreadable input before a progress bar is drawn
    bar, update = _progress_bar(f"{args.mode} {Path(args.input).name}")
    try:
        if kind == "video":
            summary = process_video(args.input, processor, args.out, args.jsonl, update)
        else:
            summary = process_images(images_in(args.input), processor, args.out, args.jsonl, update)
    finally:
        bar.close()
        processor.close()
    report = {"input": str(args.input), "mode": args.mode, "frames": summary.frames, "errors": summary.errors,
              "warnings": summary.warnings}
    if summary.last is not None:
        report.update(text=summary.last.caption, counts=summary.last.counts)
    print(json.dumps(report))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from stream_app.bench import run_bench

    if args.frames < 1:
        raise UsageError("--frames must be at least 1")
    pipelined = None if args.steps == "auto" else args.steps == "two"
    print(json.dumps(run_bench(args.mode, args.frames, args.input, settings=parse_settings(args.mode, args.set),
                               live=args.live, pipelined=pipelined)))
    return 0


def cmd_modes(args: argparse.Namespace) -> int:
    for name in mode_names():
        spec = get_mode(name)
        settings = ", ".join(f"{f.name}={f.default!r}" for f in spec.settings_fields())
        print(f"{name}: {spec.description}\n    settings: {settings}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stream_app", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (and tracebacks) to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", help="annotate a video, an image or a folder of images")
    p.add_argument("input", help="video (mp4, mov, avi, mkv, webm), image, or folder of images")
    p.add_argument("--mode", required=True, choices=mode_names())
    p.add_argument("--out", help="annotated MP4 for a video; PNG file or folder for images")
    p.add_argument("--jsonl", help="one JSON object per frame")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a mode setting (see `modes`)")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("bench", help="time a mode per stage at 640x480; prints one JSON object")
    p.add_argument("--mode", required=True, choices=mode_names())
    p.add_argument("--input", help="video or image to take frames from (default: frames the mode makes)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a mode setting (see `modes`)")
    p.add_argument("--live", action="store_true",
                   help="also feed the frames at 30 fps through the live path (the page's worker); adds a 'live' "
                        "block: shown_fps, fresh_per_s, overlay_age_ms")
    p.add_argument("--steps", choices=("auto", "one", "two"), default="auto",
                   help="--live: run a two-step mode (fingerspell) as a two-thread pipeline (two), in one thread "
                        "(one), or as the app does (auto: two where the mode has two steps)")
    p.set_defaults(func=cmd_bench)

    sub.add_parser("modes", help="list the modes and their settings").set_defaults(func=cmd_modes)

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except (InputError, FrameError, UsageError, UnknownModeError, FileNotFoundError) as exc:
        if args.verbose:
            logging.exception("bad input")
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
