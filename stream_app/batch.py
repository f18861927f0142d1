"""``batch``: replay a whole archive of videos through one mode, split by video over workers.

    stream-app batch INPUT... --mode M --out DIR [--engine local|ray] [--address ADDR] [--jobs N] [--threads T]
                     [--set NAME=VALUE ...] [--force]

For each video, DIR gets ``NAME.mp4`` (annotated), ``NAME.jsonl`` (one record per frame, the schema of ``process``),
``NAME_counts.csv`` (counts over time; a header only for modes that count nothing) and last ``NAME.done.json`` (the
video's summary row and its output sizes). NAME is the file's stem, with a hash of its path added when two inputs share
a stem. DIR/summary.csv gets one row per video: frames, fps achieved, errors, warnings, the mode's counts at the last
frame, and the status (``ok``, or ``failed`` with the message).

- Split by video, not by frame: trackers and the speller need a video's frames in order, and whole videos keep the
  workers busy without moving frames between machines.
- Each worker is a process with a fixed thread budget (:mod:`stream_app.threads`) that loads the mode's models once
  and then takes video after video (a ``Worker`` object: a process of a local pool, or a Ray actor).
- A video that fails is recorded and the others go on. A video whose outputs are complete (its ``.done.json`` and the
  files it lists, at their sizes) is not redone on a re-run unless ``--force``; outputs are written under ``.part``
  names and renamed when finished, so a killed run leaves no file that looks complete.
- ``--engine local`` (default): a pool of ``--jobs`` processes on this machine (``--jobs 1``: in this process).
  ``--engine ray``: Ray actors, on a Ray started for the run on this machine, or on the cluster at ``--address``.
  Ray was chosen over hand-written remote workers because it already does placement by CPU count, worker processes
  on every node and failure reporting; its actors keep the loaded models between videos. On a cluster every node
  must see INPUT and DIR at the same paths (a shared mount) and have stream-app installed.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from stream_app.errors import InputError
from stream_app.sources import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ["video", "name", "status", "message", "frames", "video_fps", "fps", "seconds", "errors",
                   "warnings", "reused", "worker"]
PROGRESS_EVERY_S = 0.25

Progress = Callable[[str, int, int], None]  # (task name, frames done, frames expected or 0)


class BatchError(InputError):
    """A batch that cannot start (no input found, Ray missing or unreachable): exit 2 with the message."""


@dataclass(frozen=True)
class Task:
    """One video of the batch and the stem of its outputs."""

    video: str
    name: str


@dataclass(frozen=True)
class Plan:
    """What every worker needs to know (picklable: it goes to worker processes and Ray actors)."""

    mode: str
    settings: dict
    out_dir: str
    threads: int


# ---- inputs and outputs ---------------------------------------------------------------------------------------------

def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files, folders (searched recursively for video files) and globs, as absolute paths in a stable order without
    duplicates. A file named explicitly is kept whatever its extension (it fails as a video if it is not one);
    an input that matches nothing is an error."""
    found: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and _is_video(p))
            if not matches:
                raise BatchError(f"{raw}: the folder holds no video ({', '.join(VIDEO_EXTENSIONS)})")
        elif path.exists():
            matches = [path]
        elif glob.has_magic(raw):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True)
                             if Path(p).is_file() and _is_video(Path(p)))
            if not matches:
                raise BatchError(f"{raw}: the pattern matches no video")
        else:
            raise BatchError(f"{raw}: no such file or folder")
        found.extend(matches)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise BatchError("no input given")
    return unique


def plan_tasks(videos: list[Path]) -> list[Task]:
    """One task per video; output stems are the file stems, made unique with a hash of the path where needed."""
    stems: dict[str, int] = {}
    for video in videos:
        stems[video.stem] = stems.get(video.stem, 0) + 1
    tasks = []
    for video in videos:
        name = video.stem
        if stems[name] > 1:
            name = f"{name}-{hashlib.sha1(str(video).encode()).hexdigest()[:8]}"
        tasks.append(Task(str(video), name))
    return tasks


def outputs(out_dir: str | Path, name: str) -> dict[str, Path]:
    out = Path(out_dir)
    return {"mp4": out / f"{name}.mp4", "jsonl": out / f"{name}.jsonl", "csv": out / f"{name}_counts.csv",
            "done": out / f"{name}.done.json"}


def _part(path: Path) -> Path:
    """Where an output is written until it is complete (the real suffix kept last: PyAV picks the format by it)."""
    return path.with_name(f"{path.stem}.part{path.suffix}")


def completed_row(out_dir: str | Path, task: Task) -> dict | None:
    """The stored summary row when the task's outputs are complete (marker present, every file at its size)."""
    paths = outputs(out_dir, task.name)
    try:
        done = json.loads(paths["done"].read_text())
        if done.get("video") != task.video:
            return None
        for key, size in done["sizes"].items():
            if paths[key].stat().st_size != size:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return done["row"]


# ---- the worker -------------------------------------------------------------------------------------------------------

class Worker:
    """One worker process: a fixed thread budget, the mode's models loaded once, then any number of videos."""

    def __init__(self, plan: Plan) -> None:
        from stream_app import threads
        from stream_app.modes import get_mode

        threads.apply(plan.threads)
        self.plan = plan
        self.spec = get_mode(plan.mode)
        if self.spec.warm_up is not None:
            self.spec.warm_up()
        self.where = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, task: Task, progress: Progress | None = None) -> dict:
        """Process one video into its outputs; a failure is the row's status and message. Ctrl-C (the run stopped
        part-way) raises :class:`KeyboardInterrupt` and leaves the outputs incomplete, so a re-run redoes the video."""
        from stream_app.pipeline import process_video

        start = time.perf_counter()
        paths = outputs(self.plan.out_dir, task.name)
        parts = {key: _part(path) for key, path in paths.items()}
        row = {"video": task.video, "name": task.name, "status": "failed", "message": "", "frames": 0,
               "video_fps": 0.0, "fps": 0.0, "seconds": 0.0, "errors": 0, "warnings": "", "reused": False,
               "worker": self.where, "counts": {}}
        last_report = [0.0]

        def report(done: int, total: int) -> None:
            now = time.perf_counter()
            if progress is not None and (now - last_report[0] >= PROGRESS_EVERY_S or done == total):
                last_report[0] = now
                progress(task.name, done, total)

        processor = None
        try:
            Path(self.plan.out_dir).mkdir(parents=True, exist_ok=True)
            for key in ("mp4", "jsonl", "csv", "done"):  # a re-run (--force, or a changed video) starts clean
                paths[key].unlink(missing_ok=True)
            processor = self.spec.create(**self.plan.settings)
            summary = process_video(task.video, processor, parts["mp4"], parts["jsonl"], report,
                                    counts_csv=parts["csv"])
            if summary.stopped != "end":
                raise KeyboardInterrupt
            for key in ("mp4", "jsonl", "csv"):
                os.replace(parts[key], paths[key])
            seconds = time.perf_counter() - start
            row.update(status="ok", frames=summary.frames, video_fps=round(summary.fps, 3),
                       fps=round(summary.frames / seconds, 2) if seconds > 0 else 0.0, seconds=round(seconds, 2),
                       errors=summary.errors,
                       warnings="; ".join(f"{k}: {v}" for k, v in sorted(summary.warnings.items())),
                       counts=dict(summary.last.counts) if summary.last is not None else {})
            marker = {"video": task.video, "row": row,
                      "sizes": {key: paths[key].stat().st_size for key in ("mp4", "jsonl", "csv")}}
            parts["done"].write_text(json.dumps(marker, indent=1))
            os.replace(parts["done"], paths["done"])
        except Exception as exc:  # noqa: BLE001 - one bad video never stops the batch: it is recorded
            log.debug("video failed: %s", task.video, exc_info=True)
            message = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            row.update(status="failed", message=" ".join(message.split()),
                       seconds=round(time.perf_counter() - start, 2))
            for part in parts.values():
                part.unlink(missing_ok=True)
        finally:
            if processor is not None:
                processor.close()
        return row


# ---- engines ------------------------------------------------------------------------------------------------------------

Done = Callable[[dict], None]


def _local_worker_init(plan: Plan) -> None:
    global _WORKER
    _WORKER = Worker(plan)


def _local_run(task: Task, queue) -> dict:
    return _WORKER.run(task, lambda name, done, total: queue.put((name, done, total)))


_WORKER: Worker | None = None


def run_local(tasks: list[Task], plan: Plan, jobs: int, progress: Progress, done: Done) -> None:
    """``jobs`` worker processes on this machine (spawned: no state of this process is copied into them);
    ``jobs == 1`` runs in this process."""
    if jobs <= 1:
        worker = Worker(plan)
        for task in tasks:
            done(worker.run(task, progress))
        return
    import multiprocessing as mp
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = mp.get_context("spawn")
    with context.Manager() as manager:
        events = manager.Queue()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_local_worker_init,
                                 initargs=(plan,)) as pool:
            pending = {pool.submit(_local_run, task, events): task for task in tasks}
            while pending:
                finished, _ = wait(pending, timeout=PROGRESS_EVERY_S, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        progress(*events.get_nowait())
                    except queue_module.Empty:
                        break
                for future in finished:
                    task = pending.pop(future)
                    try:
                        done(future.result())
                    except Exception as exc:  # noqa: BLE001 - a worker process died: record, go on
                        done(_failed_row(task, f"worker failed: {type(exc).__name__}: {exc}"))


def _failed_row(task: Task, message: str) -> dict:
    return {"video": task.video, "name": task.name, "status": "failed", "message": " ".join(message.split()),
            "frames": 0, "video_fps": 0.0, "fps": 0.0, "seconds": 0.0, "errors": 0, "warnings": "",
            "reused": False, "worker": "", "counts": {}}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BatchError("--engine ray needs Ray: pip install 'stream-app[ray]' (or use --engine local)") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail within seconds when nothing listens at ``host:port`` (``ray.init`` would keep retrying for minutes)."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return  # "auto", ray://..., or no port: left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise BatchError(f"Ray at {address} could not be reached ({exc.__class__.__name__}: {exc}); is "
                         "`ray start --head` running there?") from None


def ray_connect(address: str | None, jobs: int, threads: int):
    """Connect to the cluster at ``address``, or start a Ray on this machine for the run (no dashboard, no usage
    statistics: nothing leaves the machine). Returns ``(ray, jobs)`` with ``jobs`` lowered to fit the cluster's CPUs.

    Ray >= 2.59 starts clusters (``ray start --head``) with token authentication; a driver that connects to one must
    be in token mode too, so ``RAY_AUTH_MODE`` defaults to ``token`` with ``--address`` (the token is read from
    ``~/.ray/auth_token`` or ``RAY_AUTH_TOKEN``; a cluster started with ``RAY_AUTH_MODE=disabled`` needs the same
    setting here)."""
    ray = _import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    if address:
        _check_reachable(address)
    try:
        if address:
            os.environ.setdefault("RAY_AUTH_MODE", "token")
            ray.init(address=address, **kwargs)
        else:
            # Ray schedules actors by logical CPUs: give the local Ray enough for the jobs asked for.
            ray.init(num_cpus=max(os.cpu_count() or 1, jobs * threads), **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BatchError(f"Ray at {address or 'this machine'} could not be reached: {' '.join(str(exc).split())}") \
            from None
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < threads:
        ray.shutdown()
        raise BatchError(f"the Ray cluster has {cpus} CPUs, fewer than --threads {threads}")
    if jobs * threads > cpus:
        jobs = max(1, cpus // threads)
        print(f"batch: the Ray cluster has {cpus} CPUs: {jobs} workers of {threads} threads", file=sys.stderr)
    return ray, jobs


class RayProgress:
    """An actor that the workers tell their progress; the driver polls it."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, int]] = {}

    def update(self, name: str, done: int, total: int) -> None:
        self._latest[name] = (done, total)

    def take(self) -> dict[str, tuple[int, int]]:
        latest, self._latest = self._latest, {}
        return latest


class _RayReporter:
    """Picklable progress callback for a Ray worker: fire-and-forget calls to the progress actor."""

    def __init__(self, actor) -> None:
        self.actor = actor

    def __call__(self, name: str, done: int, total: int) -> None:
        self.actor.update.remote(name, done, total)


class _RayWorker(Worker):
    def run_reporting(self, task: Task, reporter: _RayReporter) -> dict:
        return self.run(task, reporter)


def run_ray(ray, tasks: list[Task], plan: Plan, jobs: int, progress: Progress, done: Done) -> None:
    """``jobs`` Ray actors (``num_cpus`` = the thread budget each), each taking the next video when it finishes one;
    an actor that dies (its node lost) is replaced and its video recorded as failed. ``ray``: connected by
    :func:`ray_connect`."""
    actor_cls = ray.remote(num_cpus=plan.threads)(_RayWorker)
    reporter = _RayReporter(ray.remote(num_cpus=0)(RayProgress).remote())
    queue = list(tasks)
    running: dict = {}

    def start(actor) -> None:
        task = queue.pop(0)
        running[actor.run_reporting.remote(task, reporter)] = (actor, task)

    for _ in range(min(jobs, len(queue))):
        start(actor_cls.remote(plan))
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=PROGRESS_EVERY_S)
        for name, (done_frames, total) in ray.get(reporter.actor.take.remote()).items():
            progress(name, done_frames, total)
        for ref in ready:
            actor, task = running.pop(ref)
            try:
                done(ray.get(ref))
            except ray.exceptions.RayError as exc:
                done(_failed_row(task, f"worker failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"))
                ray.kill(actor)
                actor = actor_cls.remote(plan)
            if queue:
                start(actor)


# ---- the driver -------------------------------------------------------------------------------------------------------

class _Bars:
    """Two progress bars on stderr: videos finished, and frames processed over the videos of this run."""

    def __init__(self, videos: int, frames: int, reused: int) -> None:
        from tqdm import tqdm

        self.videos = tqdm(total=videos, initial=reused, desc="videos", unit="video", file=sys.stderr, position=0,
                           dynamic_ncols=True)
        self.frames = tqdm(total=frames or None, desc="frames", unit="frame", file=sys.stderr, position=1,
                           dynamic_ncols=True)
        self._done: dict[str, int] = {}

    def progress(self, name: str, done: int, total: int) -> None:
        step = done - self._done.get(name, 0)
        if step > 0:
            self._done[name] = done
            self.frames.update(step)

    def finished(self, row: dict) -> None:
        self.videos.update(1)
        if row["status"] != "ok":
            self.videos.write(f"failed: {row['video']}: {row['message']}", file=sys.stderr)

    def close(self) -> None:
        self.frames.close()
        self.videos.close()


def _expected_frames(video: str) -> int:
    from stream_app.sources import probe_video

    try:
        return probe_video(video).frames
    except InputError:
        return 0


def write_summary(path: Path, rows: list[dict]) -> Path:
    """DIR/summary.csv: one row per video, the fixed columns and then one column per count the mode reports."""
    count_names = sorted({name for row in rows for name in row.get("counts", {})})
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(SUMMARY_COLUMNS + count_names)
        for row in rows:
            counts = row.get("counts", {})
            writer.writerow([row.get(c, "") for c in SUMMARY_COLUMNS] + [counts.get(n, "") for n in count_names])
    os.replace(tmp, path)
    return path


def run_batch(inputs: list[str], mode: str, out_dir: str | Path, settings: dict | None = None,
              engine: str = "local", jobs: int | None = None, threads: int | None = None,
              address: str | None = None, force: bool = False, show_progress: bool = True) -> dict:
    """Run the batch; returns ``{"videos", "ok", "failed", "reused", "frames", "seconds", ...}``. Raises
    :class:`BatchError` when it cannot start."""
    from stream_app.modes import get_mode

    get_mode(mode)
    if engine not in ("local", "ray"):
        raise BatchError(f"--engine {engine!r}: expected local or ray")
    if engine == "local" and address:
        raise BatchError("--address needs --engine ray")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise BatchError(f"{out_dir}: exists and is not a folder")
    tasks = plan_tasks(expand_inputs(inputs))
    if jobs is not None and jobs < 1:
        raise BatchError("--jobs must be at least 1")
    if threads is not None and threads < 1:
        raise BatchError("--threads must be at least 1")
    out.mkdir(parents=True, exist_ok=True)

    rows: dict[str, dict] = {}
    todo = []
    for task in tasks:
        stored = None if force else completed_row(out, task)
        if stored is not None:
            rows[task.name] = dict(stored, reused=True)
        else:
            todo.append(task)
    # Defaults: one worker per core of this machine (at most one per video), the cores shared out as threads.
    cores = os.cpu_count() or 1
    jobs = jobs or max(1, min(len(todo), cores))
    threads = threads or max(1, cores // min(jobs, cores))
    ray = None
    if engine == "ray" and todo:
        ray, jobs = ray_connect(address, jobs, threads)  # before the progress bars: it may fail
    plan = Plan(mode, dict(settings or {}), str(out), threads)
    summary_path = out / "summary.csv"

    def ordered() -> list[dict]:
        return [rows[t.name] for t in tasks if t.name in rows]

    bars = _Bars(len(tasks), sum(_expected_frames(t.video) for t in todo), len(rows)) if show_progress else None

    def done(row: dict) -> None:
        rows[row["name"]] = row
        write_summary(summary_path, ordered())
        if bars:
            bars.finished(row)

    progress = bars.progress if bars else (lambda name, d, t: None)
    start = time.perf_counter()
    write_summary(summary_path, ordered())
    try:
        if todo:
            if ray is not None:
                run_ray(ray, todo, plan, jobs, progress, done)
            else:
                run_local(todo, plan, jobs, progress, done)
    finally:
        if ray is not None:
            ray.shutdown()
        if bars:
            bars.close()
        write_summary(summary_path, ordered())
    final = ordered()
    return {"videos": len(tasks), "ok": sum(r["status"] == "ok" for r in final),
            "failed": sum(r["status"] != "ok" for r in final), "reused": sum(bool(r["reused"]) for r in final),
            "frames": sum(int(r["frames"]) for r in final if not r["reused"]),
            "seconds": round(time.perf_counter() - start, 2), "engine": engine, "jobs": jobs, "threads": threads,
            "mode": mode, "out": str(out), "summary": str(summary_path)}


