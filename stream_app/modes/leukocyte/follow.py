"""Live boxes that stay on their cells while the slide moves.

On the live page the detector's latest result is drawn on newer camera frames (:mod:`stream_app.live`); during a pan
its boxes would trail the cells by the result's age (~0.1 s idle, more under load: 60 px at a field a second).
:class:`SlideFollower` measures the slide's motion on every camera frame in the frame callback, with the tracker's own
:class:`~.tracking.SlideMotion` (phase correlation on a 160 px grey copy, checked by the overlap's correlation; ~1 ms; no keyframe search),
and moves a result's boxes by the pan between the frame it came from and the frame it is drawn on. Across a lost
position (a jump, a new segment) nothing is moved: the boxes stay as found until the next result.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np

from stream_app.modes.leukocyte.tracking import SlideMotion
from stream_app.results import Detections, FrameResult


class SlideFollower:
    """``see(frame, time_s)`` on every camera frame; ``carry(result, time_s)`` moves ``result``'s boxes from its own
    frame (``result.time_s``) to the frame seen at ``time_s``. Keeps the slide position of the last ``history``
    frames."""

    def __init__(self, history: int = 150) -> None:
        self.history = history
        # Frame to frame only: no keyframe search after a lost position (across one nothing is moved anyway), so
        # a jump costs the callback one phase correlation, not dozens.
        self._motion = SlideMotion(lookups_per_frame=0, lookups_on_loss=0, max_keyframes=1)
        self._at: OrderedDict[float, tuple[int, np.ndarray]] = OrderedDict()  # time -> (segment, offset)

    def see(self, frame: np.ndarray, time_s: float) -> None:
        offset = self._motion.update(frame)
        self._at[time_s] = (self._motion.segment, offset)
        while len(self._at) > self.history:
            self._at.popitem(last=False)

    def carry(self, result: FrameResult, time_s: float) -> FrameResult:
        then, now = self._at.get(result.time_s), self._at.get(time_s)
        if then is None or now is None or then[0] != now[0] or not len(result.detections):
            return result
        dx, dy = now[1] - then[1]  # a slide point p is at p + offset in each frame
        if abs(dx) < 0.5 and abs(dy) < 0.5:
            return result
        d = result.detections
        boxes = d.boxes + np.array([dx, dy, dx, dy], np.float32)
        return dataclasses.replace(result, detections=Detections(boxes, d.scores, d.labels, d.track_ids))


def follower() -> SlideFollower:
    """The leukocyte spec's ``follower`` hook: one per live stream."""
    return SlideFollower()
