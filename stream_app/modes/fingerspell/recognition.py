"""Reading the letter of the signing hand: shared by the processor (stills and streams) and ``evaluate``.

:func:`analyse` chooses the signing hand among the ones found and classifies it; :func:`classify_hand` runs the
classifiers on one chosen hand; :class:`StreamReader` is the stream path, where a hand that has not moved since its
last classification reuses those probabilities for up to ``reclassify_every - 1`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_app.modes.fingerspell.hands import choose_signing_hand, landmark_features

# Largest change of a landmark's x or y (in hand sizes, wrist-relative) that counts as "has not moved". MediaPipe's
# depth (z) jitters by up to 0.07 between identical frames and is left out; x and y settle below 0.025.
STILL_TOLERANCE = 0.05


def analyse(hands, small: np.ndarray, scale: float, width: int, height: int, classifiers, model: str = "shipped"):
    """Choose the signing hand and classify it.

    Returns ``(hand, probs)`` where ``probs`` maps model name -> (26,) probabilities (None without a hand)."""
    hand = choose_signing_hand(hands, width, height)
    if hand is None:
        return None, None
    return hand, classify_hand(hand, landmark_features(hand.points, hand.mirrored), small, scale, classifiers, model)


def classify_hand(hand, feats: np.ndarray, small: np.ndarray, scale: float, classifiers, model: str = "shipped"):
    """The chosen hand's letter probabilities: model name -> (26,) array (every model run, plus "fused" when both
    ran). ``feats`` are its motion features (:func:`landmark_features`); the classifiers make their own inputs."""
    which = None if model == "shipped" else (("landmarks", "crop") if model in ("fused", "all") else (model,))
    crop = None
    if classifiers.crop is not None and (which is None and classifiers.shipped != "landmarks" or
                                         which is not None and "crop" in which):
        crop = classifiers.crop_input(small, hand.points[:, :2] * scale, hand.mirrored)
    probs = classifiers.predict(classifiers.landmark_input(hand.points, hand.mirrored), crop, which)
    return {k: v[0] for k, v in probs.items()}


@dataclass
class _LastClassification:
    feats: np.ndarray
    probs: dict
    model: str
    mirrored: bool
    reused: int = 0


class StreamReader:
    """:func:`analyse` for streams: a hand that has not moved since its last classification reuses those
    probabilities for up to ``reclassify_every - 1`` frames. The crop network is a third of a frame's cost, and a
    held letter does not change between two camera frames; landmarks (and so J/Z motion) are still read on every
    frame. One per stream (it remembers the last classification)."""

    def __init__(self) -> None:
        self._last: _LastClassification | None = None

    def forget(self) -> None:
        self._last = None

    def read(self, hands, small: np.ndarray, scale: float, width: int, height: int, classifiers, model: str,
             reclassify_every: int):
        hand = choose_signing_hand(hands, width, height)
        if hand is None:
            self._last = None
            return None, None
        feats = landmark_features(hand.points, hand.mirrored)
        last = self._last
        if (last is not None and last.model == model and last.mirrored == hand.mirrored
                and last.reused < reclassify_every - 1
                and float(np.abs(feats - last.feats).reshape(21, 3)[:, :2].max()) < STILL_TOLERANCE):
            last.reused += 1
            return hand, last.probs
        probs = classify_hand(hand, feats, small, scale, classifiers, model)
        self._last = _LastClassification(feats, probs, model, hand.mirrored)
        return hand, probs
