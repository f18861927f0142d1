"""Fingerspelling mode: MediaPipe hand -> square crop + 21 landmarks -> letter classifiers -> spelled text.

Per frame: the signing hand is found (:mod:`stream_app.modes.fingerspell.hands`; VIDEO/tracking mode for streams, IMAGE mode
with retries for stills), cut out as a 128 px square crop and turned into landmark features, both mirrored to the
right hand; the shipped classifier (landmark MLP, STN-MobileNetV2 crop model or their fusion, see
``models/fingerspell/MODEL_CARD.md``) gives the letter, its confidence and the top 5. In a stream the
:class:`~stream_app.modes.fingerspell.speller.Speller` adds a letter to the text once it has been stable for
``stable_s`` seconds, needs a release between double letters, and adds J and Z from the fingertip motion. To save
CPU, a stream's hand that has not moved reuses its last probabilities for up to ``reclassify_every - 1`` frames.

``FrameResult``: ``letter`` / ``letter_score`` / ``top_k`` (None / empty without a hand, with ``warning="no hand"``),
``text`` (the spelled text so far; empty for stills), ``landmarks`` (21 points in ORIGINAL pixels), one ``hand``
detection (the landmark box), ``counts={"hands": n}``, warning "N hands: reading the larger one" (or "... the one
nearer the centre") when several hands are in view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from stream_app.modes.base import ModeSpec, Processor, setting
from stream_app.results import Detection, FrameResult

MODEL_CHOICES = ("shipped", "fused", "landmarks", "crop")


@dataclass
class FingerspellSettings:
    stable_s: float = setting(0.6, "A letter joins the text after it has been held this long (seconds)",
                              min=0.1, max=3.0, step=0.05)
    release_s: float = setting(0.25, "A double letter needs the hand gone or another letter for this long (seconds)",
                               min=0.05, max=2.0, step=0.05)
    min_confidence: float = setting(0.6, "Lowest confidence at which a letter can join the text",
                                    min=0.0, max=1.0, step=0.05)
    motion_letters: bool = setting(True, "Recognise J and Z from the fingertip motion")
    model: str = setting("shipped", "Classifier: the shipped one, the fusion, landmarks only or crop only",
                         choices=MODEL_CHOICES)
    max_side: int = setting(640, "Longest side of the copy the hand finder sees (pixels)", min=256, max=1920, step=32)
    reclassify_every: int = setting(2, "In a stream, a hand that has not moved is classified again only every N "
                                       "frames (1 = every frame)", min=1, max=5, step=1)


# Largest change of a landmark's x or y (in hand sizes, wrist-relative) that counts as "has not moved". MediaPipe's
# depth (z) jitters by up to 0.07 between identical frames and is left out; x and y settle below 0.025.
STILL_TOLERANCE = 0.05


@dataclass
class _LastClassification:
    feats: np.ndarray
    probs: dict
    model: str
    mirrored: bool
    reused: int = 0


def _classifiers():
    from stream_app.modes.fingerspell.models import shared_classifiers

    return shared_classifiers()


def analyse(hands, small: np.ndarray, scale: float, width: int, height: int, classifiers, model: str = "shipped"):
    """Shared by the processor and ``evaluate``: choose the signing hand and classify it.

    Returns ``(hand, probs)`` where ``probs`` maps model name -> (26,) probabilities (None without a hand)."""
    from stream_app.modes.fingerspell.hands import choose_signing_hand, landmark_features

    hand = choose_signing_hand(hands, width, height)
    if hand is None:
        return None, None
    return hand, classify_hand(hand, landmark_features(hand.points, hand.mirrored), small, scale, classifiers, model)


def classify_hand(hand, feats: np.ndarray, small: np.ndarray, scale: float, classifiers, model: str = "shipped"):
    """The chosen hand's letter probabilities: model name -> (26,) array. ``feats`` are its landmark features."""
    from stream_app.modes.fingerspell.hands import square_crop

    which = None if model == "shipped" else (("landmarks", "crop") if model in ("fused", "all") else (model,))
    crop = None
    if classifiers.crop is not None and (which is None and classifiers.shipped != "landmarks" or
                                         which is not None and "crop" in which):
        crop = square_crop(small, hand.points[:, :2] * scale, classifiers.crop_size, classifiers.margin,
                           hand.mirrored)
    probs = classifiers.predict(feats, crop, which)
    return {k: v[0] for k, v in probs.items()}


class FingerspellProcessor(Processor):
    mode = "fingerspell"

    def __init__(self, settings: FingerspellSettings, live: bool = False) -> None:
        super().__init__(settings, live)
        from stream_app.modes.fingerspell.speller import Speller

        if settings.model not in MODEL_CHOICES:
            raise ValueError(f"model must be one of {', '.join(MODEL_CHOICES)}, got {settings.model!r}")
        self._classifiers = _classifiers()  # raises ModelMissing (a FileNotFoundError) with the fix
        self._finders: dict[bool, object] = {}
        self.speller = Speller(settings.stable_s, settings.release_s, settings.min_confidence)
        self._last: _LastClassification | None = None

    def _finder(self, video: bool):
        from stream_app.modes.fingerspell.hands import HandFinder

        finder = self._finders.get(video)
        if finder is None or finder.max_side != self.settings.max_side:
            finder = self._finders[video] = HandFinder(video=video, max_side=self.settings.max_side)
        return finder

    def update_settings(self, **changes) -> None:
        if "model" in changes and changes["model"] not in MODEL_CHOICES:
            raise ValueError(f"model must be one of {', '.join(MODEL_CHOICES)}, got {changes['model']!r}")
        super().update_settings(**changes)
        s = self.settings
        self.speller.stable_s, self.speller.release_s, self.speller.min_confidence = (
            s.stable_s, s.release_s, s.min_confidence)

    def reset(self) -> None:
        self.speller.clear()
        self._last = None

    def actions(self) -> dict:
        return {"Space": self.speller.space, "Delete": self.speller.delete, "Clear": self.speller.clear}

    def close(self) -> None:
        for finder in self._finders.values():
            finder.close()
        self._finders.clear()

    def _classify_stream(self, hands, small: np.ndarray, scale: float, width: int, height: int, model: str):
        """:func:`analyse` for streams: a hand that has not moved since its last classification reuses those
        probabilities for up to ``reclassify_every - 1`` frames. The crop network is a third of a frame's cost, and a
        held letter does not change between two camera frames; landmarks (and so J/Z motion) are still read on every
        frame."""
        from stream_app.modes.fingerspell.hands import choose_signing_hand, landmark_features

        hand = choose_signing_hand(hands, width, height)
        if hand is None:
            self._last = None
            return None, None
        feats = landmark_features(hand.points, hand.mirrored)
        last = self._last
        if (last is not None and last.model == model and last.mirrored == hand.mirrored
                and last.reused < self.settings.reclassify_every - 1
                and float(np.abs(feats - last.feats).reshape(21, 3)[:, :2].max()) < STILL_TOLERANCE):
            last.reused += 1
            return hand, last.probs
        probs = classify_hand(hand, feats, small, scale, self._classifiers, model)
        self._last = _LastClassification(feats, probs, model, hand.mirrored)
        return hand, probs

    def _process(self, frame: np.ndarray, timestamp_s: float | None) -> FrameResult:
        from stream_app.modes.fingerspell import LETTERS
        from stream_app.modes.fingerspell.hands import INDEX_TIP, PINKY_TIP

        stream = timestamp_s is not None
        t0 = time.perf_counter()
        hands, small, scale = self._finder(stream).find(frame, timestamp_s)
        t1 = time.perf_counter()
        h, w = frame.shape[:2]
        model = self.settings.model
        if stream:
            hand, probs = self._classify_stream(hands, small, scale, w, h, model)
        else:
            hand, probs = analyse(hands, small, scale, w, h, self._classifiers, model)
        t2 = time.perf_counter()
        result = FrameResult(mode=self.mode, counts={"hands": len(hands)})
        if hand is None:
            result.warning = "no hand"
            if stream:
                self.speller.update(timestamp_s, None)
        else:
            p = probs.get(self._classifiers.shipped if model == "shipped" else model)
            if p is None:  # e.g. crop asked for but no crop model shipped
                p = probs["landmarks"]
            order = np.argsort(-p)[:5]
            result.letter, result.letter_score = LETTERS[order[0]], float(p[order[0]])
            result.top_k = [(LETTERS[i], float(p[i])) for i in order]
            result.landmarks = [(float(x), float(y)) for x, y in hand.points[:, :2]]
            result.detections = [Detection("hand", hand.score, hand.box)]
            if len(hands) > 1:
                larger = max(hands, key=lambda x: x.area) is hand
                result.warning = f"{len(hands)} hands: reading the {'larger one' if larger else 'one nearer the centre'}"
            if stream:
                motion = self.settings.motion_letters
                self.speller.update(
                    timestamp_s, result.letter, result.letter_score,
                    index_tip=tuple(hand.points[INDEX_TIP, :2]) if motion else None,
                    pinky_tip=tuple(hand.points[PINKY_TIP, :2]) if motion else None,
                    hand_size=hand.size, mirrored=hand.mirrored)
        result.text = self.speller.text if stream else ""
        t3 = time.perf_counter()
        result.timings_ms.update(hands=(t1 - t0) * 1000, classify=(t2 - t1) * 1000, spell=(t3 - t2) * 1000)
        return result


# ------------------------------------------------------------------------------------------------- CLI hooks
_BENCH_SOURCE = {"frames": "not made yet"}


def bench_frames(n: int, width: int, height: int):
    """Frames with a real hand: Roboflow test photos from the shared data (read at bench time, never committed),
    each held for 15 frames on a 640x480 canvas as a signer holds a letter; generated frames without a hand when the
    data is absent (then the numbers time the no-hand path; the output says which)."""
    import cv2

    from stream_app.config import data_dir

    folder = data_dir() / "asl_roboflow_letters" / "datasets" / "american_sign_language" / "test" / "images"
    paths = sorted(folder.glob("*.jpg"))[:: 3] if folder.is_dir() else []
    if not paths:
        from stream_app.synthetic import moving_shapes

        _BENCH_SOURCE["frames"] = "generated moving shapes (no hand: shared data absent)"
        yield from moving_shapes(n, width, height)
        return
    _BENCH_SOURCE["frames"] = f"Roboflow test photos from {folder} (each held 15 frames, letterboxed to {width}x{height})"
    canvases = []
    for path in paths:
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        s = min(width / img.shape[1], height / img.shape[0])
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)))
        canvas = np.full((height, width, 3), 90, np.uint8)
        y, x = (height - img.shape[0]) // 2, (width - img.shape[1]) // 2
        canvas[y:y + img.shape[0], x:x + img.shape[1]] = img
        canvases.append(canvas)
    for i in range(n):
        yield canvases[(i // 15) % len(canvases)]


def bench_extra(frames) -> dict:
    out = {"bench_frames": _BENCH_SOURCE["frames"]}
    try:
        out["shipped_model"] = _classifiers().shipped
    except FileNotFoundError:
        pass
    return out


def warm_up() -> None:
    _classifiers()


def _add_evaluate_args(parser):
    from stream_app.modes.fingerspell.evaluate import add_evaluate_args

    add_evaluate_args(parser)


def _evaluate(args) -> int:
    from stream_app.modes.fingerspell.evaluate import run_evaluate

    return run_evaluate(args)


def _add_train_args(parser):
    from stream_app.modes.fingerspell.train import add_train_args

    add_train_args(parser)


def _train(args) -> int:
    from stream_app.modes.fingerspell.train import run_train

    return run_train(args)


SPEC = ModeSpec(
    name="fingerspell",
    title="Fingerspelling",
    description="ASL letters from the hand (MediaPipe landmarks + hand crop), spelled into text; J and Z from motion.",
    processor_cls=FingerspellProcessor,
    settings_cls=FingerspellSettings,
    add_evaluate_args=_add_evaluate_args,
    evaluate=_evaluate,
    add_train_args=_add_train_args,
    train=_train,
    bench_frames=bench_frames,
    bench_extra=bench_extra,
    warm_up=warm_up,
)

__all__ = ["FingerspellProcessor", "FingerspellSettings", "SPEC", "analyse", "classify_hand"]
