"""``python -m stream_app train fingerspell``: train the landmark MLP and the STN-MobileNetV2 crop model, choose the
fusion weight and the shipped model on the validation split, write the weights and ``MODEL_CARD.md``.

Data (through the hand-finder cache, :mod:`stream_app.modes.fingerspell.data`):
- train: Roboflow ``train`` split (504 photos x 3 copies) + Massey letters of every hand not held out;
- validation (checkpoint choice, fusion weight, which model ships): Roboflow ``valid`` split (144 other photos);
- test (never seen here): Roboflow ``test`` split (72 other photos), Massey leave-one-hand-out (``evaluate``).

Recipe: the source paper's optimiser as the baseline, Adam (lr 1e-3) with ExponentialLR; class-balanced sampling;
augmentations for the real world: Massey's cut-out hands pasted on background patches cut from Roboflow photos (outside
the hand box), rotation, scale, shift, brightness / contrast / colour / gamma, a lighting gradient, blur, noise.
Mirroring: every hand is mirrored to the right hand before it reaches a model (crops and landmarks), with its label
unchanged - a letter signed with the left hand is the mirror image of the same letter. Seeded; bounded by
``--max-minutes``; the best validation checkpoint is written as it goes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from stream_app.modes.fingerspell import LETTERS
from stream_app.modes.fingerspell.data import CACHE_CROP, CROP_MARGIN, CROP_SIZE, letter_index, load_cache
from stream_app.modes.fingerspell.hands import landmark_features
from stream_app.modes.fingerspell.models import (CROP_FILE, CROP_ONNX, FUSION_FILE, LANDMARK_FILE, MODEL_DIR,
                                                 CropNet, LandmarkMLP, crops_to_tensor, export_crop_onnx, load_into,
                                                 save_half)
from stream_app.training.loop import BestCheckpoint, TimeBudget, seed_everything, training_logger
from stream_app.training.reports import command_line, file_sizes_mb, write_model_card as write_card


log = training_logger("fingerspell").info  # progress to stderr: stdout carries the JSON that `evaluate` prints


def split_masks(data: dict, holdout: str | None = None) -> dict[str, np.ndarray]:
    """Boolean masks over the cache (found hands only for train/valid)."""
    src, split, found = data["source"], data["split"], data["found"]
    massey_train = (src == "massey") & (split != (holdout or "")) if holdout else (src == "massey")
    return {
        "train": found & (((src == "rf") & (split == "train")) | massey_train),
        "valid": found & (src == "rf") & (split == "valid"),
        "test": (src == "rf") & (split == "test"),
    }


# ----------------------------------------------------------------------------------------------- landmark MLP
def _augment_landmarks(points: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Canonical (mirrored) wrist-relative landmarks (N, 21, 3): rotation in the image plane, aspect jitter, noise."""
    n = points.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(15)
    c, s = torch.cos(angle), torch.sin(angle)
    x, y = points[..., 0], points[..., 1]
    sx = 1 + (torch.rand(n, 1, generator=gen) * 2 - 1) * 0.1
    xr = (c[:, None] * x - s[:, None] * y) * sx
    yr = s[:, None] * x + c[:, None] * y
    out = torch.stack([xr, yr, points[..., 2]], dim=-1)
    scale = out[..., :2].norm(dim=-1).amax(dim=1).clamp_min(1e-6)[:, None, None]
    out = out / scale
    return out + torch.randn(out.shape, generator=gen) * 0.01


def train_landmarks(feats: np.ndarray, labels: np.ndarray, *, epochs: int = 250, seed: int = 0,
                    valid: tuple[np.ndarray, np.ndarray] | None = None, hidden: int = 256) -> tuple[LandmarkMLP, float]:
    """Adam 1e-3 + ExponentialLR, class-weighted loss, on-the-fly augmentation. Returns (model, best valid acc)."""
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    model = LandmarkMLP(hidden=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.99)
    x = torch.from_numpy(feats.reshape(-1, 21, 3).astype(np.float32))
    y = torch.from_numpy(labels)
    counts = torch.bincount(y, minlength=len(LETTERS)).float()
    weights = torch.where(counts > 0, counts.sum() / (counts.clamp_min(1) * (counts > 0).sum()), torch.zeros(1))
    best = BestCheckpoint(ties_improve=True, start=-1.0)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 128):
            idx = order[i:i + 128]
            xb = _augment_landmarks(x[idx], gen).reshape(len(idx), 63)
            loss = F.cross_entropy(model(xb), y[idx], weight=weights, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if valid is not None and (epoch % 10 == 9 or epoch == epochs - 1):
            best.consider(accuracy(predict_landmarks(model, valid[0]), valid[1]), model)
    best.restore(model)
    return model.eval(), best.score


@torch.inference_mode()
def predict_landmarks(model: LandmarkMLP, feats: np.ndarray) -> np.ndarray:
    model.eval()
    return torch.softmax(model(torch.from_numpy(feats.astype(np.float32).reshape(-1, 63))), 1).numpy()


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean()) if len(labels) else float("nan")


def cache_features(data: dict, mask: np.ndarray) -> np.ndarray:
    """Landmark features of the cached hands selected by ``mask`` (each mirrored as its handedness says)."""
    if not mask.any():
        return np.zeros((0, 63), np.float32)
    return np.stack([landmark_features(p, m) for p, m in zip(data["points"][mask], data["mirrored"][mask])])


# ------------------------------------------------------------------------------------------------- crop model
class CropAugmenter:
    """160 px cached crop -> augmented 128 px classifier crop (numpy/OpenCV, per sample)."""

    def __init__(self, backgrounds: np.ndarray, rng: np.random.Generator) -> None:
        self.backgrounds = backgrounds
        self.rng = rng

    def paste(self, crop: np.ndarray) -> np.ndarray:
        """A cut-out hand on black -> the same hand on a random background patch."""
        if not len(self.backgrounds):
            return crop
        r = self.rng
        mask = (crop.max(axis=2) > 30).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 0)[..., None]
        bg = self.backgrounds[r.integers(len(self.backgrounds))]
        if r.random() < 0.5:
            bg = bg[:, ::-1]
        k = int(r.integers(4))
        bg = np.rot90(bg, k)
        return (crop * alpha + bg * (1 - alpha)).astype(np.uint8)

    def __call__(self, crop: np.ndarray, massey: bool) -> np.ndarray:
        r = self.rng
        if massey and r.random() < 0.75:
            crop = self.paste(crop)
        angle = r.uniform(-15, 15)
        scale = r.uniform(0.88, 1.12)
        c = CACHE_CROP / 2
        m = cv2.getRotationMatrix2D((c, c), angle, scale)
        off = (CACHE_CROP - CROP_SIZE) / 2
        m[0, 2] += -off + r.uniform(-0.06, 0.06) * CROP_SIZE
        m[1, 2] += -off + r.uniform(-0.06, 0.06) * CROP_SIZE
        img = cv2.warpAffine(crop, m, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img = img.astype(np.float32)
        # colour: brightness, contrast, saturation, gamma, a lighting gradient
        img = img * r.uniform(0.7, 1.3) + r.uniform(-20, 20)
        mean = img.mean()
        img = (img - mean) * r.uniform(0.7, 1.3) + mean
        grey = img.mean(axis=2, keepdims=True)
        img = grey + (img - grey) * (0.0 if r.random() < 0.05 else r.uniform(0.6, 1.4))
        img = img * r.uniform(0.9, 1.1, size=3)  # white balance
        if r.random() < 0.3:
            ramp = np.linspace(-1, 1, CROP_SIZE, dtype=np.float32)
            theta = r.uniform(0, 2 * np.pi)
            grad = np.cos(theta) * ramp[None, :] + np.sin(theta) * ramp[:, None]
            img = img * (1 + r.uniform(0.1, 0.4) * grad[..., None])
        img = np.clip(img, 0, 255)
        img = 255.0 * (img / 255.0) ** r.uniform(0.75, 1.33)
        if r.random() < 0.3:
            img = cv2.GaussianBlur(img, (0, 0), r.uniform(0.5, 1.5))
        if r.random() < 0.2:
            img = img + r.normal(0, r.uniform(2, 8), img.shape)
        return np.clip(img, 0, 255).astype(np.uint8)


def center_crops(crops160: np.ndarray) -> np.ndarray:
    off = (CACHE_CROP - CROP_SIZE) // 2
    return np.ascontiguousarray(crops160[:, off:off + CROP_SIZE, off:off + CROP_SIZE])


@torch.inference_mode()
def predict_crops(model: CropNet, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    out = [torch.softmax(model(crops_to_tensor(crops[i:i + batch])), 1).numpy() for i in range(0, len(crops), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(LETTERS)), np.float32)


def train_crop(crops: np.ndarray, labels: np.ndarray, massey: np.ndarray, backgrounds: np.ndarray, *,
               valid: tuple[np.ndarray, np.ndarray], minutes: float, seed: int = 0, batch_size: int = 32,
               lr: float = 1e-3, gamma: float = 0.9, max_epochs: int = 40, checkpoint: Path | None = None
               ) -> tuple[CropNet, float, list[dict]]:
    """Class-balanced sampling, Adam + ExponentialLR (per epoch); keeps the best validation checkpoint."""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    aug = CropAugmenter(backgrounds, rng)
    model = CropNet(pretrained=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    counts = np.bincount(labels, minlength=len(LETTERS)).astype(np.float64)
    p = 1.0 / counts[labels]
    p /= p.sum()
    valid_crops = center_crops(valid[0])
    budget = TimeBudget(minutes)
    best, history = BestCheckpoint(ties_improve=True, start=-1.0), []
    epoch_s = 0.0
    for epoch in range(max_epochs):
        if not budget.fits(epoch_s):
            break
        t0 = time.time()
        model.train()
        idx = rng.choice(len(labels), size=len(labels), p=p)  # class-balanced epoch of the same size
        losses = []
        for i in range(0, len(idx), batch_size):
            b = idx[i:i + batch_size]
            if len(b) < 2:
                continue
            xb = crops_to_tensor(np.stack([aug(crops[j], bool(massey[j])) for j in b]))
            loss = F.cross_entropy(model(xb), torch.from_numpy(labels[b]), label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if budget.expired(grace_s=60):
                break
        sched.step()
        acc = accuracy(predict_crops(model, valid_crops), valid[1])
        epoch_s = time.time() - t0
        history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4), "valid_acc": round(acc, 4),
                        "seconds": round(epoch_s, 1)})
        log(f"crop epoch {epoch + 1}: loss {np.mean(losses):.3f}, valid acc {acc:.4f}, {epoch_s:.0f} s")
        if best.consider(acc, model) and checkpoint is not None:
            save_half(model, checkpoint)
    best.restore(model)
    return model.eval(), best.score, history


# ---------------------------------------------------------------------------------------------------- command
def add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-minutes", type=float, default=25.0, help="wall-clock bound for the crop model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(MODEL_DIR), help="where the weights and the model card go")
    parser.add_argument("--skip-crop", action="store_true", help="train only the landmark MLP")
    parser.add_argument("--landmark-epochs", type=int, default=250)
    parser.add_argument("--crop-epochs", type=int, default=40, help="upper bound; --max-minutes usually stops first")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (the paper's 1e-3)")
    parser.add_argument("--gamma", type=float, default=0.9, help="ExponentialLR decay per epoch")
    parser.add_argument("--rebuild-cache", action="store_true", help="run the hand finder over the data again")
    parser.add_argument("--limit", type=int, default=0, help="use only N training hands (smoke tests)")


def run_train(args: argparse.Namespace) -> int:
    torch.set_num_threads(2)
    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.rebuild_cache:
        from stream_app.modes.fingerspell.data import build_cache

        build_cache(force=True, log=log)
    data = load_cache()
    masks = split_masks(data)
    if args.limit:
        keep = np.zeros_like(masks["train"])
        keep[np.random.default_rng(args.seed).permutation(np.flatnonzero(masks["train"]))[:args.limit]] = True
        masks["train"] = keep
        masks["valid"] &= np.cumsum(masks["valid"]) <= args.limit
    y_all = letter_index(data["letter"])
    feats = {k: cache_features(data, m) for k, m in masks.items() if k != "test"}
    ys = {k: y_all[m] for k, m in masks.items()}
    log(f"train {masks['train'].sum()} hands, valid {masks['valid'].sum()} hands")

    mlp, mlp_acc = train_landmarks(feats["train"], ys["train"], epochs=args.landmark_epochs, seed=args.seed,
                                   valid=(feats["valid"], ys["valid"]))
    torch.save(mlp.state_dict(), out / LANDMARK_FILE)
    log(f"landmark MLP: valid acc {mlp_acc:.4f}")
    meta = {"labels": list(LETTERS), "crop_size": CROP_SIZE, "margin": CROP_MARGIN, "hidden": 256, "gamma": args.gamma,
            "shipped": "landmarks", "crop_weight": 0.0, "seed": args.seed,
            "valid": {"landmarks": round(mlp_acc, 4)}, "date": date.today().isoformat()}
    (out / FUSION_FILE).write_text(json.dumps(meta, indent=1))
    history: list[dict] = []
    if not args.skip_crop:
        crop, crop_acc, history = train_crop(
            data["crops"][masks["train"]], ys["train"], data["source"][masks["train"]] == "massey",
            data["backgrounds"], valid=(data["crops"][masks["valid"]], ys["valid"]),
            minutes=args.max_minutes, seed=args.seed, batch_size=args.batch_size, lr=args.lr, gamma=args.gamma,
            max_epochs=args.crop_epochs, checkpoint=out / CROP_FILE)
        save_half(crop, out / CROP_FILE)
        crop = load_into(CropNet(pretrained=False), out / CROP_FILE)  # exactly the shipped (float16) weights
        export_crop_onnx(crop, out / CROP_ONNX, CROP_SIZE)
        p_lm = predict_landmarks(mlp, feats["valid"])
        p_crop = predict_crops(crop, center_crops(data["crops"][masks["valid"]]))
        scores = {round(w, 2): accuracy(w * p_crop + (1 - w) * p_lm, ys["valid"]) for w in np.linspace(0, 1, 11)}
        best_w = max(scores, key=lambda w: (scores[w], -abs(w - 0.5)))
        valid = {"landmarks": round(mlp_acc, 4), "crop": round(crop_acc, 4), "fused": round(scores[best_w], 4)}
        shipped = max(("landmarks", "crop", "fused"), key=lambda k: valid[k])  # a tie goes to the cheaper model
        meta.update(shipped=shipped, crop_weight=float(best_w), valid=valid,
                    fusion_grid={str(k): round(v, 4) for k, v in scores.items()})
        log(f"crop model: valid acc {crop_acc:.4f}; fused (w={best_w}) {scores[best_w]:.4f}; shipped: {shipped}")
    meta["train_minutes"] = round((time.time() - started) / 60, 1)
    meta["crop_history"] = history
    meta["command"] = command_line("train fingerspell", args, ("max_minutes", "seed"))
    meta["data"] = {k: int(m.sum()) for k, m in masks.items() if k != "test"}
    meta["hand_found_rate"] = {f"{src}:{sp}": round(float(data["found"][(data["source"] == src) & (data["split"] == sp)]
                                                          .mean()), 4)
                               for src, sp in sorted(set(zip(data["source"], data["split"])))}
    (out / FUSION_FILE).write_text(json.dumps(meta, indent=1))
    write_model_card(out, meta)
    log(f"wrote {out} in {meta['train_minutes']} min")
    return 0


def write_model_card(out: Path, meta: dict) -> None:
    """The training half of ``MODEL_CARD.md`` (held-out metrics are added from ``evaluate`` runs, below the marker)."""
    marker = "<!-- held-out metrics below -->"
    sizes = file_sizes_mb(out)
    lines = [
        "# Fingerspelling model card", "",
        f"Trained {meta['date']} with `{meta['command']}` (seed {meta['seed']}, {meta['train_minutes']} min on 2 CPU "
        "cores). Code: `stream_app/modes/fingerspell/` (train.py documents the recipe).", "",
        "## Models", "",
        "- `landmarks.pt`: MLP 63-256-256-26 on the 21 MediaPipe landmarks (wrist-relative, scaled by the largest "
        "wrist distance, left hands mirrored to right), float32.",
        "- `crop.pt` (+ `crop.onnx`, the same weights for ONNX Runtime): Spatial Transformer (localisation net -> affine theta, identity init -> affine_grid/grid_sample) "
        f"+ torchvision MobileNetV2 (ImageNet weights `mobilenet_v2-b0353104.pth`) on a {meta['crop_size']} px square "
        f"hand crop (margin {meta['margin']} per side), float16." if "crop.pt" in sizes else "- no crop model trained.",
        f"- `fusion.json`: fused = {meta['crop_weight']} x crop + {round(1 - meta['crop_weight'], 2)} x landmarks "
        f"probabilities; **shipped: {meta['shipped']}** (best on the validation split).",
        f"- Sizes (MB): {sizes}", "",
        "## Data and splits", "",
        "Hands found by the app's own MediaPipe hand finder (IMAGE mode with retries), cached outside git.",
        f"- train ({meta['data']['train']} hands): Roboflow `train` split (504 photos x 3 augmented copies) + Massey "
        "letters of all 5 hands.",
        f"- validation ({meta['data']['valid']} hands): Roboflow `valid` split (144 other photos): checkpoint, fusion "
        "weight and shipped model chosen here.",
        "- test: Roboflow `test` split (72 photos, no photo shared with train/valid; no E and no L); Massey "
        "leave-one-hand-out (`evaluate --massey-loho`, retrains per held-out hand).",
        f"- hand found rate per source:split: {meta['hand_found_rate']}", "",
        "## Recipe", "",
        "Adam lr 1e-3 + ExponentialLR (the source paper's optimiser; MLP gamma 0.99/epoch, 250 epochs; crop model "
        f"gamma {meta.get('gamma', 0.9)}/epoch, bounded by --max-minutes), class-balanced (weighted loss for the MLP, "
        "balanced sampling for the crop model), label smoothing. Augmentations: Massey's cut-out hands pasted on "
        "background patches cut from Roboflow training photos outside the hand box; rotation +-15 deg, scale, shift, "
        "brightness/contrast/saturation/white balance/gamma, lighting gradient, blur, noise; landmark rotation, "
        "aspect jitter and noise. Mirroring: every hand is mirrored to a right hand (label unchanged).", "",
        f"## Validation (Roboflow valid split, found hands)", "",
        f"{meta['valid']}", "",
        f"Fusion weight grid (crop weight -> valid accuracy): {meta.get('fusion_grid', {})}", "",
        f"Crop model epochs: {meta.get('crop_history', [])}", "",
        marker,
    ]
    write_card(out / "MODEL_CARD.md", "\n".join(lines), keep_below=marker, default_tail=(
        "\n## Held-out metrics\n\nRun `python -m stream_app evaluate fingerspell --roboflow-test` and "
        "`python -m stream_app evaluate fingerspell --massey-loho`.\n"))
