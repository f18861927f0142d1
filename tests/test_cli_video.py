"""The CLI on real PyAV video files: the round trip, images, bench, and bad input (exit 2, one clear line)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream_app.cli import main
from stream_app.errors import InputError
from stream_app.sources import iter_video, probe_video, read_image
from stream_app.synthetic import moving_shapes, write_video

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ten_second_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", moving_shapes(300, 640, 480), fps=30)


def test_process_video_round_trip_keeps_frame_count_and_rate(ten_second_video, tmp_path, capsys):
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    assert main(["process", str(ten_second_video), "--mode", "motion", "--out", str(out), "--jsonl", str(jsonl)]) == 0
    info = probe_video(out)
    assert (info.width, info.height, info.fps) == (640, 480, 30.0)
    assert sum(1 for _ in iter_video(out)) == 300
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == 300
    assert [r["frame"] for r in lines] == list(range(300))
    assert lines[150]["time_s"] == pytest.approx(5.0, abs=0.05)
    assert lines[-1]["counts"]["moving"] >= 2 and lines[-1]["detections"]
    assert set(lines[0]) >= {"frame", "time_s", "mode", "detections", "letter", "letter_score", "text", "counts",
                             "timings_ms"}
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 300 and summary["errors"] == 0


def test_odd_sized_portrait_video_is_padded_to_even_and_keeps_frames(tmp_path):
    src = write_video(tmp_path / "odd.mp4", moving_shapes(20, 241, 321), fps=24)  # padded to 242x322 by the sink
    out = tmp_path / "out.mp4"
    assert main(["process", str(src), "--mode", "motion", "--out", str(out)]) == 0
    info = probe_video(out)
    assert (info.width, info.height, info.fps) == (242, 322, 24.0)
    assert sum(1 for _ in iter_video(out)) == 20


def _truncated(path: Path, tmp_path: Path, faststart: bool) -> Path:
    """Cut a real MP4 in half; with faststart the index survives and decoding breaks part-way."""
    import av

    src = path
    if faststart:
        src = tmp_path / "fast.mp4"
        with av.open(str(path)) as inp, av.open(str(src), "w", options={"movflags": "faststart"}) as out:
            stream = out.add_stream_from_template(inp.streams.video[0])
            for packet in inp.demux(inp.streams.video[0]):
                if packet.dts is not None:
                    packet.stream = stream
                    out.mux(packet)
    data = src.read_bytes()
    cut = tmp_path / f"truncated_{faststart}.mp4"
    cut.write_bytes(data[: len(data) // 2])
    return cut


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "truncated_faststart", "missing"])
def test_bad_video_input_exits_2_with_one_clear_line(kind, ten_second_video, tmp_path):
    path = tmp_path / "bad.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n")
    elif kind.startswith("truncated"):
        path = _truncated(ten_second_video, tmp_path, faststart=kind.endswith("faststart"))
    cmd = [sys.executable, "-m", "stream_app", "process", str(path), "--mode", "motion", "--out",
           str(tmp_path / "o.mp4"), "--jsonl", str(tmp_path / "o.jsonl")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(path.name) in errors[0]
    assert "Traceback" not in proc.stderr
    expected = {"empty": "empty", "text": "not a readable video", "missing": "no such file",
                "truncated": "not a readable video", "truncated_faststart": "truncated"}[kind]
    assert expected in errors[0]


def test_process_image_and_folder_write_annotated_pngs(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    frames = list(moving_shapes(2, 320, 240))
    cv2.imwrite(str(folder / "a.png"), frames[0][:, :, ::-1])
    cv2.imwrite(str(folder / "b16.png"), (frames[1][:, :, 0].astype(np.uint16) * 257))  # 16-bit greyscale
    out = tmp_path / "annotated"
    jsonl = tmp_path / "r.jsonl"
    assert main(["process", str(folder), "--mode", "motion", "--out", str(out), "--jsonl", str(jsonl)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_annotated.png", "b16_annotated.png"]
    assert len(jsonl.read_text().splitlines()) == 2
    assert read_image(out / "b16_annotated.png").shape == (240, 320, 3)


def test_read_image_errors_are_clear(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(tmp_path / "x.png")
    with pytest.raises(InputError, match="empty"):
        read_image(b"")


def test_bench_prints_the_documented_json(capsys):
    assert main(["bench", "--mode", "motion", "--frames", "20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "motion" and out["frames"] == 20 and out["fps"] > 0
    assert {"median", "p90", "mean"} <= set(out["stages_ms"]["total"]) and "subtract" in out["stages_ms"]
    assert out["settings"] == {}


def test_bench_takes_mode_settings_and_rejects_unknown_ones(capsys):
    assert main(["bench", "--mode", "motion", "--frames", "5", "--set", "max_side=320"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"] == {"max_side": 320}
    assert main(["bench", "--mode", "motion", "--frames", "5", "--set", "speed=3"]) == 2
    assert "expected NAME=VALUE with NAME one of min_area" in capsys.readouterr().err


def test_unknown_setting_is_a_usage_error(ten_second_video, capsys):
    assert main(["process", str(ten_second_video), "--mode", "motion", "--set", "nope=1"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_one_loop_sends_every_frame_to_every_sink_and_closes_them_when_the_input_breaks(tmp_path):
    """pipeline.run: the annotated MP4, the JSONL and the counts CSV get the same frames in order; a source that fails
    part-way still leaves complete, closed files for the frames before the break, the JSONL ending with the error."""
    import csv

    from stream_app.modes import create_processor, get_mode
    from stream_app.pipeline import run
    from stream_app.sinks import CountsCsvSink, JsonlSink, VideoSink

    def frames():
        for i, frame in enumerate(moving_shapes(40, 320, 240)):
            yield i, i / 10, frame
        raise InputError("the source broke")

    sinks = [VideoSink(tmp_path / "a.mp4", 10, get_mode("motion").annotate), JsonlSink(tmp_path / "a.jsonl"),
             CountsCsvSink(tmp_path / "a.csv")]
    with pytest.raises(InputError, match="broke"):
        run(frames(), create_processor("motion"), sinks)
    assert sum(1 for _ in iter_video(tmp_path / "a.mp4")) == 40
    records = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert records[-1]["error"] == "the source broke"  # the JSONL ends saying why (issue 12: partial outputs say so)
    records = records[:-1]
    assert [r["frame"] for r in records] == list(range(40)) and records[-1]["time_s"] == pytest.approx(3.9)
    rows = list(csv.DictReader((tmp_path / "a.csv").open()))
    assert [float(r["time_s"]) for r in rows] == [r["time_s"] for r in records if r["counts"]]
    assert [int(r["moving"]) for r in rows] == [r["counts"]["moving"] for r in records if r["counts"]]


def test_images_each_alone_to_annotated_pngs_named_after_them(tmp_path):
    from stream_app.modes import create_processor
    from stream_app.pipeline import process_images

    frame = next(moving_shapes(1, 160, 120))
    paths = [tmp_path / f"shot{i}.png" for i in range(3)]
    for path in paths:  # the same picture three times
        cv2.imwrite(str(path), frame)
    summary = process_images(paths, create_processor("motion"), tmp_path / "out", tmp_path / "r.jsonl")
    assert summary.frames == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"shot{i}_annotated.png" for i in range(3)]
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["frame"], r["time_s"]) for r in records] == [(0, 0.0), (1, 0.0), (2, 0.0)]
    # each alone: the same picture gives the same result every time (a stream would learn it as background)
    assert all((r["counts"], r["detections"]) == (records[0]["counts"], records[0]["detections"]) for r in records)
    assert records[0]["counts"]["moving"] > 0
