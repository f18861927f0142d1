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


def panel_lines(state: PanelState) -> list[str]:
    """The side panel's text: frames shown and analysed, how fresh the overlay is, frames dropped, latency, errors,
    then the current result. Frames go back to the browser at the camera's rate; the analysis takes the newest frame
    each time it is free, and the overlay drawn is its latest result."""
    latency = "-" if state.latency_ms is None else f"{state.latency_ms:.1f} ms"
    age = "-" if state.overlay_age_ms is None else f"{state.overlay_age_ms:.0f} ms"
    behind = "-" if state.behind_ms is None else f"{state.behind_ms:.0f} ms"
    size = f" at {state.size[0]}x{state.size[1]}" if state.size else ""
    skipped = max(0, state.frames - state.analysed)
    lines = [f"frames shown: {state.frames}{size}", f"fps shown: {state.fps:.1f}",
             f"frames analysed: {state.analysed}", f"fps analysed: {state.analysed_fps:.1f}",
             f"overlay age (median): {age}",
             f"waited before the callback (median): {behind}",
             f"frames dropped: {state.dropped} (video), {skipped} not analysed (the analysis takes the newest frame)",
             f"latency (callback, median): {latency}", f"errors: {state.errors}"]
    lines += result_lines(state.result)
    timings = timings_line(state.result)
    if timings:
        lines.append(f"timings: {timings}")
    return lines


def timings_line(result: FrameResult | None) -> str:
    if result is None or not result.timings_ms:
        return ""
    return ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items())


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
