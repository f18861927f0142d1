"""Annotators draw a :class:`FrameResult` on a frame: ``annotate(scene, result) -> scene`` (the supervision style).

Each draws one kind of field; a mode's spec names the ones it uses (``ModeSpec.annotators``, default
:data:`DEFAULT_ANNOTATORS`), drawing what is special to it with annotators of its own package.
All coordinates in a result are pixels of the frame it was computed on; pass ``scale`` when drawing on a frame of
another size. Frames are RGB, so colours here are RGB.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from stream_app.results import FrameResult

FONT = cv2.FONT_HERSHEY_SIMPLEX
CLASS_COLOURS = {"WBC": (148, 0, 211), "RBC": (220, 40, 40), "Platelets": (255, 200, 0), "moving": (0, 200, 0)}


def colour_for(label: str) -> tuple[int, int, int]:
    """A fixed colour per class name (a known palette, else a stable hash of the name)."""
    if label in CLASS_COLOURS:
        return CLASS_COLOURS[label]
    h = hashlib.md5(label.encode()).digest()
    return (64 + h[0] % 192, 64 + h[1] % 192, 64 + h[2] % 192)


def font_scale(scene: np.ndarray) -> float:
    return max(0.4, min(scene.shape[:2]) / 900.0)


def draw_label(scene: np.ndarray, text: str, org: tuple[int, int], colour, scale: float, thickness: int = 1) -> None:
    """Text on a filled box so it reads on any background."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = max(0, org[0]), max(h + base, org[1])
    cv2.rectangle(scene, (x, y - h - base), (x + w + 4, y + 2), colour, -1)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(scene, text, (x + 2, y - base + 1), FONT, scale, ink, thickness, cv2.LINE_AA)


class BoxAnnotator:
    """Boxes coloured per class with ``label score`` and the track id when there is one."""

    def annotate(self, scene: np.ndarray, result: FrameResult, scale: float = 1.0) -> np.ndarray:
        fs = font_scale(scene)
        thick = max(1, round(min(scene.shape[:2]) / 300))
        for det in result.detections:
            x1, y1, x2, y2 = (int(round(v * scale)) for v in det.box)
            colour = colour_for(det.label)
            cv2.rectangle(scene, (x1, y1), (x2, y2), colour, thick)
            tag = f"{det.label} {det.score:.2f}" + (f" #{det.track_id}" if det.track_id is not None else "")
            draw_label(scene, tag, (x1, y1), colour, fs * 0.8)
        return scene


class TopKAnnotator:
    """Ranked class probabilities as bars, top right (at most five)."""

    def annotate(self, scene: np.ndarray, result: FrameResult, scale: float = 1.0) -> np.ndarray:
        if not result.top_k:
            return scene
        fs = font_scale(scene)
        w = scene.shape[1]
        y = int(40 * fs * 2)
        bar_w = int(w * 0.22)
        for i, (label, p) in enumerate(result.top_k[:5]):
            top = y + 14 + i * int(26 * fs * 1.4)
            x0 = w - bar_w - 12
            cv2.rectangle(scene, (x0, top), (x0 + bar_w, top + int(18 * fs * 1.4)), (40, 40, 40), -1)
            cv2.rectangle(scene, (x0, top), (x0 + int(bar_w * float(p)), top + int(18 * fs * 1.4)), (0, 170, 255), -1)
            cv2.putText(scene, f"{label} {p:.2f}", (x0 + 4, top + int(15 * fs * 1.4)), FONT, fs * 0.7,
                        (255, 255, 255), 1, cv2.LINE_AA)
        return scene


class CaptionAnnotator:
    """The mode's caption (the spelled text, the model's name) along the bottom."""

    def annotate(self, scene: np.ndarray, result: FrameResult, scale: float = 1.0) -> np.ndarray:
        if not result.caption:
            return scene
        fs = font_scale(scene) * 1.3
        draw_label(scene, result.caption[-40:], (10, scene.shape[0] - 12), (20, 20, 20), fs, 2)
        return scene


class StatusAnnotator:
    """Counts, total time, and the warning or error line, top left."""

    def annotate(self, scene: np.ndarray, result: FrameResult, scale: float = 1.0) -> np.ndarray:
        fs = font_scale(scene) * 0.8
        lines = [f"{k}: {v}" for k, v in result.counts.items()]
        if "total" in result.timings_ms:
            lines.append(f"{result.timings_ms['total']:.0f} ms")
        y = int(24 * fs * 1.6)
        for line in lines:
            draw_label(scene, line, (8, y), (20, 20, 20), fs)
            y += int(24 * fs * 1.6)
        for message, colour in ((result.warning, (255, 170, 0)), (result.error, (220, 0, 0))):
            if message:
                draw_label(scene, message[:80], (8, y), colour, fs)
                y += int(24 * fs * 1.6)
        return scene


DEFAULT_ANNOTATORS = (BoxAnnotator(), TopKAnnotator(), CaptionAnnotator(), StatusAnnotator())


MIN_DRAW_SIDE = 240  # labels need room: a smaller frame is drawn on an enlarged copy


def annotate(frame: np.ndarray, result: FrameResult, scale: float = 1.0, annotators=DEFAULT_ANNOTATORS) -> np.ndarray:
    """Return an annotated copy of ``frame`` (the input is never modified). A frame whose shorter side is under
    :data:`MIN_DRAW_SIDE` pixels (a 28x28 X-ray) is first enlarged by a whole factor, pixels kept square and sharp,
    so that the labels fit beside what they label instead of covering it; the copy is then that much larger."""
    scene = np.ascontiguousarray(frame).copy()
    short = min(scene.shape[:2])
    if 0 < short < MIN_DRAW_SIDE:
        factor = -(-MIN_DRAW_SIDE // short)
        scene = cv2.resize(scene, (scene.shape[1] * factor, scene.shape[0] * factor), interpolation=cv2.INTER_NEAREST)
        scale *= factor
    for annotator in annotators:
        scene = annotator.annotate(scene, result, scale)
    return scene
