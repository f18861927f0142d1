"""The Live page's recording without a browser: the recorder streamlit-webrtc gets from the factory records a real
aiortc video track to a playable MP4, and the results written from the callback make the session's JSONL."""

import asyncio
import json

import av
from aiortc import VideoStreamTrack

from stream_app.results import Detections, FrameResult
from stream_app.sources import iter_video, probe_video
from stream_app.synthetic import moving_shapes
from stream_app.ui.recording import LiveRecording


class ShapesTrack(VideoStreamTrack):
    """Moving shapes at 30 fps, paced like a camera by aiortc's own clock, with what the recorder gets from
    streamlit-webrtc in a real session: every third frame is the previous frame object again with the same
    timestamp (the last annotated frame is re-sent and re-stamped in place while the callback is busy), and from
    frame 20 on the size drops to 240x180 (Chromium lowers a busy camera's resolution)."""

    def __init__(self) -> None:
        super().__init__()
        self._frames = moving_shapes(1000, 320, 240)
        self._last = None
        self._n = 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        self._n += 1
        if self._last is not None and self._n % 3 == 0:
            return self._last  # the same object, the same timestamp
        image = next(self._frames)
        if self._n >= 20:
            image = image[:180, :240].copy()
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        self._last = frame
        return frame


def test_recording_gives_a_playable_mp4_and_the_results_jsonl(tmp_path):
    recording = LiveRecording(tmp_path / "session")
    assert recording.finished() is None

    async def stream_for(seconds: float) -> None:
        recorder = recording.recorder_factory()
        recorder.addTrack(ShapesTrack())
        await recorder.start()
        for i in range(5):  # the frame callback's results, from its own thread in the app
            recording.write(FrameResult("motion", detections=Detections([(1, 2, 30, 40)], [0.9], ["moving"]),
                                        counts={"moving": 1}), 100.0 + i / 10)
        await asyncio.sleep(seconds)
        assert recording.finished() is None  # still recording
        await recorder.stop()  # what streamlit-webrtc does when the stream ends

    asyncio.run(stream_for(1.5))
    recording.write(FrameResult("motion"), 200.0)  # a late callback after STOP is not recorded
    done = recording.finished()
    assert done is not None and done.mp4.suffix == ".mp4" and done.jsonl.suffix == ".jsonl"
    info = probe_video(done.mp4)
    assert (info.width, info.height) == (320, 240) and info.codec == "h264"
    frames = sum(1 for _ in iter_video(done.mp4))  # ~30 (45 sent, every third a repeat); fewer on a busy machine
    assert 5 <= frames <= 60 and done.frames == frames
    lines = [json.loads(line) for line in done.jsonl.read_text().splitlines()]
    assert done.records == len(lines) == 5
    assert [r["frame"] for r in lines] == list(range(5)) and [r["time_s"] for r in lines] == [0, 0.1, 0.2, 0.3, 0.4]
    assert lines[0]["counts"] == {"moving": 1} and lines[0]["detections"][0]["box"] == [1, 2, 30, 40]


def test_each_start_makes_a_new_recording(tmp_path):
    recording = LiveRecording(tmp_path)
    recording.recorder_factory()
    first = recording.jsonl
    recording.write(FrameResult("motion"), 0.0)
    recording.recorder_factory()
    assert recording.jsonl != first and len(first.read_text().splitlines()) == 1
