"""ONNX Runtime sessions set up for a 2-core CPU shared with video decoding, MediaPipe and the browser."""

from __future__ import annotations

from pathlib import Path


def cpu_session(path: str | Path, threads: int | None = None):
    """An ``InferenceSession`` on the CPU without busy-waiting threads: on 2 shared cores spinning threads starve the
    video thread and any other process (leukocyte detector, measured: 73 -> 41 ms median with another job running).
    ``threads``: default 2, or the process's thread budget (:mod:`stream_app.threads`) when one is set."""
    import onnxruntime as ort

    from stream_app.threads import budget

    threads = threads or budget(2)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
