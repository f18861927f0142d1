"""The thread budget of one process: how many threads its numeric libraries may use.

A batch worker gets a fixed budget (``batch --threads``) so that N workers on a machine do not each spawn a thread
per core and fight over them. :func:`apply` sets it for the libraries that read it: OpenMP (torch's intra-op pool,
through ``OMP_NUM_THREADS`` before torch loads and ``torch.set_num_threads`` after), OpenCV, and ONNX Runtime
sessions made by :func:`stream_app.onnx_cpu.cpu_session` (``STREAM_APP_THREADS``). MediaPipe's hand model runs on one
thread whatever is set.
"""

from __future__ import annotations

import os
import sys

ENV = "STREAM_APP_THREADS"


def budget(default: int) -> int:
    """The process's budget (``STREAM_APP_THREADS``), else ``default``."""
    try:
        return max(1, int(os.environ.get(ENV, "")))
    except ValueError:
        return default


def apply(threads: int) -> None:
    """Give this process ``threads`` threads for numeric work (call it before the models load)."""
    threads = max(1, int(threads))
    os.environ[ENV] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    import cv2

    cv2.setNumThreads(threads)
