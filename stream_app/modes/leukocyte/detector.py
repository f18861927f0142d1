"""Run a trained detector on one RGB frame of any size: downscale with OpenCV, preprocess as the model expects,
infer, and return boxes in the ORIGINAL frame's pixels.

A detector call returns ``(detections, timings_ms)``: the shared :class:`~stream_app.results.Detections` (boxes
float32 x1y1x2y2, scores, labels "WBC" / "RBC" / "Platelets", sorted by score; no track ids) and
``{"preprocess": ms, "detect": ms}``.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from stream_app.config import MODELS_DIR
from stream_app.frames import check_frame
from stream_app.modes.leukocyte.model import DetectorConfig, label_names, load_detector
from stream_app.modes.leukocyte.preprocess import model_input, normalise_stain
from stream_app.results import Detections

MODEL_DIR = MODELS_DIR / "leukocyte"
WEIGHTS = {"rgb": MODEL_DIR / "detector_rgb.pt", "clahe_lab": MODEL_DIR / "detector_clahe_lab.pt"}
# The same network fine-tuned with multi-scale augmentation (issue 13), for frames brought to the training scale
# (tiles of zoomed-out fields) and the scale search; BCCD-like fields keep the model validated on other labs.
RESCALED_WEIGHTS = {"clahe_lab": MODEL_DIR / "detector_clahe_lab_multiscale.pt"}


def scaled(detections: Detections, factor: float) -> Detections:
    """The same detections with their boxes multiplied by ``factor`` (another copy of the frame's pixels)."""
    return Detections(detections.boxes * np.float32(factor), detections.scores, detections.labels,
                      detections.track_ids)


def _in_frame(boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, scale: float,
              shape: tuple[int, ...]) -> Detections:
    """The network's output (boxes in pixels of the copy it saw, label ids) in ``shape``'s pixels, inside it."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) / np.float32(scale)
    h, w = shape[:2]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return Detections(boxes, np.asarray(scores, np.float32), label_names(labels))


class Detector:
    """A loaded detector plus its preprocessing. Thread-safe for one caller at a time (the processor serialises)."""

    def __init__(self, model: torch.nn.Module, cfg: DetectorConfig) -> None:
        self.model, self.cfg = model, cfg

    @property
    def rescaled(self) -> "Detector":
        """The detector for frames resized to the training scale (tiles, the scale search): this one."""
        return self

    def network_size(self, h: int, w: int) -> float:
        """Scale from the original frame to what the network sees (the model's min/max size rule)."""
        return min(self.cfg.min_size / min(h, w), self.cfg.max_size / max(h, w))

    def prepare(self, frame: np.ndarray, normalise: bool = False) -> tuple[np.ndarray, float]:
        """Resize (never up by more than the model's rule), optionally match the stain to the training smears
        (:func:`~stream_app.modes.leukocyte.preprocess.normalise_stain`), and convert to the model's input; returns
        (image, scale)."""
        check_frame(frame)
        h, w = frame.shape[:2]
        scale = self.network_size(h, w)
        size = (max(2, round(w * scale)), max(2, round(h * scale)))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if normalise:
            small = normalise_stain(small)
        return model_input(small, self.cfg.input, self.cfg.clahe_clip, self.cfg.clahe_grid), scale

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray, normalise: bool = False) -> tuple[Detections, dict]:
        t0 = time.perf_counter()
        image, scale = self.prepare(frame, normalise)
        tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        t1 = time.perf_counter()
        out = self.model([tensor])[0]
        t2 = time.perf_counter()
        return (_in_frame(out["boxes"].numpy(), out["labels"].numpy(), out["scores"].numpy(), scale, frame.shape),
                {"preprocess": (t1 - t0) * 1000, "detect": (t2 - t1) * 1000})


class RoutedDetector(Detector):
    """Two detectors of one input kind, routed by scale: ``base`` sees frames at the network's own size rule (a
    BCCD-sized field, one run: the model measured on other labs' smears), ``rescaled`` every frame brought to the
    training scale (tiles of a zoomed-out field, the scale search's looks), where it was trained for small, blurred
    cells and the base model misses more (chosen on BCCD val as 2x2 / 3x3 mosaics: WBC AP50 0.989 / 0.991 against
    0.974 / 0.958; model card)."""

    def __init__(self, base: Detector, rescaled: Detector) -> None:
        for name in ("input", "min_size", "max_size"):
            if getattr(base.cfg, name) != getattr(rescaled.cfg, name):
                raise ValueError(f"detectors differ in {name}: {getattr(base.cfg, name)} vs "
                                 f"{getattr(rescaled.cfg, name)}; a routed pair must see the same input")
        super().__init__(base.model, base.cfg)
        self.base, self._rescaled = base, rescaled

    @property
    def rescaled(self) -> Detector:
        return self._rescaled

    def __call__(self, frame: np.ndarray, normalise: bool = False) -> tuple[Detections, dict]:
        return self.base(frame, normalise)


def weights_for(input_kind: str) -> Path:
    if input_kind not in WEIGHTS:
        raise ValueError(f"unknown detector input {input_kind!r}; one of {tuple(WEIGHTS)}")
    return WEIGHTS[input_kind]


class OnnxDetector(Detector):
    """The same detector exported to ONNX (:mod:`stream_app.modes.leukocyte.export`), run by ONNX Runtime."""

    def __init__(self, session, cfg: DetectorConfig) -> None:
        super().__init__(None, cfg)
        self.session = session

    def __call__(self, frame: np.ndarray, normalise: bool = False) -> tuple[Detections, dict]:
        t0 = time.perf_counter()
        image, scale = self.prepare(frame, normalise)
        tensor = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
        t1 = time.perf_counter()
        boxes, labels, scores = self.session.run(None, {"image": tensor})
        t2 = time.perf_counter()
        return (_in_frame(boxes, labels, scores, scale, frame.shape),
                {"preprocess": (t1 - t0) * 1000, "detect": (t2 - t1) * 1000})


def backend() -> str:
    """``onnx`` (default when the .onnx file and onnxruntime are present) or ``torch``; STREAM_APP_LEUKOCYTE_BACKEND
    forces one."""
    return os.environ.get("STREAM_APP_LEUKOCYTE_BACKEND", "onnx").lower()


@lru_cache(maxsize=4)
def shared_detector(path: str, kind: str | None = None) -> Detector:
    """One detector per weights file per process, shared by every stream. ``kind``: "torch" or "onnx" (default
    :func:`backend`; falls back to torch when there is no ONNX file next to the weights)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, cfg = load_detector(path)
    onnx_path = Path(path).with_suffix(".onnx")
    if (kind or backend()) == "onnx" and onnx_path.is_file():
        try:
            from stream_app.onnx_cpu import cpu_session

            return OnnxDetector(cpu_session(onnx_path), cfg)
        except Exception:  # noqa: BLE001 - fall back to torch, which needs nothing more
            pass
    return Detector(model, cfg)


def routed_detector(path: str, rescaled_path: str | None) -> Detector:
    """``path``'s detector, routed with ``rescaled_path``'s for rescaled frames (:class:`RoutedDetector`; None: alone).
    A light wrapper made per call over the two cached :func:`shared_detector` models."""
    base = shared_detector(path)
    return base if rescaled_path is None else RoutedDetector(base, shared_detector(rescaled_path))


def mode_detector(input_kind: str) -> Detector:
    """The app's detector for ``input_kind``: the shipped model, routed with its multi-scale model when there is one."""
    rescaled = RESCALED_WEIGHTS.get(input_kind)
    return routed_detector(str(weights_for(input_kind)),
                           str(rescaled) if rescaled is not None and rescaled.is_file() else None)
