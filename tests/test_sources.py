"""Inputs of ``process`` and ``bench`` beyond files: network streams served by the test on 127.0.0.1 (a finite MP4 and
an endless MPEG-TS over HTTP, read by PyAV), stopping rules and Ctrl-C for live sources, folders of videos and images,
sources that cannot be opened, ``--set`` checking and ``modes --json``."""

import io
import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import pytest

from stream_app.cli import main
from stream_app.sources import iter_video, parse_source
from stream_app.synthetic import moving_shapes, write_video

ROOT = Path(__file__).resolve().parents[1]


def mpegts_bytes(frames: int = 90) -> bytes:
    """``frames`` moving-shape frames (160x120, 30 fps) as an H.264 MPEG transport stream."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for frame in moving_shapes(frames, 160, 120):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """``/clip.mp4``: a 60-frame MP4; ``/live.ts``: an MPEG-TS that repeats for as long as the client reads."""
    clip = write_video(tmp_path_factory.mktemp("http") / "clip.mp4", moving_shapes(60, 320, 240), fps=30)
    ts = mpegts_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            if self.path == "/clip.mp4":
                data = clip.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif self.path == "/live.ts":
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                try:
                    while True:
                        self.wfile.write(ts)
                        time.sleep(0.01)
                except OSError:  # the client went away
                    return
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "stream_app", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_inputs_are_told_apart():
    assert (parse_source("0").kind, parse_source("0").target) == ("camera", "/dev/video0") or sys.platform == "darwin"
    assert parse_source("/dev/video2").kind == "device"
    assert parse_source("rtsp://cam.local/stream").kind == "stream" and parse_source("rtsp://x/y").live
    assert parse_source("https://example.org/a.mp4").kind == "stream"
    assert parse_source(str(ROOT / "assets")).kind == "folder"
    assert parse_source(str(ROOT / "assets" / "sample_shapes.mp4")).kind == "video"


def test_http_video_is_processed_to_its_end(http_server, tmp_path, capsys):
    out, records = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    assert main(["process", f"{http_server}/clip.mp4", "--mode", "motion", "--out", str(out),
                 "--jsonl", str(records)]) == 0
    assert json.loads(capsys.readouterr().out)["stopped"] == "end"
    lines = jsonl(records)
    assert [r["frame"] for r in lines] == list(range(60)) and lines[0]["time_s"] == 0.0
    assert lines[30]["time_s"] == pytest.approx(1.0, abs=0.05)
    assert sum(1 for _ in iter_video(out)) == 60


def test_endless_stream_stops_at_max_frames_and_duration(http_server, tmp_path, capsys):
    out, records = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    assert main(["process", f"{http_server}/live.ts", "--mode", "motion", "--out", str(out), "--jsonl",
                 str(records), "--max-frames", "120"]) == 0  # more frames than one pass of the repeated stream
    assert json.loads(capsys.readouterr().out)["stopped"] == "max-frames"
    assert len(jsonl(records)) == 120 and sum(1 for _ in iter_video(out)) == 120
    assert main(["process", f"{http_server}/live.ts", "--mode", "motion", "--jsonl", str(records),
                 "--duration", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["stopped"] == "duration"
    assert len(jsonl(records)) == 30 and max(r["time_s"] for r in jsonl(records)) < 1.0


@pytest.mark.slow
def test_ctrl_c_on_a_live_stream_keeps_complete_outputs(http_server, tmp_path):
    out, records = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "stream_app", "process", f"{http_server}/live.ts", "--mode",
                             "motion", "--out", str(out), "--jsonl", str(records)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not records.exists() or records.stat().st_size < 20_000):
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(stdout)
    assert report["stopped"] == "interrupted"
    lines = jsonl(records)
    assert len(lines) == report["frames"] > 20
    assert sum(1 for _ in iter_video(out)) == len(lines)  # the MP4 was finished (moov written), not cut


@pytest.mark.parametrize("source, named", [
    ("7", "camera 7"), ("/dev/video9", "/dev/video9"), ("rtsp://127.0.0.1:9/cam", "rtsp://127.0.0.1:9/cam"),
    ("http://127.0.0.1:9/a.mp4", "http://127.0.0.1:9/a.mp4"), ("ftp://host/a.mp4", "unsupported URL scheme"),
])
@pytest.mark.parametrize("command", ["process", "bench"])
def test_a_source_that_cannot_be_opened_exits_2_with_one_line(source, named, command):
    args = ["process", source, "--mode", "motion"] if command == "process" else ["bench", "--mode", "motion",
                                                                                  "--input", source]
    proc = run_cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], proc.stderr


def test_folder_of_videos_and_images(tmp_path, capsys):
    folder = tmp_path / "mixed"
    write_video(folder / "walk.mp4", moving_shapes(12, 320, 240), fps=30)
    frames = list(moving_shapes(2, 320, 240, seed=3))
    cv2.imwrite(str(folder / "a.png"), frames[0][:, :, ::-1])
    (folder / "sub").mkdir()
    cv2.imwrite(str(folder / "sub" / "b.jpg"), frames[1][:, :, ::-1])
    (folder / "zz_broken.mov").write_text("not a video")
    out, records = tmp_path / "out", tmp_path / "r.jsonl"
    # every file is processed; then exit 2, the bad one named (issue 12: a folder's bad files make the run exit 2)
    assert main(["process", str(folder), "--mode", "motion", "--out", str(out), "--jsonl", str(records)]) == 2
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["failed_inputs"] == ["zz_broken.mov"] and "zz_broken.mov: not a readable video" in captured.err
    assert f"error: {folder}: 1 of 4 files could not be processed: zz_broken.mov: not a readable video" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["a_annotated.png", "b_annotated.png", "walk_annotated.mp4"]
    assert sum(1 for _ in iter_video(out / "walk_annotated.mp4")) == 12
    lines = jsonl(records)
    assert [r["source"] for r in lines] == ["a.png", "sub/b.jpg"] + ["walk.mp4"] * 12 + ["zz_broken.mov"]
    assert [r["frame"] for r in lines if r["source"] == "walk.mp4"] == list(range(12))
    assert lines[-1]["error"].startswith(str(folder / "zz_broken.mov"))


@pytest.mark.parametrize("mode, pair, message", [
    ("fingerspell", "model=x", "--set model=x: model must be one of shipped, fused, landmarks, crop"),
    ("motion", "history=5", "--set history=5: history must be at least 10"),
    ("motion", "history=2000", "--set history=2000: history must be at most 1000"),
    ("motion", "history=abc", "--set history=abc: history must be an integer"),
    ("motion", "sensitivity=nan", "--set sensitivity=nan: sensitivity must be a finite number"),
    ("leukocyte", "stain_normalise=maybe", "--set stain_normalise=maybe: stain_normalise is true or false"),
])
def test_bad_set_values_exit_2_with_one_line_naming_the_setting(mode, pair, message):
    proc = run_cli("process", str(ROOT / "assets" / "sample_shapes.mp4"), "--mode", mode, "--set", pair)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {message}"]


def test_good_set_values_are_typed(capsys):
    assert main(["bench", "--mode", "motion", "--frames", "3", "--set", "history=10", "--set", "min_area=0.01"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"] == {"history": 10, "min_area": 0.01}


def test_modes_json_lists_modes_and_their_settings(capsys):
    assert main(["modes", "--json"]) == 0
    modes = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert {"fingerspell", "leukocyte", "classify", "motion"} <= set(modes)
    history = {s["name"]: s for s in modes["motion"]["settings"]}["history"]
    assert history == {"name": "history", "type": "int", "default": 120, "help": history["help"], "min": 10,
                       "max": 1000, "step": 10, "choices": None}
    model = {s["name"]: s for s in modes["fingerspell"]["settings"]}["model"]
    assert model["type"] == "str" and model["default"] in model["choices"]


def test_stream_app_command_is_installed_with_version():
    import stream_app

    command = Path(sys.executable).parent / "stream-app"
    proc = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"stream-app {stream_app.__version__}"
