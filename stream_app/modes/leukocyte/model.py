"""The leukocyte detector: torchvision Faster R-CNN on a CPU-friendly backbone.

Two backbones from one builder (:func:`build_detector`):

* ``mobilenet_v2_fpn`` (the shipped one): torchvision's MobileNetV2 ImageNet features (the offline file
  ``models/vendor/mobilenet_v2-b0353104.pth``), tapped at strides 8, 16 and 32 into a small 64-channel FPN, with
  anchors sized for blood cells (platelets ~15-40 px, RBCs ~60-120 px, WBCs ~80-240 px on a 640x480 field) and a
  256-wide box head. Small enough (~3 M parameters) to fit the 25 MB weight budget in float16 and to run at
  interactive rates on 2 CPU cores.
* ``resnet50_fpn``: torchvision's ``fasterrcnn_resnet50_fpn`` (the source paper's model) with the same class head, for
  users with a GPU and for the ``bench`` comparison; it needs no weights to be built.

Shapes: the model takes a list of ``3xHxW`` float tensors in [0, 1] (RGB, or CIELAB when the model's ``input`` is
``clahe_lab``, see :mod:`stream_app.modes.leukocyte.preprocess`) and returns, per image, ``boxes`` (Nx4, x1y1x2y2 pixels of
that image), ``labels`` (N, 1=WBC 2=RBC 3=Platelets) and ``scores`` (N).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stream_app.backbones import IMAGENET_MEAN, IMAGENET_STD, mobilenet_v2

CLASSES = ("WBC", "RBC", "Platelets")  # label ids 1..3; 0 is background
INPUTS = ("rgb", "clahe_lab")
BACKBONES = ("mobilenet_v2_fpn", "resnet50_fpn")
LAB_MEAN, LAB_STD = (0.5, 0.5, 0.5), (0.25, 0.06, 0.06)  # OpenCV 8-bit Lab / 255: a, b sit near 0.5 with a small spread


def label_names(ids) -> np.ndarray:
    """The network's label ids (1..3) as class names (what :class:`~stream_app.results.Detections` holds)."""
    return np.asarray(CLASSES)[np.asarray(ids, np.int64).reshape(-1) - 1]


def class_ids(names) -> np.ndarray:
    """Class names back to label ids 1..3 (what VOC ground truth and :func:`.metrics.coco_ap` use)."""
    index = {name: i + 1 for i, name in enumerate(CLASSES)}
    return np.array([index[str(n)] for n in np.asarray(names).reshape(-1)], np.int64)


@dataclass
class DetectorConfig:
    """Everything needed to rebuild a trained detector; stored next to its weights."""

    backbone: str = "mobilenet_v2_fpn"
    input: str = "rgb"  # "rgb" or "clahe_lab"
    min_size: int = 320  # shorter side of the image the network sees (640x480 -> 427x320)
    max_size: int = 427
    clahe_clip: float = 2.0
    clahe_grid: int = 8
    fpn_channels: int = 64
    box_head_width: int = 256

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {self.input!r}")


def _norm(cfg: DetectorConfig) -> tuple[tuple, tuple]:
    return (LAB_MEAN, LAB_STD) if cfg.input == "clahe_lab" else (IMAGENET_MEAN, IMAGENET_STD)


def _cell_anchors(n_levels: int):
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    # Per FPN level (stride 8, 16, 32, pool): sizes in pixels of the resized image (2/3 of a 640x480 field).
    sizes = ((12, 20, 28), (36, 52, 72), (96, 128, 160), (192, 240, 288))[:n_levels]
    ratios = ((0.7, 1.0, 1.4),) * n_levels
    return AnchorGenerator(sizes, ratios)


def _mobilenet_v2_fpn(cfg: DetectorConfig, pretrained: bool) -> nn.Module:
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
    from torchvision.ops.misc import FrozenBatchNorm2d

    net = mobilenet_v2(pretrained, norm_layer=FrozenBatchNorm2d)  # small batches: keep ImageNet BN statistics
    features = net.features[:18]  # drop the 1x1 conv to 1280 channels: 320 channels at stride 32 is plenty here
    if cfg.input == "rgb":  # the RGB stem is already right for RGB; a CIELAB input needs it to adapt
        for layer in features[:2]:
            for p in layer.parameters():
                p.requires_grad_(False)
    # outputs: idx 6 -> 32 ch stride 8, idx 13 -> 96 ch stride 16, idx 17 -> 320 ch stride 32
    return_layers = {"6": "0", "13": "1", "17": "2"}
    return BackboneWithFPN(features, return_layers, [32, 96, 320], cfg.fpn_channels, extra_blocks=LastLevelMaxPool())


def build_detector(cfg: DetectorConfig | None = None, pretrained_backbone: bool = True) -> nn.Module:
    """A Faster R-CNN for WBC / RBC / Platelets (4 classes with background), untrained head."""
    from torchvision.models.detection import FasterRCNN, fasterrcnn_resnet50_fpn
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    cfg = cfg or DetectorConfig()
    mean, std = _norm(cfg)
    common = dict(min_size=cfg.min_size, max_size=cfg.max_size, image_mean=list(mean), image_std=list(std),
                  box_detections_per_img=100)
    if cfg.backbone == "resnet50_fpn":
        model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=len(CLASSES) + 1, **common)
        return model
    backbone = _mobilenet_v2_fpn(cfg, pretrained_backbone)
    roi_pool = MultiScaleRoIAlign(featmap_names=["0", "1", "2"], output_size=7, sampling_ratio=2)
    head = TwoMLPHead(cfg.fpn_channels * 7 * 7, cfg.box_head_width)
    model = FasterRCNN(
        backbone, num_classes=None, rpn_anchor_generator=_cell_anchors(4), box_roi_pool=roi_pool, box_head=head,
        box_predictor=FastRCNNPredictor(cfg.box_head_width, len(CLASSES) + 1),
        rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150,
        box_batch_size_per_image=256, box_score_thresh=0.05, **common)
    return model


def save_detector(model: nn.Module, cfg: DetectorConfig, path: str | Path, meta: dict | None = None) -> Path:
    """Weights as float16 (halves the file; accuracy unchanged at float32 inference) plus ``<path>.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save(state, path)
    path.with_suffix(".json").write_text(json.dumps({"config": asdict(cfg), **(meta or {})}, indent=2) + "\n")
    return path


def load_detector(path: str | Path) -> tuple[nn.Module, DetectorConfig]:
    """Rebuild a saved detector (float32, eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: detector weights not found")
    meta = json.loads(path.with_suffix(".json").read_text())
    cfg = DetectorConfig(**meta["config"])
    model = build_detector(cfg, pretrained_backbone=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    model.eval()
    return model, cfg
