"""The fingerspelling classifiers and their loading (once per process, shared by every stream).

- ``LandmarkMLP``: signer-independent landmark features (:func:`stream_app.modes.fingerspell.features.hand_features`:
  a palm frame, its orientation, bones, joint angles, thumb relations) -> 26 letters, with the training set's feature
  mean and spread stored in the weights. It never sees the background.
- ``CropNet``: a Spatial Transformer (localisation net -> affine ``theta`` initialised to the identity ->
  ``F.affine_grid`` / ``F.grid_sample``) in front of torchvision's ImageNet-pretrained MobileNetV2 (the registry-shipped
  ``mobilenet_v2-b0353104.pth`` in ``VENDOR_DIR``), on the 128 px square hand crop, mirrored to the right hand.
  With ``mask`` set (:mod:`.handmask`), everything away from the hand's landmarks is black before the crop model
  sees it, in training and in use.
- Fusion: a weighted average of the two probability vectors, ``p = w * p_crop + (1 - w) * p_landmarks``. ``w``, which
  of the three is shipped, the feature blocks and the mask are the training recipe's (chosen on held-out signers,
  ``evaluate fingerspell --signers``) and stored in ``models/fingerspell/fusion.json``.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stream_app.backbones import IMAGENET_MEAN, IMAGENET_STD, mobilenet_v2
from stream_app.config import MODELS_DIR
from stream_app.modes.fingerspell import LETTERS
from stream_app.modes.fingerspell.features import DEFAULT_BLOCKS, hand_features, n_features
from stream_app.modes.fingerspell.handmask import FINGER_WIDTH, crop_points, mask_crop
from stream_app.modes.fingerspell.hands import square_crop

MODEL_DIR = MODELS_DIR / "fingerspell"
LANDMARK_FILE = "landmarks.pt"
CROP_FILE = "crop.pt"
CROP_ONNX = "crop.onnx"
FUSION_FILE = "fusion.json"


class ModelMissing(FileNotFoundError):
    """Trained weights are absent (run ``python -m stream_app train fingerspell``)."""


class LandmarkMLP(nn.Module):
    """Standardised features (mean / std of the training set, kept as buffers) -> two hidden layers -> logits."""

    def __init__(self, n_in: int = 63, n_out: int = len(LETTERS), hidden: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        self.n_in = n_in
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, n_out))

    def set_scaling(self, feats: np.ndarray) -> None:
        self.mean.copy_(torch.from_numpy(feats.mean(axis=0).astype(np.float32)))
        self.std.copy_(torch.from_numpy(feats.std(axis=0).astype(np.float32) + 1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class SpatialTransformer(nn.Module):
    """Localisation net on a 64 px copy -> 6 affine parameters (identity at start) -> resampled input."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AvgPool2d(2), nn.Flatten(),  # 64 px -> 8x8 -> 4x4 (fixed ops: ONNX-exportable)
            nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 6))
        nn.init.zeros_(self.loc[-1].weight)
        with torch.no_grad():
            self.loc[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.loc(F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class CropNet(nn.Module):
    """Input: float RGB in [0, 1], (N, 3, S, S). ImageNet normalisation is inside the model."""

    def __init__(self, n_out: int = len(LETTERS), pretrained: bool = True) -> None:
        super().__init__()
        backbone = mobilenet_v2(pretrained)
        self.stn = SpatialTransformer()
        self.features = backbone.features
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(backbone.last_channel, n_out))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stn(x)
        x = self.features((x - self.mean) / self.std)
        return self.head(x.mean(dim=(2, 3)))


def crops_to_tensor(crops: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) or (S, S, 3) uint8 RGB -> (N, 3, S, S) float in [0, 1]."""
    arr = crops[None] if crops.ndim == 3 else crops
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)


def save_half(model: nn.Module, path: Path) -> None:
    """Weights as float16 (half the size; cast back to float32 on load)."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save(state, path)


def export_crop_onnx(model: CropNet, path: Path, size: int = 128) -> Path:
    """The crop model for ONNX Runtime (opset 20: the first with AffineGrid/GridSample), dynamic batch. ORT runs it
    several times faster than eager PyTorch on 2 cores, which keeps the live page at camera rate."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.rand(1, 3, size, size),), str(path), opset_version=20, dynamo=False,
                          input_names=["crop"], output_names=["logits"],
                          dynamic_axes={"crop": {0: "n"}, "logits": {0: "n"}})
    return path


def load_into(model: nn.Module, path: Path) -> nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(model, LandmarkMLP) and "mean" not in state:  # weights from before the scaling buffers: identity
        state = dict(state, mean=model.mean, std=model.std)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


@dataclass
class Classifiers:
    """The trained models and how they are combined. ``shipped`` is "landmarks", "crop" or "fused"."""

    landmarks: LandmarkMLP
    crop: CropNet | None
    crop_weight: float
    shipped: str
    crop_size: int
    margin: float
    crop_session: object | None = None  # ONNX Runtime session of the same crop model, used when present
    feature_blocks: tuple[str, ...] = DEFAULT_BLOCKS
    mask: bool = False          # black out the crop away from the hand (handmask) before the crop model
    mask_width: float = FINGER_WIDTH

    def landmark_input(self, points: np.ndarray, mirrored) -> np.ndarray:
        """The landmark model's features of (21, 3) or (N, 21, 3) pixel landmarks."""
        return hand_features(points, mirrored, self.feature_blocks)

    def crop_input(self, frame: np.ndarray, points_xy: np.ndarray, mirrored: bool) -> np.ndarray:
        """The crop model's input for a hand whose landmarks are ``points_xy`` (pixels of ``frame``)."""
        crop = square_crop(frame, points_xy, self.crop_size, self.margin, mirrored)
        if self.mask:
            crop = mask_crop(crop, crop_points(points_xy, self.crop_size, self.margin, mirrored), self.mask_width)
        return crop

    @torch.inference_mode()
    def predict(self, features: np.ndarray, crops: np.ndarray | None, which: tuple[str, ...] | None = None
                ) -> dict[str, np.ndarray]:
        """Probabilities (N, 26) per model name; ``which`` limits the models run (default: what ``shipped`` needs)."""
        which = which or (("landmarks", "crop") if self.shipped == "fused" else (self.shipped,))
        out: dict[str, np.ndarray] = {}
        feats = np.asarray(features, np.float32).reshape(-1, self.landmarks.n_in)
        if "landmarks" in which or "fused" in which:
            out["landmarks"] = torch.softmax(self.landmarks(torch.from_numpy(feats)), 1).numpy()
        if self.crop is not None and crops is not None and ("crop" in which or "fused" in which):
            x = crops_to_tensor(crops)
            if self.crop_session is not None:
                logits = torch.from_numpy(self.crop_session.run(None, {"crop": x.numpy()})[0])
            else:
                logits = self.crop(x)
            out["crop"] = torch.softmax(logits, 1).numpy()
        if "landmarks" in out and "crop" in out:
            out["fused"] = self.crop_weight * out["crop"] + (1.0 - self.crop_weight) * out["landmarks"]
        return out


def load_classifiers(model_dir: Path | None = None) -> Classifiers:
    """Load from ``model_dir`` (default ``models/fingerspell``); raises :class:`ModelMissing`."""
    model_dir = Path(model_dir or MODEL_DIR)
    meta_path = model_dir / FUSION_FILE
    if not (model_dir / LANDMARK_FILE).is_file() or not meta_path.is_file():
        raise ModelMissing(f"no trained fingerspelling model in {model_dir}: run `python -m stream_app train fingerspell`")
    meta = json.loads(meta_path.read_text())
    blocks = tuple(meta.get("features", ("legacy",)))  # a fusion.json without blocks: the first model's input
    landmarks = load_into(LandmarkMLP(n_features(blocks), hidden=int(meta.get("hidden", 256))),
                          model_dir / LANDMARK_FILE)
    crop, session = None, None
    if (model_dir / CROP_FILE).is_file():
        crop = load_into(CropNet(pretrained=False), model_dir / CROP_FILE)
        if (model_dir / CROP_ONNX).is_file() and os.environ.get("STREAM_APP_FINGERSPELL_TORCH") != "1":
            from stream_app.onnx_cpu import cpu_session

            session = cpu_session(model_dir / CROP_ONNX)
    shipped = meta.get("shipped", "landmarks")
    if crop is None and shipped != "landmarks":
        shipped = "landmarks"
    return Classifiers(landmarks, crop, float(meta.get("crop_weight", 0.5)), shipped,
                       int(meta.get("crop_size", 128)), float(meta.get("margin", 0.2)), session, blocks,
                       bool(meta.get("mask", False)), float(meta.get("mask_width", FINGER_WIDTH)))


@functools.lru_cache(maxsize=2)
def shared_classifiers(model_dir: str | None = None) -> Classifiers:
    """Loaded once per process and shared by every processor (inference only, no state)."""
    return load_classifiers(Path(model_dir) if model_dir else None)
