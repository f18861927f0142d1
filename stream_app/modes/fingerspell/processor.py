"""Fingerspelling mode: MediaPipe hand -> square crop + 21 landmarks -> letter classifiers -> spelled text.

Per frame: the signing hand is found (:mod:`.hands`; VIDEO/tracking mode for streams, IMAGE mode with retries for
stills), cut out as a 128 px square crop and turned into landmark features, both mirrored to the
right hand; the shipped classifier (landmark MLP, STN-MobileNetV2 crop model or their fusion, see
``models/fingerspell/MODEL_CARD.md``) gives the 26 letter probabilities. To save CPU, a stream's hand that has not
moved reuses its last probabilities for up to ``reclassify_every - 1`` frames (:mod:`.recognition`).

A still image shows its top letter over all 26 (J and Z read from their end pose, as the still data sets show
them). A stream shows what :class:`~.decide.LetterDecider` decides: the probabilities averaged over the held hand,
with hysteresis; J and Z only from their motion. The :class:`~.speller.Speller` adds a shown letter to the text once
it has been held ``stable_s`` seconds, needs a release between double letters, and adds J and Z when their motion is
seen.

``FrameResult``: ``top_k`` (the top 5: the image's for stills, the averaged ones for streams; empty without a hand,
with ``warning="no hand"``), ``extras`` a :class:`FingerspellExtras` (``letter`` / ``letter_score``: stills the top
letter, streams the decided letter, None while nothing is stable, None without a hand; ``text``, the spelled text so
far, empty for stills; ``landmarks``, 21 points in ORIGINAL pixels), one ``hand`` detection (the landmark box),
``counts={"hands": n}``, warning "N hands: reading the larger one" (or "... the one nearer the centre") when several
hands are in view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from stream_app.modes.base import Processor, setting
from stream_app.modes.fingerspell.recognition import StreamReader, analyse
from stream_app.results import Detections, Extras, FrameResult

MODEL_CHOICES = ("shipped", "fused", "landmarks", "crop")


@dataclass
class FingerspellSettings:
    stable_s: float = setting(0.6, "A shown letter joins the text once it has been held this long, counted from "
                                   "when it began to win (seconds)", min=0.1, max=3.0, step=0.05)
    release_s: float = setting(0.25, "A double letter needs the hand gone, or another or no letter shown, for this "
                                     "long (seconds)", min=0.05, max=2.0, step=0.05)
    min_confidence: float = setting(0.5, "Lowest averaged confidence at which a letter is shown in a stream (and so "
                                         "can join the text)", min=0.0, max=1.0, step=0.05)
    average_s: float = setting(0.3, "Streams average the letter probabilities over the held hand with this time "
                                    "constant (seconds; 0 = frame by frame)", min=0.0, max=2.0, step=0.05)
    show_s: float = setting(0.2, "A letter is shown once it has clearly won for this long; another letter must win "
                                 "this long to replace it (seconds)", min=0.0, max=1.0, step=0.05)
    margin: float = setting(0.15, "How far (averaged probability) a letter must lead the runner-up to be shown, or "
                                  "the shown letter to replace it", min=0.0, max=0.5, step=0.05)
    motion_letters: bool = setting(True, "Recognise J and Z from the fingertip motion (streams show J and Z only "
                                         "then)")
    model: str = setting("shipped", "Classifier: the shipped one, the fusion, landmarks only or crop only",
                         choices=MODEL_CHOICES)
    max_side: int = setting(640, "Longest side of the copy the hand finder sees (pixels)", min=256, max=1920, step=32)
    reclassify_every: int = setting(2, "In a stream, a hand that has not moved is classified again only every N "
                                       "frames (1 = every frame)", min=1, max=5, step=1)


@dataclass
class FingerspellExtras(Extras):
    """The fingerspelling fields of a :class:`FrameResult`: the letter shown and its confidence (a still image's top
    letter; a stream's decided letter, None while nothing is stable; None without a hand), the spelled text so far
    (streams; empty for stills) and the 21 hand landmarks in ORIGINAL pixels."""

    letter: str | None = None
    letter_score: float | None = None
    text: str = ""
    landmarks: list[tuple[float, float]] = field(default_factory=list)

    caption_title = "Spelled text"

    @property
    def caption(self) -> str:
        return self.text

    def json_fields(self) -> dict:
        score = None if self.letter_score is None else round(float(self.letter_score), 4)
        return {"letter": self.letter, "letter_score": score, "text": self.text}

    def lines(self) -> list[str]:
        return [] if self.letter is None else [f"letter: {self.letter} ({100 * (self.letter_score or 0):.0f}%)"]

    def headline(self) -> tuple[str, str, str] | None:
        return None if self.letter is None else ("Letter", self.letter, f"{100 * (self.letter_score or 0):.0f}%")


def _classifiers():
    from stream_app.modes.fingerspell.models import shared_classifiers

    return shared_classifiers()


class FingerspellProcessor(Processor):
    mode = "fingerspell"

    def __init__(self, settings: FingerspellSettings, live: bool = False) -> None:
        super().__init__(settings, live)
        from stream_app.modes.fingerspell.decide import LetterDecider
        from stream_app.modes.fingerspell.speller import Speller

        if settings.model not in MODEL_CHOICES:
            raise ValueError(f"model must be one of {', '.join(MODEL_CHOICES)}, got {settings.model!r}")
        self._classifiers = _classifiers()  # raises ModelMissing (a FileNotFoundError) with the fix
        self._finders: dict[bool, object] = {}
        self.speller = Speller(settings.stable_s, settings.release_s)
        self._decider = LetterDecider()
        self._configure()
        self._reader = StreamReader()

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
        if "model" in changes:
            self._decider.reset()  # another classifier's probabilities are not averaged with the last one's
        self._configure()

    def _configure(self) -> None:
        s, d = self.settings, self._decider
        self.speller.stable_s, self.speller.release_s = s.stable_s, s.release_s
        d.average_s, d.show_s, d.margin, d.min_confidence = s.average_s, s.show_s, s.margin, s.min_confidence
        d.motion_letters = s.motion_letters

    def reset(self) -> None:
        self.speller.clear()
        self._reader.forget()
        self._decider.reset()

    def actions(self) -> dict:
        return {"Space": self.speller.space, "Delete letter": self.speller.delete, "Clear text": self.speller.clear}

    def close(self) -> None:
        for finder in self._finders.values():
            finder.close()
        self._finders.clear()

    # Two steps that share no state (two_step): the hand finder (MediaPipe, which runs its models on one thread
    # here) keeps the finders; the letter step keeps the stream reader and the speller. The live worker runs the
    # finder on frame t+1 while the classifier reads frame t.
    two_step = True

    def _process(self, frame: np.ndarray, timestamp_s: float | None) -> FrameResult:
        return self._second(frame, timestamp_s, self._first(frame, timestamp_s))

    def _first(self, frame: np.ndarray, timestamp_s: float | None):
        """The hands (MediaPipe) and the copy they were found on."""
        t0 = time.perf_counter()
        hands, small, scale = self._finder(timestamp_s is not None).find(frame, timestamp_s)
        return hands, small, scale, (time.perf_counter() - t0) * 1000

    def _second(self, frame: np.ndarray, timestamp_s: float | None, first) -> FrameResult:
        from stream_app.modes.fingerspell import LETTERS

        stream = timestamp_s is not None
        hands, small, scale, hands_ms = first
        t1 = time.perf_counter()
        h, w = frame.shape[:2]
        model = self.settings.model
        if stream:
            hand, probs = self._reader.read(hands, small, scale, w, h, self._classifiers, model,
                                            self.settings.reclassify_every)
        else:
            hand, probs = analyse(hands, small, scale, w, h, self._classifiers, model)
        t2 = time.perf_counter()
        result = FrameResult(mode=self.mode, counts={"hands": len(hands)})
        extras = result.extras = FingerspellExtras()
        if hand is None:
            result.warning = "no hand"
            if stream:
                self._decider.update(timestamp_s, None)
                self.speller.update(timestamp_s, None, hand=False)
        else:
            p = probs.get(self._classifiers.shipped if model == "shipped" else model)
            if p is None:  # e.g. crop asked for but no crop model shipped
                p = probs["landmarks"]
            if stream:
                decision = self._decider.update(timestamp_s, p, hand.points, hand.size, hand.mirrored)
                extras.letter, extras.letter_score, result.top_k = decision.letter, decision.score, decision.top_k
                self.speller.update(timestamp_s, decision.letter, hand=True, since=decision.since,
                                    motion=decision.motion is not None)
            else:
                order = np.argsort(-p)[:5]
                extras.letter, extras.letter_score = LETTERS[order[0]], float(p[order[0]])
                result.top_k = [(LETTERS[i], float(p[i])) for i in order]
            extras.landmarks = [(float(x), float(y)) for x, y in hand.points[:, :2]]
            result.detections = Detections([hand.box], [hand.score], ["hand"])
            if len(hands) > 1:
                larger = max(hands, key=lambda x: x.area) is hand
                result.warning = f"{len(hands)} hands: reading the {'larger one' if larger else 'one nearer the centre'}"
        extras.text = self.speller.text if stream else ""
        t3 = time.perf_counter()
        result.timings_ms.update(hands=hands_ms, classify=(t2 - t1) * 1000, spell=(t3 - t2) * 1000)
        return result


def warm_up() -> None:
    """Load the shared classifiers ahead of the first frame."""
    _classifiers()
