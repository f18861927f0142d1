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

import numpy as np
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


def check_onnx(weights: str | Path, onnx_path: str | Path, image: np.ndarray) -> float:
    """Largest difference (pixels) between each confident torch box and its nearest ONNX Runtime box, on one
    prepared image (HxWx3 uint8 in the model's input space)."""
    import onnxruntime as ort

    model, _ = load_detector(weights)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)
    with torch.inference_mode():
        ref = model([tensor])[0]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    boxes, labels, scores = session.run(None, {"image": tensor.numpy()})
    from stream_app.modes.leukocyte.tracking import iou_matrix

    strong = ref["boxes"].numpy()[ref["scores"].numpy() >= 0.5]
    if len(strong) == 0:
        return 0.0
    if len(boxes) == 0:
        return float("inf")
    best = iou_matrix(strong, boxes).argmax(axis=1)
    return float(np.abs(strong - boxes[best]).max())

if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(export_onnx(arg))
