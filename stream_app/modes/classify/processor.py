"""Classify mode: whole-image class probabilities from a transfer-learned MobileNetV2 (:mod:`.network`).

For still images (the image page: upload, bar chart, PNG report) and, as it is a per-frame classifier of a few
milliseconds, for replayed and live video too. ``top_k`` holds every class of the model with its probability, most
probable first; ``counts`` stays empty; ``extras`` (:class:`ClassifyExtras`) names the model and its version,
which the caption shows (``model <name> <version>``, also the JSONL ``text``) and the report reads. The shipped default model is ``pneumonia`` (PneumoniaMNIST chest X-rays,
normal vs pneumonia); any folder under ``models/classify/`` made by ``train classify`` can be chosen instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from stream_app.modes.base import Processor, setting
from stream_app.modes.classify.network import DEFAULT_MODEL, available_models, load_model, prepare
from stream_app.results import Extras, FrameResult

COLOUR_WARNING_LEVEL = 12.0  # mean |R-G| + |G-B| (0-255 scale) above which a grey model warns about a colour image


@dataclass
class ClassifySettings:
    model: str = setting(DEFAULT_MODEL, "Model: a folder under models/classify/ (made by `train classify`)",
                         choices=tuple(available_models()) or None)


@dataclass
class ClassifyExtras(Extras):
    """The classifier's fields of a :class:`FrameResult`: which model (name and version) gave ``top_k``."""

    model: str
    version: str

    caption_title = "Model"

    @property
    def caption(self) -> str:
        return f"model {self.model} {self.version}"

    def json_fields(self) -> dict:
        return {"text": self.caption}


class ClassifyProcessor(Processor):
    mode = "classify"

    def _process(self, frame: np.ndarray, timestamp_s: float | None) -> FrameResult:
        model = load_model(self.settings.model)  # loaded once per process, then a cache hit
        t0 = time.perf_counter()
        meta = model.meta
        prepared = prepare(frame, meta)[None]
        t1 = time.perf_counter()
        probs = model.predict_prepared(prepared)[0]
        t2 = time.perf_counter()
        ranked = sorted(zip(meta.classes, probs.tolist()), key=lambda item: -item[1])
        warning = None
        if meta.colour == "grey":
            small = frame[::4, ::4].astype(np.int16)
            chroma = float(np.mean(np.abs(small[..., 0] - small[..., 1]) + np.abs(small[..., 1] - small[..., 2])))
            if chroma > COLOUR_WARNING_LEVEL:
                warning = "colour image: this model was trained on greyscale images"
        return FrameResult(mode=self.mode, top_k=ranked, extras=ClassifyExtras(meta.name, meta.version),
                           warning=warning, timings_ms={"prepare": (t1 - t0) * 1000, "classify": (t2 - t1) * 1000})


def warm_up() -> None:
    if DEFAULT_MODEL in available_models():
        load_model(DEFAULT_MODEL)

