"""What the fingerspelling mode draws besides the shared annotators: the hand's landmarks and the current letter.

Both read the result's :class:`~.processor.FingerspellExtras` and draw nothing for a result without it.
"""

from __future__ import annotations

import cv2
import numpy as np

from stream_app.annotators import FONT, draw_label, font_scale
from stream_app.results import FrameResult


class LandmarkAnnotator:
    """Hand landmarks as dots."""

    def annotate(self, scene: np.ndarray, result: FrameResult, scale: float = 1.0) -> np.ndarray:
        radius = max(2, round(min(scene.shape[:2]) / 160))
        for x, y in getattr(result.extras, "landmarks", ()):
            cv2.circle(scene, (int(x * scale), int(y * scale)), radius, (0, 255, 128), -1, cv2.LINE_AA)
        return scene


class LetterAnnotator:
    """The current letter and its confidence, large, top right (the top-5 bars go under it)."""

    def annotate(self, scene: np.ndarray, result: FrameResult, scale: float = 1.0) -> np.ndarray:
        letter = getattr(result.extras, "letter", None)
        if letter is None:
            return scene
        fs = font_scale(scene)
        text = f"{letter} {100 * (result.extras.letter_score or 0):.0f}%"
        (tw, _), _ = cv2.getTextSize(text, FONT, fs * 2.2, 3)
        draw_label(scene, text, (scene.shape[1] - tw - 12, int(40 * fs * 2)), (30, 30, 30), fs * 2.2, 3)
        return scene
