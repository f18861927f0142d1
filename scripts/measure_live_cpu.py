"""Measure the server's CPU per live session (the README's deployment notes).

    .venv/bin/python scripts/measure_live_cpu.py MODE CAMERA.y4m [SECONDS]

Starts the app as the browser test does (on 127.0.0.1, no ICE server), opens the Live page with ``?mode=MODE`` in headless
Chromium whose fake camera plays CAMERA.y4m (e.g. one written by ``stream_app.synthetic.write_y4m``), clicks START,
waits for 60 processed frames and 5 s more, then reads the CPU time of the Streamlit process (``/proc/PID/stat``
utime + stime, all its threads) and of Chromium's processes over SECONDS (default 20). Prints cores used and frames
processed per second. Needs Debian's chromium and chromium-driver (``./test.sh`` installs them).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_browser as tb  # noqa: E402 - the browser test's helpers: launch, poll, panel text

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def process_tree(pid: int) -> list[int]:
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [p for child in children for p in process_tree(int(child))]


def total_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids if Path(f"/proc/{p}").exists())


def main() -> int:
    mode, camera = sys.argv[1], Path(sys.argv[2]).resolve()
    window = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    port = tb._free_port()
    env = dict(os.environ)
    env.pop("STREAM_APP_ICE_SERVERS", None)  # bound to 127.0.0.1, the app offers its loopback ICE candidate itself
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "stream_app/ui/app.py", "--server.port",
                            str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                            "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        tb._poll(lambda: tb._get(f"{url}/_stcore/health")[1] == "ok", timeout=120, what="the app")
        driver = tb._launch_browser(camera, Path(f"/tmp/measure_live_cpu_{os.getpid()}"))
        try:
            driver.get(f"{url}/?mode={mode}")
            tb._poll(lambda: "frames shown: 0" in tb._panel_text(driver, "live"), timeout=180, what="the panel")

            def frames() -> int:
                found = re.search(r"frames shown: (\d+)", tb._panel_text(driver, "live"))
                return int(found.group(1)) if found else 0

            tb._start_and_wait(driver, lambda: frames() >= 60, ">= 60 frames shown")
            time.sleep(5)
            chromium = process_tree(driver.service.process.pid)
            f0, a0, c0, t0 = frames(), cpu_seconds(app.pid), total_cpu(chromium), time.monotonic()
            time.sleep(window)
            f1, a1, c1, t1 = frames(), cpu_seconds(app.pid), total_cpu(chromium), time.monotonic()
            print(f"mode {mode}: server CPU {(a1 - a0) / (t1 - t0):.2f} cores, chromium {(c1 - c0) / (t1 - t0):.2f} "
                  f"cores, {(f1 - f0) / (t1 - t0):.1f} frames shown/s over {t1 - t0:.0f} s; load average "
                  f"{os.getloadavg()[0]:.1f}")
        finally:
            driver.quit()
    finally:
        app.terminate()
        app.wait(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
