"""The bad-input matrix (issue 12): every mode, every kind of input a user may hand the CLI, bad ``--set`` values and
bad ``--out`` names. Each run must end with exit code 0 (processed) or 2 (refused or partly processed), never a
traceback, and a refusal is one line on stderr naming the input and the problem. The inputs are made here, at test
time, from generated frames (nothing from the shared data, nothing committed).

The runs call :func:`stream_app.cli.main` in this process (the models load once), reading file descriptor 2, so a
traceback printed by anything (Python, a library's logger) is seen; ``-v`` and the MediaPipe/absl log silencing are
checked in a subprocess, where those C++ logs are written at start-up.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream_app.cli import main
from stream_app.modes import mode_names
from stream_app.synthetic import moving_shapes, write_video

ROOT = Path(__file__).resolve().parents[1]


def _png(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image), path
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """name -> a path, made once for the module."""
    d = tmp_path_factory.mktemp("bad_inputs")
    frames = list(moving_shapes(24, 160, 120, seed=5))
    good_mp4 = write_video(d / "good.mp4", frames, fps=12)
    cut = d / "truncated.mp4"
    cut.write_bytes(good_mp4.read_bytes()[: good_mp4.stat().st_size * 2 // 3])
    (d / "empty.mp4").write_bytes(b"")
    (d / "empty.png").write_bytes(b"")
    (d / "notes.mp4").write_text("this is not a video\n")
    (d / "notes.png").write_text("this is not an image either\n")
    # an AVI whose codec FFmpeg does not know: MJPEG with its FourCC replaced
    import av

    with av.open(str(d / "mjpeg.avi"), "w") as container:
        stream = container.add_stream("mjpeg", rate=12)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuvj420p"
        for frame in frames[:6]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    (d / "unknown_codec.avi").write_bytes((d / "mjpeg.avi").read_bytes().replace(b"MJPG", b"QQQQ"))
    # an MP4 with its index first (as phones and web downloads have it), cut: the first frames still decode
    with av.open(str(d / "faststart.mp4"), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = (d / "faststart.mp4").read_bytes()
    (d / "cut_after_some_frames.mp4").write_bytes(data[: len(data) * 2 // 3])
    odd_mp4 = write_video(d / "odd_161x121.mp4", (cv2.resize(f, (161, 121)) for f in frames[:8]), fps=12)
    tiny_mp4 = write_video(d / "tiny_2x2.mp4", (cv2.resize(f, (2, 2)) for f in frames[:4]), fps=12)
    rgb = cv2.cvtColor(frames[3], cv2.COLOR_RGB2BGR)
    out = {
        "missing": d / "no_such_file.mp4",
        "empty video": d / "empty.mp4",
        "empty image": d / "empty.png",
        "text as video": d / "notes.mp4",
        "text as image": d / "notes.png",
        "truncated video": cut,
        "truncated video, partly readable": d / "cut_after_some_frames.mp4",
        "unsupported codec": d / "unknown_codec.avi",
        "odd-size video": odd_mp4,
        "2x2 video": tiny_mp4,
        "1x1 image": _png(d / "one_pixel.png", np.full((1, 1, 3), 128, np.uint8)),
        "16-bit image": _png(d / "sixteen_bit.png", (np.linspace(0, 65535, 120 * 160).reshape(120, 160))
                             .astype(np.uint16)),
        "RGBA image": _png(d / "rgba.png", np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])),
        "grey image": _png(d / "grey.png", cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY)),
        "8000x6000 image": _png(d / "huge_8000x6000.png", cv2.resize(rgb, (8000, 6000),
                                                                      interpolation=cv2.INTER_NEAREST)),
        "odd-size image": _png(d / "odd_641x479.png", cv2.resize(rgb, (641, 479))),
        "good video": good_mp4,
    }
    folder = d / "folder"
    folder.mkdir()
    for name, source in (("a_good.png", out["grey image"]), ("b_empty.png", out["empty image"]),
                         ("c_notes.mp4", out["text as video"]), ("d_good.mp4", good_mp4),
                         ("e_cut.mp4", cut), ("f_good.png", out["RGBA image"])):
        (folder / name).write_bytes(source.read_bytes())
    out["folder with bad files in the middle"] = folder
    return out


OUTCOMES = {  # kind -> the exit code every mode must give (2: refused, or processed with a problem it names)
    "missing": 2, "empty video": 2, "empty image": 2, "text as video": 2, "text as image": 2, "truncated video": 2,
    "truncated video, partly readable": 2,
    "unsupported codec": 2, "odd-size video": 0, "2x2 video": 0, "1x1 image": 2, "16-bit image": 0, "RGBA image": 0,
    "grey image": 0, "8000x6000 image": 0, "odd-size image": 0, "good video": 0,
    "folder with bad files in the middle": 2,
}


def _run(capfd, argv: list[str]) -> tuple[int, str, str]:
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusing an option
        code = exc.code
    out, err = capfd.readouterr()
    return code, out, err


def _error_lines(err: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]+", err) if line.startswith("error:")]


@pytest.mark.slow
@pytest.mark.parametrize("mode", mode_names())
def test_every_input_kind_gives_exit_0_or_2_and_one_clear_line(mode, inputs, tmp_path, capfd):
    rows = []
    for kind, path in inputs.items():
        folder = kind.startswith("folder")
        image = path.suffix == ".png"
        out = tmp_path / kind.replace(" ", "_") / ("annotated" if folder else "out.png" if image else "out.mp4")
        out.parent.mkdir(parents=True, exist_ok=True)
        jsonl = out.parent / "frames.jsonl"
        code, stdout, err = _run(capfd, ["process", str(path), "--mode", mode, "--out", str(out), "--jsonl",
                                         str(jsonl)])
        rows.append((kind, code, _error_lines(err)))
        assert "Traceback" not in err, f"{mode} / {kind}:\n{err}"
        assert code == OUTCOMES[kind], f"{mode} / {kind}: exit {code}\n{err}"
        if code == 2:
            lines = _error_lines(err)
            assert len(lines) == 1 and path.name in lines[0], f"{mode} / {kind}: {lines}\n{err}"
            if kind == "truncated video, partly readable":  # what was written is kept, and named for what it is
                assert not out.exists() and out.with_name("out.partial.mp4").exists(), lines
                records = [json.loads(x) for x in out.with_name("frames.partial.jsonl").read_text().splitlines()]
                assert records[-1]["error"] and "truncated" in records[-1]["error"] and len(records) > 2
                assert "out.partial.mp4" in lines[0] and "frames.partial.jsonl" in lines[0]
        else:
            assert out.exists() and jsonl.exists(), f"{mode} / {kind}: no output\n{err}"
            summary = json.loads(stdout.strip().splitlines()[-1])
            assert summary["frames"] >= 1
    print(f"\n[bad inputs] {mode}: " + "; ".join(f"{kind} -> {code}" for kind, code, _ in rows))


def test_a_folder_is_processed_to_the_end_and_its_bad_files_listed(inputs, tmp_path, capfd):
    folder = inputs["folder with bad files in the middle"]
    code, stdout, err = _run(capfd, ["process", str(folder), "--mode", "motion", "--out", str(tmp_path / "out"),
                                     "--jsonl", str(tmp_path / "all.jsonl")])
    assert code == 2 and "Traceback" not in err
    (line,) = _error_lines(err)
    assert line.startswith(f"error: {folder}: 3 of 6 files could not be processed: "), line
    assert "b_empty.png: the file is empty" in line and "c_notes.mp4" in line and "e_cut.mp4" in line
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a_good_annotated.png", "d_good_annotated.mp4", "f_good_annotated.png"]  # after the bad ones
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["failed_inputs"] == ["b_empty.png", "c_notes.mp4", "e_cut.mp4"]


BAD_SETTINGS = [
    ("motion", "no_such_setting=1", "expected NAME=VALUE with NAME one of"),
    ("motion", "min_area=lots", "must be a number"),
    ("leukocyte", "wbc_threshold=5", "must be at most"),
    ("leukocyte", "max_side=99999", "must be at most"),
    ("classify", "model=x", "must be one of"),
    ("leukocyte", "clahe_lab=perhaps", "is true or false"),
    ("motion", "min_area", "expected NAME=VALUE"),
]


@pytest.mark.parametrize("mode, pair, problem", BAD_SETTINGS)
def test_bad_set_values_are_refused_in_one_line(mode, pair, problem, inputs, tmp_path, capfd):
    code, _, err = _run(capfd, ["process", str(inputs["grey image"]), "--mode", mode, "--set", pair,
                                "--out", str(tmp_path / "x.png")])
    assert code == 2 and "Traceback" not in err
    (line,) = _error_lines(err)
    assert pair.split("=")[0] in line and problem in line, line
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("kind, out, problem", [
    ("good video", "annotated.txt", "an annotated video is written as"),
    ("good video", "annotated.png", "an annotated video is written as"),
    ("grey image", "annotated.mp4", "an annotated image is written as"),
    ("grey image", "annotated", "an annotated image is written as"),
    ("folder with bad files in the middle", "out.mp4", "for a folder, --out is a folder"),
])
def test_bad_out_names_are_refused_before_any_work(kind, out, problem, inputs, tmp_path, capfd):
    code, _, err = _run(capfd, ["process", str(inputs[kind]), "--mode", "motion", "--out", str(tmp_path / out)])
    assert code == 2 and "Traceback" not in err
    (line,) = _error_lines(err)
    assert out in line and problem in line, line
    assert list(tmp_path.iterdir()) == []


def test_mediapipe_log_lines_only_with_v_and_v_after_the_subcommand(inputs, tmp_path):
    """MediaPipe and TFLite write their own log lines to stderr from C++ (``W0000 ... inference_feedback_manager``,
    ``INFO: Created TensorFlow Lite XNNPACK delegate``); without ``-v`` they are dropped, with ``-v`` (before or after
    the subcommand) they are shown. Needs a fresh process: they are written when MediaPipe starts."""
    def run(*extra):
        cmd = [sys.executable, "-m", "stream_app", *extra[:1], "process", str(inputs["grey image"]), "--mode",
               "fingerspell", "--out", str(tmp_path / "x.png"), *extra[1:]]
        done = subprocess.run([c for c in cmd if c], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stderr

    native = re.compile(r"^(W0000|I0000|E0000|INFO: Created TensorFlow Lite|WARNING: Logging before InitGoogle)",
                        re.M)
    quiet = run("")
    assert not native.search(quiet), quiet
    assert native.search(run("", "-v")) and native.search(run("-v"))  # after the subcommand, and before it
