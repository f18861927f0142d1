"""``python -m stream_app evaluate fingerspell --videos DIR``: the held letter of each clip, read as the app reads it.

DIR holds clips named by their letter: ``A.mp4``, ``a_2.mov``, ``B-3.mp4`` (the name up to its first ``_``, ``-``,
space or ``.`` is one letter A-Z, any case), or one folder per letter (``DIR/A/*.mp4``, any names inside). Other
files are listed on stderr and left out. Each clip runs through the app's stream path: every decoded frame, with its
timestamp and rotation metadata applied, through a fresh fingerspelling processor with the mode's default settings,
the processor ``process`` uses, and is read back as the record ``process --jsonl`` writes for that frame. Per clip:

- ``got``: the most frequent non-null ``letter`` over the last third of the clip's frames (a tie goes to the letter
  seen last); null when no letter was shown there,
- ``hand_found_rate``: the share of the clip's frames with a hand,
- ``text``: the spelled text after the last frame,
- ``error`` (only when set): why the clip could not be read to its end (unreadable, truncated, frames that
  failed); a clip that gives no frame counts as wrong, and the other clips go on.

Prints one JSON object: ``{"n", "correct", "accuracy", "per_clip": [{"file", "letter", "got", "hand_found_rate",
"text"}]}``, accuracy = correct / n over every clip found. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

from stream_app.modes.fingerspell import LETTERS

_NAME = re.compile(r"^([A-Za-z])(?:[_\- .].*)?$")


def add_video_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", metavar="DIR",
                        help="clips named by their letter (A.mp4, A_2.mov, ...) or one folder per letter: the most "
                             "frequent letter over each clip's last third, through the app's stream path")


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    """``evaluate fingerspell``'s options (:mod:`.evaluate`) plus ``--videos``."""
    from stream_app.modes.fingerspell.evaluate import add_evaluate_args as add_image_args

    add_image_args(parser)
    add_video_args(parser)


def run_evaluate(args: argparse.Namespace) -> int:
    """``--videos DIR`` here; every other ``evaluate fingerspell`` run in :mod:`.evaluate`."""
    from stream_app.errors import UsageError

    if not getattr(args, "videos", None):
        from stream_app.modes.fingerspell.evaluate import run_evaluate as run_images

        return run_images(args)
    others = [flag for flag, on in (("--images", getattr(args, "images", None)),
                                    ("--roboflow-test", getattr(args, "roboflow_test", False)),
                                    ("--digits", getattr(args, "digits", False)),
                                    ("--signers", getattr(args, "signers", False)),
                                    ("--model-dir", getattr(args, "model_dir", None)),
                                    ("--confusion-png", getattr(args, "confusion_png", None))) if on]
    if others:
        raise UsageError(f"--videos runs alone (the app's shipped models and default settings); drop {others[0]}")
    print(json.dumps(evaluate_videos(Path(args.videos), log=_log)))
    return 0


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def letter_of(path: Path, root: Path) -> str | None:
    """The letter a clip is named by: its folder's name (``root/A/x.mp4``) or the start of its file name."""
    rel = path.relative_to(root)
    if len(rel.parts) > 1:
        folder = rel.parts[0]
        return folder.upper() if len(folder) == 1 and folder.upper() in LETTERS else None
    match = _NAME.match(path.name[: -len(path.suffix)] if path.suffix else path.name)
    return match.group(1).upper() if match else None


def find_clips(root: Path, log=None) -> list[tuple[Path, str]]:
    """(clip, letter) for every video in ``root`` named by its letter; raises :class:`InputError` for none."""
    from stream_app.errors import InputError
    from stream_app.sources import VIDEO_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    clips, ignored = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS):
        letter = letter_of(path, root)
        (clips.append((path, letter)) if letter else ignored.append(path))
    if log and ignored:
        log(f"left out {len(ignored)} video(s) not named by a letter: {', '.join(str(p) for p in ignored[:5])}"
            + (" ..." if len(ignored) > 5 else ""))
    if not clips:
        raise InputError(f"{root}: no clips named by their letter ({root}/A.mp4, {root}/A_2.mov or {root}/A/*.mp4; "
                         f"extensions {', '.join(VIDEO_EXTENSIONS)})")
    return clips


def held_letter(letters: list[str | None]) -> str | None:
    """The most frequent non-null letter over the last third of ``letters`` (a tie: the one seen last)."""
    tail = [x for x in letters[len(letters) - (len(letters) + 2) // 3:] if x is not None]
    if not tail:
        return None
    counts = Counter(tail)
    best = max(counts.values())
    return next(x for x in reversed(tail) if counts[x] == best)


def read_clip(path: Path, processor) -> dict:
    """Run one clip through a fresh ``processor``: its per-frame JSONL records' letters, hands and text."""
    from stream_app.errors import InputError
    from stream_app.sources import iter_video

    letters, hands, text, failed, error = [], 0, "", 0, None
    try:
        for index, time_s, frame in iter_video(path):
            record = processor.process_safely(frame, time_s).to_json(index, time_s)
            letters.append(record["letter"])
            hands += any(d["label"] == "hand" for d in record["detections"])
            text = record["text"] or text
            failed += record["error"] is not None
    except InputError as exc:
        error = str(exc)
    if failed:
        error = (error + "; " if error else "") + f"{failed} frame(s) failed"
    row = {"got": held_letter(letters), "hand_found_rate": round(hands / len(letters), 4) if letters else None,
           "text": text, "frames": len(letters)}
    if error:
        row["error"] = error
    return row


def evaluate_videos(root: Path, log=None) -> dict:
    from stream_app.modes.fingerspell.spec import SPEC

    clips = find_clips(root, log)
    rows = []
    for i, (path, letter) in enumerate(clips):
        start = time.time()
        processor = SPEC.create()  # a new stream: no hand tracked, nothing averaged or spelled yet
        try:
            row = read_clip(path, processor)
        except Exception as exc:  # noqa: BLE001 - one bad clip is reported in its row, the others go on
            row = {"got": None, "hand_found_rate": None, "text": "", "frames": 0,
                   "error": f"{type(exc).__name__}: {exc}"}
        finally:
            processor.close()
        rows.append({"file": str(path.relative_to(root)), "letter": letter, **row})
        if log:
            log(f"{i + 1}/{len(clips)} {path.name}: {letter} -> {row['got']} (hand {row['hand_found_rate']}, "
                f"text {row['text']!r}, {row['frames']} frames, {time.time() - start:.1f} s)"
                + (f" [{row['error']}]" if "error" in row else ""))
    correct = sum(r["got"] == r["letter"] for r in rows)
    return {"n": len(rows), "correct": correct, "accuracy": round(correct / len(rows), 4), "per_clip": rows}
