"""Live sessions in real browsers against the real app: how several share the CPU, and whether memory comes back.

    .venv/bin/python scripts/live_sessions.py load [--modes fingerspell,leukocyte,motion] [--seconds 30]
                                                   [--counts 1,2,3] [--browsers same|fair|nice|idle]
    .venv/bin/python scripts/live_sessions.py soak [--sessions 20] [--mode fingerspell]

Both start the app as the browser test does (``streamlit run`` on a free port of 127.0.0.1, which offers loopback ICE
candidates itself) and drive headless Chromium with a fake camera (Debian's chromium + chromium-driver, which ``./test.sh``
installs). Each camera file (y4m, written to a temporary folder, never kept) carries the frame's index as a
16-cell barcode along its bottom rows (12 bits of index + a 4-bit check), which the app passes through like any
pixels.

``load``: for k = 1 .. len(--modes), k browsers (one per mode, each its own camera: a held ASL "B" photo for
fingerspell, a slide panned over BCCD test images for leukocyte, moving shapes otherwise) stream at once. After a
warm-up, for ``--seconds`` it records per session:

* ``video_fps``: distinct frames the page's <video> presented per second (barcode changes, counted in
  ``requestVideoFrameCallback``: a re-sent frame is not a new one);
* ``lag_ms`` (median, p90, max): how far the shown video is behind the camera. The page also opens the fake camera
  itself (Chromium's fake device serves both captures the same frames) and, at each presented frame, reads both
  barcodes: lag = (camera index - shown index) / 30 fps;
* from the side panel: fps shown, fps analysed, overlay age, how long frames waited before the callback (above the
  stream's quickest), frames dropped (video) over the window, errors;
* from the browser's own WebRTC statistics (``getStats()`` of the component's connection): frames it encoded and
  sent a second, the mean time its packets waited to be sent (its pacer), its encode time, the size it sent, why it
  limited the quality, and the annotated frames it received and decoded;
* for the server: CPU (cores) and RSS; and the machine's load average.

``--browsers``: here the browsers run on the server's 2 cores, which a deployment does not do. ``same`` leaves them
as they start (Chromium, run as root, raises some of its threads to nice -8, above the server), ``fair`` runs them
without that privilege (nice 0, as an ordinary user's browser), ``nice`` at nice 19 and ``idle`` under SCHED_IDLE
(they get the CPU only when the server leaves it): an approximation of browsers on other machines. Each output line
names it.

The server's cap (``STREAM_APP_MAX_LIVE_SESSIONS``) is the number of modes; with all of them running, one more
session is started: its panel must say why it is not analysed and its video must keep moving (``over_cap_session``).

``soak``: ``--sessions`` sessions one after another, each opened in a new tab, streamed until 30 frames were
analysed, then ended in turn by closing the tab, by STOP (then closing the tab) and by reloading the page (then
closing the tab); after each, ``--settle`` seconds (longer than the app's 10 s idle release) and the server's RSS is
sampled. Prints each sample and the growth from the first to the last (issue 12: <= 10%). The server runs with
``MALLOC_ARENA_MAX=2`` as ``./run.sh`` sets it (``--arenas 0``: glibc's default, for comparison).

Prints one JSON object per measurement to stdout (progress to stderr). Exit code 0 unless a session failed to start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import test_browser as tb  # noqa: E402 - the browser test's helpers: launch, poll, click, panel text

from stream_app.config import data_dir  # noqa: E402
from stream_app.synthetic import moving_shapes, write_y4m  # noqa: E402

FPS = 30
LOOP = 450  # camera frames per loop (15 s): lags up to 15 s are told apart
CELLS, STRIP = 16, 24  # barcode cells along the bottom, strip height (pixels of 480)
TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[live_sessions {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- camera files -----------------------------------------------------------------------------------------------

def check_bits(index: int) -> int:
    return (index * 7 + 3) % 16


def stamp(frame: np.ndarray, index: int) -> np.ndarray:
    """The frame with ``index`` as a barcode in its bottom STRIP rows (white = 1)."""
    out = frame.copy()
    h, w = out.shape[:2]
    value = (index << 4) | check_bits(index)
    for bit in range(CELLS):
        on = (value >> (CELLS - 1 - bit)) & 1
        x1, x2 = round(bit * w / CELLS), round((bit + 1) * w / CELLS)
        out[h - STRIP:h, x1:x2] = 235 if on else 16
    return out


def _held_letter() -> np.ndarray:
    folder = data_dir() / "asl_roboflow_letters/datasets/american_sign_language/test/images"
    photo = cv2.cvtColor(cv2.imread(str(sorted(folder.glob("B19*_jpg.rf.*.jpg"))[0])), cv2.COLOR_BGR2RGB)
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[32:448, 112:528] = cv2.resize(photo, (416, 416))
    return frame


def _slide_frames(n: int):
    """A window panned right and back over a row of BCCD test images (the leukocyte test's slide, looped)."""
    from stream_app.modes.leukocyte.data import load_split

    mosaic = np.hstack([s.load() for s in load_split(data_dir() / "bccd", "test")[:4]])
    end = mosaic.shape[1] - 640
    xs = [round(end * (0.5 - 0.5 * np.cos(2 * np.pi * i / n))) for i in range(n)]
    for x in xs:
        yield np.ascontiguousarray(cv2.resize(mosaic[:, x:x + 640], (640, 480)))


def camera_file(mode: str, folder: Path) -> Path:
    path = folder / f"{mode}.y4m"
    if not path.exists():
        if mode == "fingerspell":
            held = _held_letter()
            frames = (held for _ in range(LOOP))
        elif mode == "leukocyte":
            frames = _slide_frames(LOOP)
        else:
            frames = moving_shapes(LOOP, 640, 480, seed=3)
        write_y4m(path, (stamp(f, i) for i, f in enumerate(frames)), fps=FPS)
    return path


# The page's side of the measurement (runs in the component's iframe, after START): open the fake camera once more,
# and at each frame the output <video> presents, read both barcodes.
PROBE_JS = """
const CELLS = %d, STRIP = %d;
if (!window.__probe) {
  const P = window.__probe = {samples: [], error: null, cam: null};
  navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}, height: {ideal: 480}, frameRate: {ideal: 30}},
                                       audio: false}).then(stream => {
    const cam = document.createElement('video');
    cam.muted = true; cam.playsInline = true; cam.srcObject = stream; cam.style.display = 'none';
    document.body.appendChild(cam); cam.play(); P.cam = cam;
  }).catch(e => { P.error = String(e); });
  const canvas = document.createElement('canvas');
  canvas.width = 640; canvas.height = STRIP;
  const g = canvas.getContext('2d', {willReadFrequently: true});
  const code = v => {
    if (!v || v.readyState < 2 || !v.videoWidth) return null;
    const sh = STRIP * v.videoHeight / 480;
    g.drawImage(v, 0, v.videoHeight - sh, v.videoWidth, sh, 0, 0, 640, STRIP);
    const d = g.getImageData(0, 0, 640, STRIP).data;
    const means = [];
    for (let b = 0; b < CELLS; b++) {
      const cx = Math.round((b + 0.5) * 640 / CELLS);
      let s = 0, n = 0;
      for (let y = 6; y < STRIP - 6; y++) for (let x = cx - 10; x < cx + 10; x++) { s += d[(y * 640 + x) * 4 + 1]; n++; }
      means.push(s / n);
    }
    const lo = Math.min(...means), hi = Math.max(...means);
    if (hi - lo < 40) return null;  // no code here (darkened frames of a refused session keep a weaker one)
    let value = 0;
    for (const m of means) value = value * 2 + (m > (lo + hi) / 2 ? 1 : 0);
    const index = value >> 4;
    return ((index * 7 + 3) %% 16) === (value & 15) ? index : null;
  };
  const out = document.querySelector('video');
  P.out = out;
  const tick = () => {
    P.samples.push([Date.now(), code(out), code(P.cam)]);
    if (P.samples.length > 30000) P.samples.splice(0, 15000);
    out.requestVideoFrameCallback(tick);
  };
  out.requestVideoFrameCallback(tick);
}
return window.__probe.error;
""" % (CELLS, STRIP)


# Every frame of the page keeps its RTCPeerConnections (before the component makes one), so the probe can read the
# browser's own WebRTC statistics: how long its packets waited to be sent, why it lowered the quality, the size it
# encoded at.
KEEP_PEER_CONNECTIONS_JS = """
(() => {
  const Native = window.RTCPeerConnection;
  if (!Native || Native.__kept) return;
  const pcs = window.__pcs = [];
  const Kept = function (...args) { const pc = new Native(...args); pcs.push(pc); return pc; };
  Kept.prototype = Native.prototype;
  Object.setPrototypeOf(Kept, Native);
  Kept.__kept = true;
  window.RTCPeerConnection = Kept;
})();
"""

STATS_JS = """
const done = arguments[arguments.length - 1];
const pcs = (window.__pcs || []).filter(pc => pc.connectionState === 'connected');
if (!pcs.length) { done(null); return; }
pcs[pcs.length - 1].getStats().then(report => {
  const out = {};
  report.forEach(s => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      out.sent = {framesEncoded: s.framesEncoded, framesSent: s.framesSent, packetsSent: s.packetsSent,
                  totalPacketSendDelay: s.totalPacketSendDelay, totalEncodeTime: s.totalEncodeTime,
                  qualityLimitationReason: s.qualityLimitationReason, frameWidth: s.frameWidth,
                  frameHeight: s.frameHeight, targetBitrate: s.targetBitrate,
                  qualityLimitationDurations: s.qualityLimitationDurations};
    } else if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.received = {framesReceived: s.framesReceived, framesDecoded: s.framesDecoded, framesDropped: s.framesDropped,
                      jitterBufferDelay: s.jitterBufferDelay, jitterBufferEmittedCount: s.jitterBufferEmittedCount,
                      packetsLost: s.packetsLost};
    } else if (s.type === 'candidate-pair' && s.nominated) {
      out.availableOutgoingBitrate = s.availableOutgoingBitrate;
      out.rtt = s.currentRoundTripTime;
    }
  });
  done(out);
}, e => done({error: String(e)}));
"""


def browser_stats(driver) -> dict | None:
    """The browser's WebRTC statistics of the component's connection (cumulative counters), or None."""
    driver.switch_to.frame(tb._component_iframe(driver))
    try:
        return driver.execute_async_script(STATS_JS)
    finally:
        driver.switch_to.default_content()


def stats_delta(before: dict | None, after: dict | None, seconds: float) -> dict | None:
    """Over the window: the browser's sent and received frames a second, the mean time its packets waited to be sent
    (its pacer: a queue on the browser's side), why it limited the quality, and the size it encoded at."""
    if not before or not after or "sent" not in before or "sent" not in after:
        return None
    a, b = before["sent"], after["sent"]
    dp = (b.get("packetsSent") or 0) - (a.get("packetsSent") or 0)
    out = {"encoded_per_s": round(((b.get("framesEncoded") or 0) - (a.get("framesEncoded") or 0)) / seconds, 1),
           "sent_per_s": round(((b.get("framesSent") or 0) - (a.get("framesSent") or 0)) / seconds, 1),
           "packet_send_delay_ms": round(1000 * ((b.get("totalPacketSendDelay") or 0)
                                                 - (a.get("totalPacketSendDelay") or 0)) / dp, 1) if dp else None,
           "encode_ms": round(1000 * ((b.get("totalEncodeTime") or 0) - (a.get("totalEncodeTime") or 0))
                              / max(1, (b.get("framesEncoded") or 0) - (a.get("framesEncoded") or 0)), 1),
           "size": f"{b.get('frameWidth')}x{b.get('frameHeight')}", "limited_by": b.get("qualityLimitationReason"),
           "target_kbps": round((b.get("targetBitrate") or 0) / 1000),
           "available_out_kbps": round((after.get("availableOutgoingBitrate") or 0) / 1000)}
    ra, rb = before.get("received"), after.get("received")
    if ra and rb:
        out["received_per_s"] = round(((rb.get("framesReceived") or 0) - (ra.get("framesReceived") or 0)) / seconds, 1)
        out["decoded_per_s"] = round(((rb.get("framesDecoded") or 0) - (ra.get("framesDecoded") or 0)) / seconds, 1)
        emitted = (rb.get("jitterBufferEmittedCount") or 0) - (ra.get("jitterBufferEmittedCount") or 0)
        out["jitter_buffer_ms"] = round(1000 * ((rb.get("jitterBufferDelay") or 0) - (ra.get("jitterBufferDelay") or 0))
                                        / emitted, 1) if emitted else None
    return out


# ---- the app ----------------------------------------------------------------------------------------------------

def start_app(env_extra: dict, arenas: int = 2) -> tuple[subprocess.Popen, str, Path]:
    """The app as ``./run.sh`` serves it (``MALLOC_ARENA_MAX=arenas``; 0: glibc's default), on a free port."""
    port = tb._free_port()
    logfile = Path(tempfile.mkdtemp(prefix="live_sessions_")) / "streamlit.log"
    env = dict(os.environ, **env_extra)
    env.pop("MALLOC_ARENA_MAX", None)
    if arenas > 0:
        env["MALLOC_ARENA_MAX"] = str(arenas)
    env.pop("STREAM_APP_ICE_SERVERS", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    with logfile.open("w") as out:
        app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "stream_app/ui/app.py", "--server.port",
                                str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                                "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    tb._poll(lambda: app.poll() is None and tb._get(f"{url}/_stcore/health")[1] == "ok", timeout=180,
             what="the app's health endpoint")
    return app, url, logfile


def stop_app(app: subprocess.Popen) -> None:
    app.terminate()
    try:
        app.wait(30)
    except subprocess.TimeoutExpired:
        app.kill()
        app.wait(10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def panel_numbers(driver, page: str = "live") -> dict:
    text = tb._panel_text(driver, page)

    def number(pattern, default=None):
        found = re.search(pattern, text, re.M)
        return float(found.group(1)) if found else default

    return {"shown": number(r"^frames shown: (\d+)", 0), "fps_shown": number(r"^fps shown: ([\d.]+)"),
            "analysed": number(r"^frames analysed: (\d+)", 0), "fps_analysed": number(r"^fps analysed: ([\d.]+)"),
            "overlay_age_ms": number(r"^overlay age \(median\): ([\d.]+) ms"),
            "waited_ms": number(r"^waited before the callback \(median\): ([\d.]+) ms"),
            "dropped": number(r"^frames dropped: (\d+)", 0), "errors": number(r"^errors: (\d+)", 0),
            "refused": "live sessions (STREAM_APP_MAX_LIVE_SESSIONS" in text}


def open_session(driver, url: str, mode: str, min_analysed: int = 30, timeout: float = 240.0) -> dict:
    driver.get(f"{url}/?mode={mode}")
    tb._poll(lambda: "frames shown: 0" in tb._panel_text(driver, "live"), timeout=180, what=f"the {mode} panel")
    tb._click_in_component(driver, "START")
    return tb._poll(lambda: (lambda n: n if n["analysed"] >= min_analysed or n["refused"] else None)(
        panel_numbers(driver)), timeout=timeout, interval=1.0, what=f"{min_analysed} analysed {mode} frames",
        context=lambda: tb._panel_text(driver, "live"))


# ---- load ---------------------------------------------------------------------------------------------------------

def install_probe(driver) -> None:
    driver.switch_to.frame(tb._component_iframe(driver))
    try:
        error = driver.execute_script(PROBE_JS)
        if error:
            raise RuntimeError(f"the probe could not open the camera: {error}")
    finally:
        driver.switch_to.default_content()


def probe_samples(driver, since_ms: float) -> list:
    driver.switch_to.frame(tb._component_iframe(driver))
    try:
        return driver.execute_script("return window.__probe.samples.filter(s => s[0] >= arguments[0]);", since_ms)
    finally:
        driver.switch_to.default_content()


def summarise_probe(samples: list, seconds: float) -> dict:
    shown = [s for s in samples if s[1] is not None]
    changes = sum(1 for a, b in zip(shown, shown[1:]) if a[1] != b[1])
    lags = [((s[2] - s[1]) % LOOP) * 1000.0 / FPS for s in samples if s[1] is not None and s[2] is not None]
    out = {"video_fps": round(changes / seconds, 1), "samples": len(samples), "decoded": len(shown),
           "lag_samples": len(lags)}
    if lags:
        q = np.percentile(lags, [50, 90, 100])
        out["lag_ms"] = {"median": round(float(q[0])), "p90": round(float(q[1])), "max": round(float(q[2]))}
    return out


def over_cap(url: str, camera: Path, mode: str, folder: Path, seconds: float = 10.0) -> dict:
    """One more session while the cap's worth run: its panel must say why it is not analysed, and its video must
    keep moving (darkened camera frames with the message), not freeze."""
    driver = tb._launch_browser(camera, folder / "profile-over-cap")
    try:
        numbers = open_session(driver, url, mode)
        install_probe(driver)
        time.sleep(2)
        start_ms = time.time() * 1000
        time.sleep(seconds)
        probe = summarise_probe(probe_samples(driver, start_ms), seconds)
        text = tb._panel_text(driver, "live")
        message = next((line for line in text.splitlines() if "STREAM_APP_MAX_LIVE_SESSIONS" in line), None)
        return {"over_cap_session": mode, "refused": numbers["refused"], "message": message,
                "analysed": panel_numbers(driver)["analysed"], "video_fps": probe["video_fps"],
                "lag_ms": probe.get("lag_ms")}
    finally:
        driver.quit()


BROWSER_PRIORITY = {"same": None, "fair": ["setpriv", "--bounding-set=-sys_nice", "--"],
                    "nice": ["nice", "-n", "19"], "idle": ["chrt", "--idle", "0"]}


def deprioritise_browsers(how: str, folder: Path) -> None:
    """``same``: Chromium as it starts here (as root it raises some of its threads to nice -8, above the server).
    ``fair``: without CAP_SYS_NICE, as a browser of an ordinary user runs: nice 0, like the server (one machine for
    everything). ``nice`` (nice 19) and ``idle`` (SCHED_IDLE: CPU only when nothing else wants it) approximate
    browsers on other machines, which is what a deployment has. Chromium is started through a wrapper that runs it
    so (every thread it starts inherits it)."""
    prefix = BROWSER_PRIORITY[how]
    if prefix is None:
        return
    wrapper = folder / f"chromium-{how}"
    wrapper.write_text(f"#!/bin/sh\nexec {' '.join(prefix)} {tb.CHROMIUM} \"$@\"\n")
    wrapper.chmod(0o755)
    tb.CHROMIUM = wrapper


def cmd_load(args) -> int:
    modes = args.modes.split(",")
    folder = Path(tempfile.mkdtemp(prefix="live_cameras_"))
    deprioritise_browsers(args.browsers, folder)
    cameras = {m: camera_file(m, folder) for m in modes}
    app, url, logfile = start_app({"STREAM_APP_MAX_LIVE_SESSIONS": str(max(len(modes), 1))})
    failed = 0
    try:
        for k in (args.counts or range(1, len(modes) + 1)):
            chosen = modes[:k]
            drivers = []
            try:
                for i, mode in enumerate(chosen):
                    driver = tb._launch_browser(cameras[mode], folder / f"profile-{k}-{i}")
                    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                           {"source": KEEP_PEER_CONNECTIONS_JS})
                    drivers.append((mode, driver))
                    log(f"{k} session(s): starting {mode}")
                    open_session(driver, url, mode)
                for _, driver in drivers:
                    install_probe(driver)
                time.sleep(args.warmup)
                before = {mode: panel_numbers(d) for mode, d in drivers}
                stats0 = {mode: browser_stats(d) for mode, d in drivers}
                start_ms, cpu0, t0 = time.time() * 1000, cpu_seconds(app.pid), time.monotonic()
                time.sleep(args.seconds)
                seconds, cpu1 = time.monotonic() - t0, cpu_seconds(app.pid)
                sessions = []
                for mode, driver in drivers:
                    after = panel_numbers(driver)
                    b = before[mode]
                    row = {"mode": mode, **summarise_probe(probe_samples(driver, start_ms), seconds),
                           "browser": stats_delta(stats0[mode], browser_stats(driver), seconds),
                           "panel": {"fps_shown": after["fps_shown"], "fps_analysed": after["fps_analysed"],
                                     "shown_per_s": round((after["shown"] - b["shown"]) / seconds, 1),
                                     "analysed_per_s": round((after["analysed"] - b["analysed"]) / seconds, 1),
                                     "overlay_age_ms": after["overlay_age_ms"], "waited_ms": after["waited_ms"],
                                     "dropped_per_s": round((after["dropped"] - b["dropped"]) / seconds, 1),
                                     "errors": after["errors"], "refused": after["refused"]}}
                    sessions.append(row)
                print(json.dumps({"sessions": k, "browsers": args.browsers, "seconds": round(seconds, 1), "server_cpu_cores":
                                  round((cpu1 - cpu0) / seconds, 2), "server_rss_mb": round(rss_mb(app.pid)),
                                  "load_average": os.getloadavg(), "per_session": sessions}), flush=True)
                if k == len(modes) and args.over_cap:
                    print(json.dumps(over_cap(url, cameras[modes[-1]], modes[-1], folder)), flush=True)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next k
                failed += 1
                log(f"{k} session(s) failed: {type(exc).__name__}: {exc}")
            finally:
                for _, driver in drivers:
                    driver.quit()
                time.sleep(5)
    finally:
        stop_app(app)
        log(f"server log: {logfile}")
    return 1 if failed else 0


# ---- soak ---------------------------------------------------------------------------------------------------------

def cmd_soak(args) -> int:
    folder = Path(tempfile.mkdtemp(prefix="live_cameras_"))
    camera = camera_file(args.mode, folder)
    app, url, logfile = start_app({}, arenas=args.arenas)
    driver = tb._launch_browser(camera, folder / "profile")
    ways = ("tab closed", "STOP", "page reload")
    samples = []
    try:
        home = driver.current_window_handle
        for i in range(args.sessions):
            way = ways[i % len(ways)]
            driver.switch_to.new_window("tab")
            open_session(driver, url, args.mode)
            if way == "STOP":
                tb._click_in_component(driver, "STOP")
            elif way == "page reload":
                driver.refresh()
                tb._poll(lambda: "frames shown: 0" in tb._panel_text(driver, "live"), timeout=180,
                         what="the reloaded panel")
            driver.close()
            driver.switch_to.window(home)
            time.sleep(args.settle)
            sample = {"session": i + 1, "ended_by": way, "rss_mb": round(rss_mb(app.pid), 1),
                      "threads": len(os.listdir(f"/proc/{app.pid}/task"))}
            samples.append(sample)
            print(json.dumps(sample), flush=True)
        first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
        print(json.dumps({"mode": args.mode, "sessions": len(samples), "rss_after_first_mb": first,
                          "rss_after_last_mb": last, "growth": round(last / first - 1.0, 3),
                          "max_rss_mb": max(s["rss_mb"] for s in samples), "settle_s": args.settle,
                          "malloc_arena_max": args.arenas or "glibc default",
                          "load_average": os.getloadavg()}), flush=True)
    finally:
        driver.quit()
        stop_app(app)
        log(f"server log: {logfile}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load", help="1..N concurrent sessions: video fps, lag, analysed fps, drops")
    p.add_argument("--modes", default="fingerspell,leukocyte,motion")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--warmup", type=float, default=10.0)
    p.add_argument("--no-over-cap", dest="over_cap", action="store_false",
                   help="skip the extra session over the cap (STREAM_APP_MAX_LIVE_SESSIONS = number of modes)")
    p.add_argument("--counts", type=lambda text: [int(k) for k in text.split(",")],
                   help="numbers of concurrent sessions to measure, e.g. 2,3 (default 1..number of modes)")
    p.add_argument("--browsers", choices=sorted(BROWSER_PRIORITY), default="same",
                   help="the browsers' CPU priority: same (as Chromium starts here, as root: some threads at nice -8), "
                        "fair (nice 0 like the server, no CAP_SYS_NICE), nice (19) or idle (SCHED_IDLE): the last "
                        "two approximate browsers on other machines, as in a deployment")
    p.set_defaults(func=cmd_load)
    p = sub.add_parser("soak", help="sessions opened and closed one after another: server RSS")
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--mode", default="fingerspell")
    p.add_argument("--settle", type=float, default=15.0)
    p.add_argument("--arenas", type=int, default=2, help="MALLOC_ARENA_MAX for the server (run.sh: 2; 0: glibc's "
                                                           "default, for comparison)")
    p.set_defaults(func=cmd_soak)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
