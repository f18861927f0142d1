"""The side panel's and the pages' text for a result: plain lines (the browser test reads them), the timings line,
and counts over time as CSV bytes. Not Streamlit."""

from __future__ import annotations

from stream_app.results import FrameResult
from stream_app.ui.channel import PanelState
from stream_app.ui.loopback_ice import is_loopback

NO_CONNECTION_AFTER_S = 8.0  # a local connection forms in about a second; at 8 s something is wrong


def result_lines(result: FrameResult | None) -> list[str]:
    """Plain lines describing a result (used by the side panel; the browser test reads them)."""
    if result is None:
        return ["no frame processed yet"]
    lines = result.extras.lines() if result.extras is not None else []
    if result.top_k:
        lines.append("top-k: " + ", ".join(f"{label} {p:.2f}" for label, p in result.top_k[:5]))
    if result.caption:
        lines.append(f"text: {result.caption}")
    for name, value in result.counts.items():
        lines.append(f"{name}: {value}")
    if result.detections and not result.counts:
        lines.append(f"detections: {len(result.detections)}")
    if result.warning:
        lines.append(f"warning: {result.warning}")
    if result.error:
        lines.append(f"error: {result.error}")
    return lines or ["(nothing found in this frame)"]


def panel_lines(state: PanelState, running: bool = True) -> list[str]:
    """The side panel's text: frames shown and analysed, how fresh the overlay is, frames dropped, latency, errors,
    then the current result. Frames go back to the browser at the camera's rate; the analysis takes the newest frame
    each time it is free, and the overlay drawn is its latest result.

    ``fps shown`` is the rate of annotated frames that went out to the browser
    (:class:`~stream_app.ui.channel.DeliveryMeter`), with the callback's own rate on a line of its own when they
    differ; 0 once the stream has stopped (``running=False``)."""
    latency = "-" if state.latency_ms is None else f"{state.latency_ms:.1f} ms"
    age = "-" if state.overlay_age_ms is None else f"{state.overlay_age_ms:.0f} ms"
    behind = "-" if state.behind_ms is None else f"{state.behind_ms:.0f} ms"
    size = f" at {state.size[0]}x{state.size[1]}" if state.size else ""
    skipped = max(0, state.frames - state.analysed)
    lines = [f"frames shown: {state.frames}{size}",
             f"fps shown: {state.fps:.1f}" if running else "fps shown: 0.0 (not streaming)"]
    if running and (abs(state.callback_fps - state.fps) >= 0.5 or state.undelivered):
        lines.append(f"handed back by the callback: {state.callback_fps:.1f}/s; {state.undelivered} never sent")
    lines += [f"frames analysed: {state.analysed}",
              f"fps analysed: {state.analysed_fps:.1f}" if running else "fps analysed: 0.0 (not streaming)",
              f"overlay age (median): {age}",
              f"waited before the callback (median): {behind}",
              f"frames dropped: {state.dropped} (video), {skipped} not analysed (the analysis takes the newest frame)",
              f"latency (callback, median): {latency}", f"errors: {state.errors}"]
    lines += result_lines(state.result)
    timings = timings_line(state.result, callback_ms=state.latency_ms)
    if timings:
        lines.append(f"timings: {timings}")
    return lines


def timings_line(result: FrameResult | None, callback_ms: float | None = None) -> str:
    """``total`` first with its stages in brackets. On a live stream (``callback_ms`` given) the callback's own time
    comes first and the result's times, which the analysis thread spent, follow as "model (background)": they are not
    part of the frame's time."""
    if result is None or not result.timings_ms:
        return "" if callback_ms is None else f"callback {callback_ms:.1f} ms"
    timings = dict(result.timings_ms)
    total = timings.pop("total", None)
    stages = ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
    if total is not None:
        model = f"total {total:.1f} ms" + (f" ({stages})" if stages else "")
    else:
        model = f"{stages} ms"
    if callback_ms is None:
        return model
    return f"callback {callback_ms:.1f} ms; model (background) {model}"


def counts_csv_bytes(rows: list[dict]) -> bytes:
    """Counts over time as CSV bytes, written by :func:`stream_app.sinks.write_counts_csv` (one format for all)."""
    import tempfile
    from pathlib import Path

    from stream_app.sinks import write_counts_csv

    with tempfile.TemporaryDirectory() as tmp:
        path = write_counts_csv(Path(tmp) / "counts.csv", rows)
        return path.read_bytes()


def no_connection_lines(waited_s: float, bind_address: str | None, ice_servers: bool, camera: bool) -> list[str]:
    """What to check when START was pressed ``waited_s`` seconds ago and no frame has arrived (the page shows it after
    :data:`NO_CONNECTION_AFTER_S`). ``bind_address`` is the server's (``server.address``), ``ice_servers`` whether
    STREAM_APP_ICE_SERVERS names any, ``camera`` whether the browser sends a camera (Live) or only receives (replay)."""
    lines = [f"No video after {waited_s:.0f} s: the browser and this server have not connected. What to check:"]
    if camera:
        lines.append("- The camera: allowed for this page (the icon in the address bar), and not in use by another "
                     "program.")
    if is_loopback(bind_address):
        lines += [
            f"- This page must be opened on the computer the server runs on (it listens on {bind_address} only), "
            "at http://127.0.0.1 or http://localhost.",
            "- No network (Wi-Fi off, no cable)? Browsers leave the loopback address out of WebRTC: start Chrome or "
            "Chromium with --allow-loopback-in-peer-connection, or set media.peerconnection.ice.loopback to true in "
            "Firefox's about:config. With any network connection up, no setting is needed.",
        ]
    else:
        lines += [
            "- Another computer must reach this server's address directly (same network), and its firewall must let "
            "WebRTC's UDP through.",
            "- Across networks (NAT, VPN) a TURN server is needed: set STREAM_APP_ICE_SERVERS"
            + (" (it is set: check the TURN server's address and credentials)." if ice_servers else "."),
        ]
    lines.append("- Then press STOP and START again.")
    return lines


def letter_runs(records: list[dict], min_s: float = 0.2) -> list[tuple[str, float, float]]:
    """The letters a video showed, from its JSONL records (``letter``, ``time_s``): consecutive frames with the same
    letter become one ``(letter, start_s, end_s)``; runs shorter than ``min_s`` (a letter flickering past while the
    hand moves) are left out. Frames without a letter end a run."""
    runs: list[list] = []
    last = None
    for record in records:
        letter, t = record.get("letter"), float(record.get("time_s") or 0.0)
        if letter is not None and runs and last == letter:
            runs[-1][2] = t
        elif letter is not None:
            runs.append([letter, t, t])
        last = letter
    step = _frame_step(records)
    return [(letter, start, end + step) for letter, start, end in runs if end + step - start >= min_s]


def _frame_step(records: list[dict]) -> float:
    times = [float(r.get("time_s") or 0.0) for r in records[:50]]
    steps = [b - a for a, b in zip(times, times[1:]) if b > a]
    return min(steps) if steps else 0.0


def letters_line(runs: list[tuple[str, float, float]]) -> str:
    """``B 0.0-1.3 s, C 1.5-2.1 s``"""
    return ", ".join(f"{letter} {start:.1f}-{end:.1f} s" for letter, start, end in runs)


def display_width(width: int, height: int, max_height: int = 640, full: int = 900) -> int:
    """A width to draw a ``width`` x ``height`` picture at so that it is at most ``max_height`` tall (a portrait
    phone video would otherwise fill several screens) and at most ``full`` wide."""
    if width <= 0 or height <= 0:
        return full
    return max(120, min(full, round(max_height * width / height)))
