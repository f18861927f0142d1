"""``python -m stream_app train leukocyte``: fine-tune the detector on BCCD's official train split, pick the epoch
with the best WBC AP50 (then AP50:95, then mAP50) on the val split, write float16 weights + a JSON sidecar.

Augmentation (each sample, seeded): zoom in/out (random crop or pad, 0.7-1.3), horizontal / vertical flips and
90-degree turns (a smear has no up), stain and camera jitter (hue shift, saturation 0.4-1.5, brightness, contrast,
gamma, per-channel gain), Gaussian blur (defocus) and sensor noise. With ``--zoom-out-p P`` a sample is first
seen at another magnification (:func:`zoom_out`): four training fields composed into a wider field, cut to one
field's size, shrunk to 1/2-1/8, blurred, colour-cast, JPEG-compressed and sometimes darkened outside an eyepiece's
circular edge at that small size, then enlarged back to the training scale (with a +-25% error, as a scale estimate
has), which is what the app does to a zoomed-out frame before it detects. The model's input conversion (RGB or
CLAHE + CIELAB) is applied after augmentation, exactly as at inference.

Selection: the epoch with the best val WBC AP50 (then AP50:95, then mAP50); with ``--zoom-out-p`` > 0 the WBC AP50
is the mean over val at 1x, val as 3x3 mosaics and phone-photo proxies made from val (fields shrunk to 1/7 seen
through :func:`~stream_app.modes.leukocyte.zoomout.eyepiece`), each detected at the known scale through
:func:`~stream_app.modes.leukocyte.tiling.detect_scaled`. Training is bounded by ``--max-minutes``; the
learning rate follows a cosine over that time budget.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from stream_app.config import data_dir
from stream_app.modes.leukocyte.data import VocSample, load_split
from stream_app.modes.leukocyte.detector import WEIGHTS, Detector
from stream_app.modes.leukocyte.metrics import coco_ap
from stream_app.modes.leukocyte.model import DetectorConfig, build_detector, class_ids, save_detector
from stream_app.modes.leukocyte.preprocess import model_input
from stream_app.training.loop import BestCheckpoint, TimeBudget, seed_everything, training_logger
from stream_app.training.reports import command_line

log = training_logger("leukocyte")


def augment(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """Return augmented (image, boxes, labels); boxes cut by more than 60% by a crop are dropped."""
    h, w = image.shape[:2]
    boxes = boxes.copy()
    zoom = rng.uniform(0.7, 1.3)
    if zoom < 1.0:  # crop (zoom in)
        ch, cw = int(h * zoom), int(w * zoom)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        image = image[y0:y0 + ch, x0:x0 + cw]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        boxes -= np.array([x0, y0, x0, y0], np.float32)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, cw)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, ch)
        kept = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) >= 0.4 * np.maximum(area, 1)
        boxes, labels = boxes[kept], labels[kept]
    elif zoom > 1.05:  # pad with the background colour (zoom out)
        ph, pw = int(h * zoom), int(w * zoom)
        y0, x0 = int(rng.integers(0, ph - h + 1)), int(rng.integers(0, pw - w + 1))
        fill = np.median(image.reshape(-1, 3), axis=0).astype(np.uint8)
        canvas = np.empty((ph, pw, 3), np.uint8)
        canvas[:] = fill
        canvas[y0:y0 + h, x0:x0 + w] = image
        image = canvas
        boxes += np.array([x0, y0, x0, y0], np.float32)
    h, w = image.shape[:2]
    if rng.random() < 0.5:
        image = image[:, ::-1]
        boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
    if rng.random() < 0.5:
        image = image[::-1]
        boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
    if rng.random() < 0.5:  # transpose (with the flips this gives all 8 symmetries)
        image = image.transpose(1, 0, 2)
        boxes = boxes[:, [1, 0, 3, 2]]
    image = np.ascontiguousarray(image)
    # stain / camera colour
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-12, 12)) % 180
    hsv[..., 1] *= rng.uniform(0.4, 1.5)
    image = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    mean = image.mean()
    image = (image - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.8, 1.2)
    image *= rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    image = 255.0 * (np.clip(image, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 2.0))
    if rng.random() < 0.3:
        image = image + rng.normal(0, rng.uniform(2, 8), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), boxes, labels


def zoom_out(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, pool: list[tuple[np.ndarray, np.ndarray,
             np.ndarray]], rng: np.random.Generator):
    """The sample at a lower magnification, brought back to the training scale (see the module docstring).

    ``pool``: (image, boxes, labels) of the training split, to compose the wider field from."""
    from stream_app.modes.leukocyte.zoomout import eyepiece, visible_boxes

    h, w = image.shape[:2]
    picks = [(image, boxes, labels)] + [pool[int(i)] for i in rng.integers(0, len(pool), 3)]
    order = rng.permutation(4)
    canvas = np.zeros((2 * h, 2 * w, 3), np.uint8)
    all_boxes, all_labels = [], []
    for slot, j in enumerate(order):
        im, b, lab = picks[j]
        if im.shape[:2] != (h, w):
            fx, fy = w / im.shape[1], h / im.shape[0]
            im = cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA)
            b = b * np.array([fx, fy, fx, fy], np.float32)
        r, c = divmod(slot, 2)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
        all_boxes.append(b + np.array([c * w, r * h, c * w, r * h], np.float32))
        all_labels.append(lab)
    x0, y0 = int(rng.integers(0, w + 1)), int(rng.integers(0, h + 1))  # one field's worth of the wider field
    crop = canvas[y0:y0 + h, x0:x0 + w]
    b = np.concatenate(all_boxes) - np.array([x0, y0, x0, y0], np.float32)
    lab = np.concatenate(all_labels)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    clipped = b.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, w)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, h)
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1]) >= 0.6 * np.maximum(area, 1)
    b, lab = clipped[inside], lab[inside]
    factor = float(np.exp(rng.uniform(np.log(1 / 8), np.log(1 / 2))))
    sw, sh = max(8, round(w * factor)), max(8, round(h * factor))
    small = cv2.resize(np.ascontiguousarray(crop), (sw, sh), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.4:  # the edge of an eyepiece's circular field crosses this part of it
        radius = sw * rng.uniform(1.0, 4.0)
        angle = rng.uniform(0, 2 * np.pi)
        reach = radius - rng.uniform(0.1, 0.6) * min(sw, sh)  # how far the centre lies from the middle
        centre = (sw / 2 + reach * np.cos(angle), sh / 2 + reach * np.sin(angle))
        small, weight = eyepiece(small, rng, centre=centre, radius=radius)
    else:
        small, weight = eyepiece(small, rng, centre=(sw / 2, sh / 2), radius=4.0 * max(sw, sh))
    b = b * np.array([sw / w, sh / h, sw / w, sh / h], np.float32)
    b, lab = visible_boxes(b, lab, weight, 0.6)
    back = (1.0 / factor) * rng.uniform(0.8, 1.25)
    out = cv2.resize(small, (max(8, round(sw * back)), max(8, round(sh * back))), interpolation=cv2.INTER_LINEAR)
    fx, fy = out.shape[1] / sw, out.shape[0] / sh
    return out, (b * np.array([fx, fy, fx, fy], np.float32)).astype(np.float32), lab


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def evaluate_samples(detector: Detector, samples: list[VocSample], images: list[np.ndarray] | None = None) -> dict:
    """COCO AP per class on ``samples`` (images loaded unless given)."""
    gts, preds, sizes = [], [], []
    for i, sample in enumerate(samples):
        image = images[i] if images is not None else sample.load()
        det, _ = detector(image)
        gts.append((sample.boxes, sample.labels))
        preds.append((det.boxes, class_ids(det.labels), det.scores))
        sizes.append(image.shape[:2])
    return coco_ap(gts, preds, sizes)


def zoom_val_sets(val_set: list[VocSample], val_images: list[np.ndarray], seed: int = 0, n_mosaic: int = 5,
                  n_phone: int = 2):
    """Val as ``n_mosaic`` 3x3 mosaics and ``n_phone`` phone-photo proxies (fields at 1/7 through an eyepiece; ~60
    network tiles each), each with the RBC size in pixels at which it is detected: [(name, [(image, boxes, labels)],
    rbc_px)]. Small, because every epoch runs them on 2 CPU cores."""
    from stream_app.modes.leukocyte.scale import TRAIN_RBC_PX
    from stream_app.modes.leukocyte.zoomout import mosaic, phone_photo

    n = len(val_set)
    mosaics = []
    for start in np.linspace(0, n, n_mosaic, endpoint=False).astype(int):
        idx = [(start + i) % n for i in range(9)]
        mosaics.append(mosaic([val_images[i] for i in idx], [val_set[i].boxes for i in idx],
                              [val_set[i].labels for i in idx], 3))
    rng = np.random.default_rng(seed)
    phones = [phone_photo(val_images, [s.boxes for s in val_set], [s.labels for s in val_set], rng, 1 / 7)
              for _ in range(n_phone)]
    return [("mosaic3", mosaics, TRAIN_RBC_PX / 3), ("phone7", phones, TRAIN_RBC_PX / 7)]


def evaluate_zoomed(detector: Detector, items, rbc_px: float) -> dict:
    """COCO AP on (image, boxes, labels) items detected at a known RBC size (tiled)."""
    from stream_app.modes.leukocyte.scale import detect_at
    from stream_app.modes.leukocyte.tiling import field_mask

    gts, preds, sizes = [], [], []
    for image, boxes, labels in items:
        mask = field_mask(image)
        det, _ = detect_at(detector, image, rbc_px, mask if not mask.all() else None)
        gts.append((boxes, labels))
        preds.append((det.boxes, class_ids(det.labels), det.scores))
        sizes.append(image.shape[:2])
    return coco_ap(gts, preds, sizes)


def add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--voc", default=None, help="VOC tree (default: STREAM_APP_DATA/bccd)")
    parser.add_argument("--input", choices=("rgb", "clahe_lab"), default="rgb",
                        help="model input: plain RGB, or the paper's CLAHE per channel + CIELAB")
    parser.add_argument("--backbone", choices=("mobilenet_v2_fpn", "resnet50_fpn"), default="mobilenet_v2_fpn")
    parser.add_argument("--min-size", type=int, default=320)
    parser.add_argument("--max-size", type=int, default=427)
    parser.add_argument("--clahe-clip", type=float, default=2.0)
    parser.add_argument("--clahe-grid", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=40, help="upper bound; --max-minutes usually ends it first")
    parser.add_argument("--max-minutes", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--zoom-out-p", type=float, default=0.0,
                        help="share of samples seen at another magnification (zoom_out); > 0 also selects on "
                             "zoomed-out val")
    parser.add_argument("--init", default=None, help="start from these trained weights (continue a run)")
    parser.add_argument("--out", default=None, help="weights file (default: models/leukocyte/detector_<input>.pt)")


def train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    voc = Path(args.voc) if args.voc else data_dir() / "bccd"
    train_set, val_set = load_split(voc, "train"), load_split(voc, "val")
    train_images = [s.load() for s in train_set]
    val_images = [s.load() for s in val_set]
    cfg = DetectorConfig(backbone=args.backbone, input=args.input, min_size=args.min_size, max_size=args.max_size,
                         clahe_clip=args.clahe_clip, clahe_grid=args.clahe_grid)
    if args.init:
        from stream_app.modes.leukocyte.model import load_detector

        model, init_cfg = load_detector(args.init)
        if (init_cfg.backbone, init_cfg.input) != (cfg.backbone, cfg.input):
            raise ValueError(f"--init {args.init} is a {init_cfg.backbone}/{init_cfg.input} model, not {cfg.backbone}/{cfg.input}")
        cfg = init_cfg
        if cfg.input == "rgb":  # load_detector does not know about training: freeze the stem again
            for layer in model.backbone.body[:2]:
                for p in layer.parameters():
                    p.requires_grad_(False)
    else:
        model = build_detector(cfg, pretrained_backbone=args.backbone != "resnet50_fpn")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    out = Path(args.out) if args.out else WEIGHTS[args.input]
    out.parent.mkdir(parents=True, exist_ok=True)  # the history is written there even when no epoch beats --init
    budget = TimeBudget(args.max_minutes)
    warmup, step = (10 if args.init else 50), 0
    # key: WBC AP50, then WBC AP50:95, then mAP50 on val; the weights are saved whenever it improves
    best, history = BestCheckpoint(keep_state=False), []
    zoom_sets = zoom_val_sets(val_set, val_images, args.seed) if args.zoom_out_p > 0 else []
    pool = [(im, s.boxes, s.labels) for im, s in zip(train_images, train_set)]

    def validate() -> tuple[dict, tuple]:
        """Val metrics and the selection key (with --zoom-out-p: WBC AP50 averaged over 1x and the zoomed sets)."""
        detector = Detector(model, cfg)
        metrics = evaluate_samples(detector, val_set, val_images)
        wbc = metrics["per_class"]["WBC"]
        wbc_ap = [wbc["ap50"]]
        for name, items, rbc_px in zoom_sets:
            zoomed = evaluate_zoomed(detector, items, rbc_px)
            metrics[name] = zoomed
            wbc_ap.append(zoomed["per_class"]["WBC"]["ap50"])
        metrics["selection_wbc_ap50"] = round(float(np.mean(wbc_ap)), 4)
        return metrics, (metrics["selection_wbc_ap50"], wbc["ap50_95"], metrics["map50"])

    if args.init:  # only an improvement on the starting point is saved
        model.eval()
        start_metrics, start_key = validate()
        best.consider(start_key, epoch=0, val=start_metrics)
        log.info("start point %s: val WBC ap50 (selection) %.4f ap50_95 %.4f map50 %.4f", args.init, *best.score)
    log.info("training %s input=%s on %d images (val %d), budget %.1f min", cfg.backbone, cfg.input,
             len(train_set), len(val_set), args.max_minutes)
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(train_set))
        losses = []
        for b in range(0, len(order) - args.batch_size + 1, args.batch_size):
            if budget.expired():
                break
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * budget.fraction()))
            lr *= min(1.0, (step + 1) / warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images, targets = [], []
            for i in order[b:b + args.batch_size]:
                s = train_set[i]
                img, boxes, labels = train_images[i], s.boxes, s.labels
                if args.zoom_out_p > 0 and rng.random() < args.zoom_out_p:
                    img, boxes, labels = zoom_out(img, boxes, labels, pool, rng)
                img, boxes, labels = augment(img, boxes, labels, rng)
                images.append(_to_tensor(model_input(img, cfg.input, cfg.clahe_clip, cfg.clahe_grid)))
                targets.append({"boxes": torch.from_numpy(boxes).float().reshape(-1, 4),
                                "labels": torch.from_numpy(labels).long()})
            loss_dict = model(images, targets)
            loss = sum(loss_dict.values())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
        model.eval()
        metrics, key = validate()
        wbc = metrics["per_class"]["WBC"]
        minutes = budget.elapsed_s() / 60
        history.append({"epoch": epoch + 1, "minutes": round(minutes, 2), "loss": round(float(np.mean(losses or [0])), 4),
                        "val": metrics})
        log.info("epoch %d  %.1f min  loss %.3f  val WBC ap50 %.4f ap50_95 %.4f  map50 %.4f  (RBC %.3f, Plt %.3f)%s",
                 epoch + 1, minutes, np.mean(losses or [0]), wbc["ap50"], wbc["ap50_95"], metrics["map50"],
                 metrics["per_class"]["RBC"]["ap50"], metrics["per_class"]["Platelets"]["ap50"],
                 "".join(f"  {name} WBC ap50 {metrics[name]['per_class']['WBC']['ap50']:.4f}"
                         for name, _, _ in zoom_sets))
        if best.consider(key, epoch=epoch + 1, val=metrics):
            command = command_line("train leukocyte", args,
                                   [k for k in vars(args) if k not in ("command", "func", "mode", "verbose", "voc")])
            save_detector(model, cfg, out, {"trained": {"data": str(voc), "split": "train", "selected_on": "val",
                                                        "seed": args.seed, "epoch": epoch + 1, "val": metrics,
                                                        "command": command}})
            log.info("saved best so far to %s", out)
        if budget.expired():
            break
    out.with_name(out.stem + "_history.json").write_text(json.dumps(history, indent=1) + "\n")
    print(json.dumps({"weights": str(out), "best": best.info or None}))
    return 0


if __name__ == "__main__":  # same as `python -m stream_app train leukocyte ...`
    _parser = argparse.ArgumentParser(prog="python -m stream_app.modes.leukocyte.train")
    add_train_args(_parser)
    raise SystemExit(train(_parser.parse_args()))
