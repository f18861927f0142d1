"""``batch`` on videos the tests make: the local engine and a real Ray (started for the run) give the same outputs;
a failed video is recorded and the rest go on; a re-run and a killed run do not redo finished videos."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream_app.batch import expand_inputs, plan_tasks, run_batch
from stream_app.cli import main
from stream_app.sources import iter_video
from stream_app.synthetic import moving_shapes, write_video

ROOT = Path(__file__).resolve().parents[1]


def make_videos(folder: Path, n: int, frames: int = 40, size=(320, 240)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_video(folder / f"clip_{k}.mp4", moving_shapes(frames, *size, seed=k), fps=30) for k in range(n)]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """Four short videos and one file that is not a video, in a folder with a sub-folder."""
    folder = tmp_path_factory.mktemp("archive")
    make_videos(folder, 3)
    make_videos(folder / "day2", 1, frames=25, size=(240, 320))  # portrait
    (folder / "day2" / "broken.mp4").write_text("not a video\n")
    return folder


def summary_rows(out: Path) -> dict[str, dict]:
    with (out / "summary.csv").open() as fh:
        return {row["name"]: row for row in csv.DictReader(fh)}


def records(path: Path) -> list[dict]:
    """The JSONL records without their timings (the only field that depends on the machine's load)."""
    out = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.pop("timings_ms")
        out.append(record)
    return out


@pytest.mark.slow
def test_local_and_ray_engines_give_identical_outputs(archive, tmp_path):
    local = run_batch([str(archive)], "motion", tmp_path / "local", engine="local", jobs=2, threads=1,
                      show_progress=False)
    on_ray = run_batch([str(archive)], "motion", tmp_path / "ray", engine="ray", jobs=2, threads=1,
                       show_progress=False)
    for report in (local, on_ray):
        assert (report["videos"], report["ok"], report["failed"], report["reused"]) == (5, 4, 1, 0)
        assert report["frames"] == 3 * 40 + 25
    rows_local, rows_ray = summary_rows(tmp_path / "local"), summary_rows(tmp_path / "ray")
    names = list(rows_local)
    assert names == list(rows_ray) and names[1:4] == ["clip_1", "clip_2", "broken"]
    assert names[0].startswith("clip_0-") and names[4].startswith("clip_0-")  # two clip_0 stems: made unique
    assert rows_local["broken"]["status"] == "failed" and "not a readable video" in rows_local["broken"]["message"]
    for name, row in rows_local.items():
        if row["status"] != "ok":
            assert not (tmp_path / "local" / f"{name}.jsonl").exists()
            continue
        assert row["frames"] == rows_ray[name]["frames"] and int(row["frames"]) in (40, 25)
        assert row["moving"] == rows_ray[name]["moving"]
        jsonl_local = records(tmp_path / "local" / f"{name}.jsonl")
        assert jsonl_local == records(tmp_path / "ray" / f"{name}.jsonl")
        assert len(jsonl_local) == int(row["frames"]) and any(r["detections"] for r in jsonl_local)
        assert (tmp_path / "local" / f"{name}_counts.csv").read_bytes() == \
            (tmp_path / "ray" / f"{name}_counts.csv").read_bytes()
        assert sum(1 for _ in iter_video(tmp_path / "ray" / f"{name}.mp4")) == int(row["frames"])
    assert not list((tmp_path / "ray").glob("*.part*"))


def test_output_names_stay_unique_when_stems_repeat(tmp_path):
    a = make_videos(tmp_path / "a", 1, frames=2)[0]
    b = make_videos(tmp_path / "b", 1, frames=2)[0]
    names = [t.name for t in plan_tasks(expand_inputs([str(tmp_path / "*" / "*.mp4"), str(a)]))]
    assert len(names) == 2 and names[0] != names[1] and all(n.startswith("clip_0-") for n in names)
    assert [t.video for t in plan_tasks(expand_inputs([str(b)]))] == [str(b.resolve())]


def test_rerun_skips_complete_videos_and_force_redoes_them(tmp_path, capsys):
    videos = make_videos(tmp_path / "in", 2, frames=15)
    out = tmp_path / "out"
    args = ["batch", *map(str, videos), "--mode", "motion", "--out", str(out), "--jobs", "1"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["ok"], first["reused"]) == (2, 0)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "summary.csv"}
    (out / "clip_1.jsonl").write_text("cut short\n")  # a damaged output makes its video incomplete
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["ok"], second["reused"], second["frames"]) == (2, 1, 15)
    assert {p: out.joinpath(p).stat().st_mtime_ns for p in stamps if p.startswith("clip_0")} == \
        {p: t for p, t in stamps.items() if p.startswith("clip_0")}
    assert summary_rows(out)["clip_0"]["reused"] == "True"
    assert main(args + ["--force"]) == 0
    assert json.loads(capsys.readouterr().out)["reused"] == 0


def test_a_failed_video_makes_exit_code_1_with_one_line(tmp_path, capsys):
    video = make_videos(tmp_path, 1, frames=5)[0]
    bad = tmp_path / "empty.mp4"
    bad.write_bytes(b"")
    assert main(["batch", str(video), str(bad), "--mode", "motion", "--out", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["failed"] == 1
    assert captured.err.strip().splitlines()[-1].startswith("batch: 1 of 2 videos failed")
    assert "empty (0 bytes)" in summary_rows(tmp_path / "o")["empty"]["message"]


def test_batch_that_cannot_start_exits_2(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "none*.mp4"), "--mode", "motion", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none*.mp4'}: the pattern matches no video"
    assert main(["batch", str(tmp_path), "--mode", "motion", "--out", str(tmp_path / "o"), "--address", "x"]) == 2
    assert capsys.readouterr().err.strip() == "error: --address needs --engine ray"


def test_unreachable_ray_cluster_exits_2_at_once(tmp_path, capsys):
    import socket

    video = make_videos(tmp_path, 1, frames=2)[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once the socket is closed
    start = time.monotonic()
    assert main(["batch", str(video), "--mode", "motion", "--out", str(tmp_path / "o"), "--engine", "ray",
                 "--address", address]) == 2
    assert time.monotonic() - start < 60
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Ray at {address} could not be reached (Connection")


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_killed_batch_resumes_without_redoing_finished_videos(tmp_path, stop):
    videos = make_videos(tmp_path / "in", 6, frames=90)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "stream_app", "batch", str(tmp_path / "in"), "--mode", "motion", "--out", str(out),
           "--jobs", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("*.done.json"))) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, stop)
    finally:
        proc.wait(timeout=30)
    finished = {p.name.removesuffix(".done.json") for p in out.glob("*.done.json")}
    assert 2 <= len(finished) < len(videos), "the run was to be killed part-way"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.split(".")[0].removesuffix("_counts")
              in finished}
    resumed = run_batch([str(tmp_path / "in")], "motion", out, jobs=1, show_progress=False)
    assert (resumed["ok"], resumed["reused"]) == (6, len(finished))
    assert resumed["frames"] == 90 * (6 - len(finished))
    assert {name: out.joinpath(name).stat().st_mtime_ns for name in stamps} == stamps
    assert not list(out.glob("*.part*"))
    assert all(row["status"] == "ok" for row in summary_rows(out).values())
    assert all(len(path.read_text().splitlines()) == 90 for path in out.glob("*.jsonl"))  # none cut short
