"""Export a trained detector to ONNX (the TorchScript-based exporter, opset 11, dynamic image size) for ONNX Runtime,
which runs the same Faster R-CNN faster on a CPU (see ``../shared/design.md``).

    python -m stream_app.modes.leukocyte.export models/leukocyte/detector_rgb.pt   # writes detector_rgb.onnx beside it

The graph holds the whole torchvision pipeline (normalise, resize, backbone, RPN, box head, NMS); it takes one
``3xHxW`` float image in [0, 1] already in the model's input space, and returns boxes, labels, scores.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

from stream_app.modes.leukocyte.model import load_detector


def export_onnx(weights: str | Path, out: str | Path | None = None) -> Path:
    weights = Path(weights)
    out = Path(out) if out else weights.with_suffix(".onnx")
    model, cfg = load_detector(weights)
    h = cfg.min_size
    w = min(cfg.max_size, round(h * 4 / 3))
    example = torch.rand(3, h, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, ([example],), str(out), opset_version=11, dynamo=False,
                          input_names=["image"], output_names=["boxes", "labels", "scores"],
                          dynamic_axes={"image": {1: "height", 2: "width"}, "boxes": {0: "n"}, "labels": {0: "n"},
                                        "scores": {0: "n"}})
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(export_onnx(arg))
