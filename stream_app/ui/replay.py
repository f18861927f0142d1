"""Replay page: a video file (upload or an own-made sample from ``assets/``) through the chosen mode.

Two ways: "Process the file" runs :func:`stream_app.pipeline.process_video` over every frame (progress bar), plays the
annotated MP4 in the page and offers it, the per-frame JSONL and (for counting modes) the counts CSV as downloads;
"Live replay" streams the file through WebRTC at its own frame rate (aiortc ``MediaPlayer`` in RECVONLY mode, no
seeking) in the same view as the Live page (:func:`stream_app.ui.webrtc_view.webrtc_view`).
"""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st
from streamlit_webrtc import WebRtcMode

from stream_app import config
from stream_app.errors import InputError
from stream_app.pipeline import process_video
from stream_app.sources import probe_video
from stream_app.ui import common
from stream_app.ui.panel import display_width, letter_runs, letters_line
from stream_app.ui.webrtc_view import webrtc_view

UPLOAD_TYPES = ["mp4", "mov", "avi", "mkv", "webm"]


def sample_videos() -> list[Path]:
    return sorted(p for p in config.ASSETS_DIR.glob("*") if p.suffix.lower().lstrip(".") in UPLOAD_TYPES)


def save_upload(upload, folder: Path) -> Path:
    """Write an uploaded file into the session's temp folder (once per upload) and return its path."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload.name).name)[-80:] or "video"
    path = folder / f"{upload.file_id}_{safe}"
    if not path.exists():
        path.write_bytes(upload.getbuffer())
    return path


def display_name(path: Path) -> str:
    """The name the user knows: uploads are saved as ``<file id>_<name>`` in the session's temp folder."""
    return path.name.split("_", 1)[-1] if path.parent == common.session_tmp("replay") else path.name


def choose_video() -> Path | None:
    source = st.radio("Video", ["Upload a video", "Sample from assets/"], horizontal=True, key="replay-source")
    if source == "Upload a video":
        upload = st.file_uploader("Video file", type=UPLOAD_TYPES, key="replay-upload",
                                  help="mp4, mov, avi, mkv or webm; it stays in a temporary folder on this server.")
        return save_upload(upload, common.session_tmp("replay")) if upload is not None else None
    samples = sample_videos()
    if not samples:
        st.warning("No sample video in assets/ (make one with `python scripts/make_sample_video.py`).")
        return None
    return st.selectbox("Sample", samples, format_func=lambda p: p.name, key="replay-sample")


def process_file(path: Path, info, spec, settings: dict) -> None:
    processor = common.create_processor(spec, live=False, settings=settings)
    if processor is None:
        return
    folder = common.session_tmp("replay")
    stem = Path(display_name(path)).stem
    out = folder / f"{stem}_{spec.name}_annotated.mp4"
    jsonl = folder / f"{stem}_{spec.name}.jsonl"
    counts = folder / f"{stem}_{spec.name}_counts.csv"
    expected = info.frames or int(round(info.duration_s * info.fps))
    bar = st.progress(0.0, text="Processing...")

    def progress(done: int, total: int) -> None:
        total = total or expected
        if done % 5 == 0 or done == total:
            fraction = min(1.0, done / total) if total else 0.0
            bar.progress(fraction, text=f"Processing: {done} / {total or '?'} frames")

    st.session_state.pop("replay-output", None)
    try:
        summary = process_video(path, processor, out=out, jsonl=jsonl, progress=progress, annotate=spec.annotate,
                                counts_csv=counts)
    except InputError as exc:
        bar.empty()
        st.error(str(exc).replace(str(path), display_name(path)))
        return
    except Exception as exc:  # noqa: BLE001 - the app keeps serving whatever goes wrong in one run
        bar.empty()
        st.error(f"Processing failed: {type(exc).__name__}: {exc}")
        return
    finally:
        processor.close()
    bar.progress(1.0, text=f"Done: {summary.frames} frames")
    last = summary.last
    st.session_state["replay-output"] = {
        "source": display_name(path), "mode": spec.name, "out": out, "jsonl": jsonl, "frames": summary.frames,
        "fps": summary.fps, "errors": summary.errors, "warnings": summary.warnings,
        "counts": counts if summary.counted and spec.counts_over_time else None, "size": (info.width, info.height),
        "caption": (last.extras.caption_title, last.caption) if last is not None and last.caption else None,
        "letters": letters_line(letter_runs(_records(jsonl))),
    }


def _records(jsonl: Path) -> list[dict]:
    import json

    try:
        return [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def show_output() -> None:
    result = st.session_state.get("replay-output")
    if not result or not Path(result["out"]).exists():
        return
    st.success(f"{result['source']} with {result['mode']}: {result['frames']} frames at {result['fps']:.2f} fps, "
               f"{result['errors']} frame error(s)")
    for warning, n in result["warnings"].items():
        st.warning(f"{warning}: {n} frame(s)")
    if result.get("caption"):
        title, text = result["caption"]
        st.markdown(f"**{title}** (at the end of the video)")
        st.code(text, language=None, wrap_lines=True)
    if result.get("letters"):
        st.markdown("**Letters seen** (each held for at least 0.2 s)")
        st.code(result["letters"], language=None, wrap_lines=True)
    out, jsonl = Path(result["out"]), Path(result["jsonl"])
    st.video(str(out), width=display_width(*result.get("size", (0, 0))))
    cols = st.columns(3)
    cols[0].download_button("Annotated MP4", data=out.read_bytes, file_name=out.name, mime="video/mp4",
                            on_click="ignore", key="replay-dl-mp4")
    cols[1].download_button("Per-frame JSONL", data=jsonl.read_bytes, file_name=jsonl.name,
                            mime="application/jsonl", on_click="ignore", key="replay-dl-jsonl")
    if result.get("counts"):
        counts = Path(result["counts"])
        cols[2].download_button("Counts over time (CSV)", data=counts.read_bytes, file_name=f"{out.stem}_counts.csv",
                                mime="text/csv", on_click="ignore", key="replay-dl-csv")


def live_replay(path: Path, spec, settings: dict) -> None:
    from aiortc.contrib.media import MediaPlayer

    webrtc_view("replay", spec, settings, component_key="replay-live", mode=WebRtcMode.RECVONLY,
                media_stream_constraints={"video": True, "audio": False},
                player_factory=lambda: MediaPlayer(str(path)),
                caption="Streams the file at its own frame rate from the start (no seeking); STOP, then START to "
                        "replay.")


def render() -> None:
    st.title("Replay")
    spec = common.pick_mode("replay")
    if spec is None:
        return
    settings = common.settings_controls(spec, "replay")
    common.show_notice(spec)
    path = choose_video()
    if path is None:
        st.info("Upload a video or pick a sample.")
        show_output()
        return
    try:
        info = probe_video(path)
    except InputError as exc:
        st.error(str(exc).replace(str(path), display_name(path)))
        return
    st.caption(f"{info.width}x{info.height}, {info.fps:.2f} fps, {info.frames or '?'} frames, "
               f"{info.duration_s:.1f} s, {info.codec}")
    if not common.warm_up(spec):
        return
    # One view at a time (not tabs): a WebRTC component mounting in a hidden tab asks for a rerun, which would
    # interrupt a file being processed in the same run.
    view = st.radio("View", ["Process the file", "Live replay (WebRTC)"], horizontal=True, key="replay-view",
                    label_visibility="collapsed")
    if view == "Process the file":
        if st.button("Process", type="primary", key="replay-process"):
            process_file(path, info, spec, settings)
        show_output()
    else:
        live_replay(path, spec, settings)
