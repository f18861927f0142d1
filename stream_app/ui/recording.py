"""Recording the Live page's stream: the annotated video and the per-frame results of one browser session.

streamlit-webrtc takes an ``out_recorder_factory``: it calls it when the stream starts, feeds the returned aiortc
``MediaRecorder`` the annotated (output) track, and stops it when the stream ends, which is when the MP4 gets its
index and becomes playable; the JSONL is closed then too. The results go to a JSONL (the schema of ``process``) from the frame callback, one
record per processed frame, with ``time_s`` from the stream's timestamps counted from the recording's first frame;
frames that arrive while the callback is busy are dropped by streamlit-webrtc, so the MP4 (which repeats the last
annotated frame) can hold more frames than the JSONL has records: match them by time. No Streamlit here, so this is
tested without a browser; the page only draws the checkbox and the downloads.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from stream_app.results import FrameResult
from stream_app.sinks import JsonlSink


RECORD_FPS = 30  # aiortc's MediaRecorder encodes H.264 at this frame rate


def _recording_track(source):
    """``source`` as the recorder needs it: each frame a new yuv420p copy at the first frame's size, stamped on the
    recorder's 1/30 s clock from the stream's time, and dropped when that stamp is not later than the last one.

    streamlit-webrtc re-sends its last annotated frame while the callback is busy, re-stamping the same frame object
    that also goes to the browser, and Chromium lowers the camera's resolution when the machine is busy; fed as they
    are, equal timestamps or a new size make the MP4 muxer fail at STOP (EINVAL) and the recording is lost. The copy
    keeps the frame that goes back to the browser untouched. It is made with a reformatter of this track's own:
    ``frame.reformat()`` would use the frame's cached one, which aiortc's encoder thread uses on the same frame at the
    same time (that crashed the server in libswscale)."""
    import av
    from aiortc import MediaStreamTrack
    from av.video.reformatter import VideoReformatter

    class RecordingTrack(MediaStreamTrack):
        kind = source.kind

        def __init__(self) -> None:
            super().__init__()
            self._size: tuple[int, int] | None = None
            self._t0: float | None = None
            self._last_tick = -1
            self._reformatter = VideoReformatter()

        async def recv(self):
            while True:
                frame = await source.recv()
                if frame.pts is None or frame.time_base is None:
                    continue
                time_s = float(frame.pts * frame.time_base)
                self._t0 = time_s if self._t0 is None else self._t0
                tick = round((time_s - self._t0) * RECORD_FPS)
                if tick <= self._last_tick:
                    continue
                self._size = self._size or (frame.width, frame.height)
                out = self._reformatter.reformat(frame, width=self._size[0], height=self._size[1], format="yuv420p")
                if out is frame:  # already yuv420p at that size: copy the planes
                    out = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
                out.pts, out.time_base = tick, Fraction(1, RECORD_FPS)
                self._last_tick = tick
                return out

    return RecordingTrack()


def _recorder(path: Path, on_stop):
    """aiortc's ``MediaRecorder`` writing an MP4, fed through :func:`_recording_track`; ``on_stop()`` runs once the
    MP4 is closed."""
    from aiortc.contrib.media import MediaRecorder

    class Recorder(MediaRecorder):
        def addTrack(self, track) -> None:  # noqa: N802 - aiortc's name
            super().addTrack(_recording_track(track))

        async def stop(self) -> None:
            try:
                await super().stop()
            finally:
                on_stop()

    return Recorder(str(path), format="mp4")


@dataclass(frozen=True)
class Recorded:
    """A finished recording: the MP4 (complete and playable), its frame count, and the JSONL with its record count."""

    mp4: Path
    frames: int
    jsonl: Path
    records: int


class LiveRecording:
    """One browser session's recordings; only the latest one is kept track of (each START makes a new pair)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._sink: JsonlSink | None = None
        self._t0: float | None = None
        self.mp4: Path | None = None
        self.jsonl: Path | None = None
        self._count = 0

    def recorder_factory(self):
        """For ``webrtc_streamer(out_recorder_factory=...)``: a new MP4 (H.264, video only) and a new JSONL."""
        with self._lock:
            self._count += 1
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{self._count}"
            self._close()
            self.folder.mkdir(parents=True, exist_ok=True)
            self.mp4, self.jsonl = self.folder / f"live-{stamp}.mp4", self.folder / f"live-{stamp}.jsonl"
            self._sink, self._t0 = JsonlSink(self.jsonl), None
        return _recorder(self.mp4, self._stop)

    def write(self, result: FrameResult, time_s: float) -> None:
        """One processed frame's result (called from the frame callback's thread); ignored when not recording."""
        with self._lock:
            if self._sink is None:
                return
            if self._t0 is None:
                self._t0 = time_s
            self._sink.write(None, dataclasses.replace(result, time_s=time_s - self._t0))

    def _stop(self) -> None:
        """The recorder has closed the MP4 (streamlit-webrtc stops it when the stream ends): close the JSONL."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def finished(self) -> Recorded | None:
        """The latest recording once both files are complete (``None`` while recording or finishing the MP4)."""
        from stream_app.sources import InputError, probe_video

        with self._lock:
            if self._sink is not None or self.mp4 is None or self.jsonl is None or not self.mp4.is_file():
                return None
            mp4, jsonl = self.mp4, self.jsonl
        try:
            info = probe_video(mp4)
        except InputError:  # the recorder has not written the index yet
            return None
        with jsonl.open(encoding="utf-8") as fh:
            records = sum(1 for _ in fh)
        return Recorded(mp4, info.frames, jsonl, records)
