"""``python -m stream_app train fingerspell``: train the landmark MLP and the STN-MobileNetV2 crop model with the
signer-independent recipe on ALL the data with signer identity plus Roboflow's train and valid splits, and write the
weights, the recipe (``fusion.json``) and the training half of ``MODEL_CARD.md``.

Nothing here is chosen on photos of people who are also in training: the recipe (:class:`Recipe`: feature blocks,
augmentation, epochs, crop masking, fusion weight, which model ships) is measured by leave-one-signer-out
(:mod:`.loso`, ``evaluate fingerspell --signers``), and training runs a fixed number of epochs (no checkpoint is
picked on a validation split). Roboflow's test split stays out, for the same-distribution report. On 2026-11-26 this
recipe (4 crop epochs) scored below the first recipe's fusion on leave-one-signer-out, so the shipped weights are
still the first recipe's (``models/fingerspell/MODEL_CARD.md``).

Data (hand-finder cache, :mod:`.data`; signers, :mod:`.signers`):
- landmark model: Roboflow train + valid, Massey's 5 hands (and the ``asl_landmarks`` webcam collector when
  ``Recipe.webcam``);
- crop model: Roboflow train + valid and Massey's 5 hands (the webcam rows have no images).

Recipe: Adam (lr 1e-3) with an exponential decay (the source paper's optimiser), class balancing, label smoothing. Landmark
model: signer-independent features (:mod:`.features`) and 3D landmark augmentation (:func:`.features.augment_points`).
Crop model: Massey's cut-out hands pasted on background patches from Roboflow photos (outside the hand box) or on
skin-coloured fields (a hand in front of a face), rotation, scale, shift, brightness / contrast / colour / hue /
gamma, a lighting gradient, blur, noise; with ``Recipe.mask`` everything away from the hand's (jittered) landmarks is
black (:mod:`.handmask`), as in use. Mirroring: every hand reaches a model as a right hand, label unchanged. Seeded;
the crop model is bounded by ``--max-minutes`` and written after every epoch.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from stream_app.modes.fingerspell import LETTERS
from stream_app.modes.fingerspell.data import (CACHE_CROP, CACHE_MARGIN, CROP_MARGIN, CROP_SIZE, letter_index,
                                               load_cache)
from stream_app.modes.fingerspell.features import DEFAULT_BLOCKS, augment_points, canonical, hand_features
from stream_app.modes.fingerspell.handmask import FINGER_WIDTH, crop_points, mask_crop
from stream_app.modes.fingerspell.models import (CROP_FILE, CROP_ONNX, FUSION_FILE, LANDMARK_FILE,
                                                 CropNet, LandmarkMLP, crops_to_tensor, export_crop_onnx, load_into,
                                                 save_half)
from stream_app.training.loop import TimeBudget, seed_everything, training_logger
from stream_app.training.reports import command_line, file_sizes_mb, write_model_card as write_card


@dataclass
class Recipe:
    """Everything that decides what is trained; stored in ``fusion.json``. Defaults: the recipe measured on held-out
    signers (model card, "Signer-independent selection"; not shipped)."""

    features: tuple[str, ...] = DEFAULT_BLOCKS
    augment: bool = True              # 3D landmark augmentation
    augment_args: dict = field(default_factory=dict)  # overrides of features.augment_points' magnitudes
    landmark_epochs: int = 150
    hidden: int = 256
    dropout: float = 0.3
    ensemble: int = 1                 # landmark MLPs averaged (different seeds)
    webcam: bool = False              # the asl_landmarks collector among the landmark model's training data
    crop: bool = True
    mask: bool = True                 # crop model sees only the hand (handmask)
    mask_width: float = FINGER_WIDTH
    crop_epochs: int = 16             # at most; fewer when --max-minutes ends first (the LR schedule follows)
    crop_weight: float = 0.5          # fused = w * crop + (1 - w) * landmarks
    shipped: str = "fused"            # "landmarks", "crop" or "fused"
    lr: float = 1e-3
    batch_size: int = 32
    notes: dict = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: dict) -> "Recipe":
        known = {k: v for k, v in meta.get("recipe", {}).items() if k in cls.__dataclass_fields__}
        if "features" in known:
            known["features"] = tuple(known["features"])
        return cls(**known)


log = training_logger("fingerspell").info  # progress to stderr: stdout carries the JSON that `evaluate` prints


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(1) == labels).mean()) if len(labels) else float("nan")


# ------------------------------------------------------------------------------------------------------- data
def image_signer(data: dict) -> np.ndarray:
    """Per cached image: its signer ("hand1".."hand5" for Massey), "rf" for Roboflow train/valid (no ids), "rf:test"
    for the Roboflow test split (never trained on)."""
    rf = data["source"] == "rf"
    return np.where(rf, np.where(data["split"] == "test", "rf:test", "rf"), data["split"])


def training_mask(data: dict, holdout: str | None = None) -> np.ndarray:
    """Cached images to train on: found hands, not the Roboflow test split, not the held-out signer."""
    signer = image_signer(data)
    return data["found"] & (signer != "rf:test") & (signer != (holdout or ""))


def landmark_set(data: dict, webcam: tuple[np.ndarray, np.ndarray] | None, recipe: Recipe,
                 holdout: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Canonical points (N, 21, 3) and labels for the landmark model."""
    from stream_app.modes.fingerspell.signers import WEBCAM

    m = training_mask(data, holdout)
    points = [canonical(data["points"][m], data["mirrored"][m])]
    labels = [letter_index(data["letter"][m])]
    if recipe.webcam and webcam is not None and holdout != WEBCAM:
        points.append(canonical(webcam[1], False))
        labels.append(letter_index(webcam[0]))
    return np.concatenate(points), np.concatenate(labels)


def cache_uv(data: dict, mask: np.ndarray) -> np.ndarray:
    """Landmarks of the cached hands in pixels of their ``CACHE_CROP`` crop, (N, 21, 2)."""
    return np.stack([crop_points(p[:, :2], CACHE_CROP, CACHE_MARGIN, bool(m))
                     for p, m in zip(data["points"][mask], data["mirrored"][mask])]) if mask.any() else (
        np.zeros((0, 21, 2)))


# ----------------------------------------------------------------------------------------------- landmark MLP
def train_landmarks(points: np.ndarray, labels: np.ndarray, recipe: Recipe, seed: int = 0) -> LandmarkMLP:
    """Adam 1e-3 + ExponentialLR, class-weighted loss, label smoothing, 3D augmentation drawn afresh every batch;
    a fixed number of epochs (nothing chosen on a validation split)."""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 128 small vectors: a second thread costs more than it gives (10x, shared)
    blocks = tuple(recipe.features)
    model = LandmarkMLP(hand_features(points[:1], False, blocks).shape[1], hidden=recipe.hidden,
                        dropout=recipe.dropout)
    model.set_scaling(hand_features(points, False, blocks))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.99 ** (250 / max(1, recipe.landmark_epochs)))
    y = torch.from_numpy(labels)
    counts = torch.bincount(y, minlength=len(LETTERS)).float()
    weights = torch.where(counts > 0, counts.sum() / (counts.clamp_min(1) * (counts > 0).sum()), torch.zeros(1))
    for _ in range(recipe.landmark_epochs):
        model.train()
        order = rng.permutation(len(labels))
        for i in range(0, len(order), 128):
            idx = order[i:i + 128]
            p = augment_points(points[idx], rng, **recipe.augment_args) if recipe.augment else points[idx]
            loss = F.cross_entropy(model(torch.from_numpy(hand_features(p, False, blocks))), y[idx], weight=weights,
                                   label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    torch.set_num_threads(threads)
    return model.eval()


@torch.inference_mode()
def predict_landmarks(model: LandmarkMLP, feats: np.ndarray) -> np.ndarray:
    model.eval()
    return torch.softmax(model(torch.from_numpy(np.asarray(feats, np.float32).reshape(-1, model.n_in))), 1).numpy()


# ------------------------------------------------------------------------------------------------- crop model
def skin_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """A skin-coloured field with soft shading and texture: what sits behind a hand held in front of a face."""
    tone = rng.uniform(0, 1)  # light to dark, along a skin-tone line in RGB
    base = np.array([235, 200, 175]) * (1 - tone) + np.array([95, 60, 45]) * tone
    base = base * rng.uniform(0.85, 1.15, 3)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    shade = 1 + rng.uniform(0.05, 0.3) * (np.cos(theta) * ramp[None, :] + np.sin(theta) * ramp[:, None])
    noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), rng.uniform(1, 6))
    img = base[None, None, :] * shade[..., None] + 12 * noise[..., None] / max(1e-3, float(noise.std()))
    return np.clip(img, 0, 255).astype(np.uint8)


class CropAugmenter:
    """160 px cached crop (+ its landmarks in crop pixels) -> augmented 128 px classifier crop."""

    def __init__(self, backgrounds: np.ndarray, rng: np.random.Generator, mask: bool = False,
                 mask_width: float = FINGER_WIDTH) -> None:
        self.backgrounds = backgrounds
        self.rng = rng
        self.mask = mask
        self.mask_width = mask_width

    def paste(self, crop: np.ndarray) -> np.ndarray:
        """A cut-out hand on black -> the same hand on a background patch or a skin-coloured field."""
        r = self.rng
        if r.random() < 0.3 or not len(self.backgrounds):
            bg = skin_field(r, crop.shape[0])
        else:
            bg = self.backgrounds[r.integers(len(self.backgrounds))]
            if r.random() < 0.5:
                bg = bg[:, ::-1]
            bg = np.rot90(bg, int(r.integers(4)))
        mask = (crop.max(axis=2) > 30).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 0)[..., None]
        return (crop * alpha + bg * (1 - alpha)).astype(np.uint8)

    def __call__(self, crop: np.ndarray, massey: bool, uv: np.ndarray | None = None) -> np.ndarray:
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
        # colour: brightness, contrast, saturation, gamma, a lighting gradient, hue (skin tones)
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
            hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2HSV)
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(r.integers(-6, 7))) % 180).astype(np.uint8)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
        if r.random() < 0.3:
            img = cv2.GaussianBlur(img, (0, 0), r.uniform(0.5, 1.5))
        if r.random() < 0.2:
            img = img + r.normal(0, r.uniform(2, 8), img.shape)
        img = np.clip(img, 0, 255).astype(np.uint8)
        if self.mask and uv is not None:
            moved = uv @ m[:, :2].T + m[:, 2]
            moved = moved + r.normal(0, 0.012 * CROP_SIZE, moved.shape)  # landmarks are never exact
            img = mask_crop(img, moved, self.mask_width * r.uniform(0.85, 1.25))
        return img


def center_crops(crops160: np.ndarray, uv160: np.ndarray | None = None, mask: bool = False,
                 mask_width: float = FINGER_WIDTH) -> np.ndarray:
    """The classifier's input from cached crops: the centre ``CROP_SIZE`` px, masked as in use when ``mask``."""
    off = (CACHE_CROP - CROP_SIZE) // 2
    out = np.ascontiguousarray(crops160[:, off:off + CROP_SIZE, off:off + CROP_SIZE])
    if mask and uv160 is not None:
        out = np.stack([mask_crop(c, uv - off, mask_width) for c, uv in zip(out, uv160)]) if len(out) else out
    return out


@torch.inference_mode()
def predict_crops(model: CropNet, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    out = [torch.softmax(model(crops_to_tensor(crops[i:i + batch])), 1).numpy() for i in range(0, len(crops), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(LETTERS)), np.float32)


def train_crop(crops: np.ndarray, uv: np.ndarray, labels: np.ndarray, massey: np.ndarray, backgrounds: np.ndarray,
               recipe: Recipe, *, minutes: float, seed: int = 0, checkpoint: Path | None = None
               ) -> tuple[CropNet, list[dict]]:
    """Class-balanced sampling, Adam; ``recipe.crop_epochs`` epochs or as many as fit in ``minutes``, whichever is
    fewer, with the learning rate decayed exponentially to a tenth over the epochs that fit (re-planned after every
    epoch from its duration), so a short run anneals as fully as a long one. The LAST epoch is kept (written to
    ``checkpoint`` after every epoch)."""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    aug = CropAugmenter(backgrounds, rng, recipe.mask, recipe.mask_width)
    model = CropNet(pretrained=True)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    budget = TimeBudget(minutes)
    counts = np.bincount(labels, minlength=len(LETTERS)).astype(np.float64)
    p = 1.0 / counts[labels]
    p /= p.sum()
    history: list[dict] = []
    epoch_s = 0.0
    planned = recipe.crop_epochs
    for epoch in range(recipe.crop_epochs):
        if epoch >= planned:
            break
        for group in opt.param_groups:
            group["lr"] = recipe.lr * 0.1 ** (epoch / max(1, planned - 1))
        t0 = time.time()
        model.train()
        idx = rng.choice(len(labels), size=len(labels), p=p)  # class-balanced epoch of the same size
        losses = []
        for i in range(0, len(idx), recipe.batch_size):
            b = idx[i:i + recipe.batch_size]
            if len(b) < 2:
                continue
            xb = crops_to_tensor(np.stack([aug(crops[j], bool(massey[j]), uv[j]) for j in b]))
            loss = F.cross_entropy(model(xb), torch.from_numpy(labels[b]), label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if budget.expired(grace_s=60):
                break
        epoch_s = time.time() - t0
        planned = min(recipe.crop_epochs, epoch + 1 + int(budget.left_s() // epoch_s))
        history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4), "seconds": round(epoch_s, 1),
                        "lr": round(opt.param_groups[0]["lr"], 6)})
        log(f"crop epoch {epoch + 1}/{planned}: loss {np.mean(losses):.3f}, {epoch_s:.0f} s")
        if checkpoint is not None:
            save_half(model, checkpoint)
    return model.eval(), history


# ---------------------------------------------------------------------------------------------------- command
def add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-minutes", type=float, default=35.0, help="wall-clock bound for the crop model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/fingerspell",
                        help="where the weights and the model card go (default out/fingerspell, gitignored: this "
                             "recipe is not the shipped one, so it never overwrites models/fingerspell unless asked)")
    parser.add_argument("--skip-crop", action="store_true", help="train only the landmark model (ships landmarks)")
    parser.add_argument("--crop-epochs", type=int, help="crop model epochs (default: the recipe's)")
    parser.add_argument("--no-mask", action="store_true",
                        help="the crop model sees the whole crop, not only the hand (the recipe's mask off)")
    parser.add_argument("--rebuild-cache", action="store_true", help="run the hand finder over the data again")
    parser.add_argument("--limit", type=int, default=0, help="use only N training hands (smoke tests)")


def train_all(recipe: Recipe, data: dict, webcam, *, holdout: str | None = None, crop_minutes: float = 0.0,
              seed: int = 0, limit: int = 0, checkpoint: Path | None = None) -> dict:
    """Train the recipe's models on everything but ``holdout``: {"landmarks": [MLPs], "crop": CropNet | None,
    "crop_history": [...], "n": {...}}."""
    points, labels = landmark_set(data, webcam, recipe, holdout)
    if limit:
        keep = np.random.default_rng(seed).permutation(len(labels))[:limit]
        points, labels = points[keep], labels[keep]
    mlps = [train_landmarks(points, labels, recipe, seed + k) for k in range(max(1, recipe.ensemble))]
    out = {"landmarks": mlps, "crop": None, "crop_history": [], "n": {"landmarks": int(len(labels))}}
    if recipe.crop and crop_minutes > 0:
        m = training_mask(data, holdout)
        if limit:
            m &= np.cumsum(m) <= limit
        out["crop"], out["crop_history"] = train_crop(
            data["crops"][m], cache_uv(data, m), letter_index(data["letter"][m]), data["source"][m] == "massey",
            data["backgrounds"], recipe, minutes=crop_minutes, seed=seed, checkpoint=checkpoint)
        out["n"]["crop"] = int(m.sum())
    return out


def run_train(args: argparse.Namespace) -> int:
    from stream_app.modes.fingerspell.signers import webcam_landmarks

    torch.set_num_threads(2)
    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.rebuild_cache:
        from stream_app.modes.fingerspell.data import build_cache

        build_cache(force=True, log=log)
    data = load_cache()
    recipe = Recipe()
    if args.crop_epochs:
        recipe.crop_epochs = args.crop_epochs
    if args.skip_crop:
        recipe.crop, recipe.shipped = False, "landmarks"
    if args.no_mask:
        recipe.mask = False
    webcam = webcam_landmarks() if recipe.webcam else None
    trained = train_all(recipe, data, webcam, crop_minutes=args.max_minutes if recipe.crop else 0.0, seed=args.seed,
                        limit=args.limit, checkpoint=out / CROP_FILE)
    if len(trained["landmarks"]) != 1:
        raise NotImplementedError("shipping an ensemble of landmark models is not wired into the app")
    torch.save(trained["landmarks"][0].state_dict(), out / LANDMARK_FILE)
    if trained["crop"] is not None:
        save_half(trained["crop"], out / CROP_FILE)
        crop = load_into(CropNet(pretrained=False), out / CROP_FILE)  # exactly the shipped (float16) weights
        export_crop_onnx(crop, out / CROP_ONNX, CROP_SIZE)
    else:
        for name in (CROP_FILE, CROP_ONNX):
            (out / name).unlink(missing_ok=True)
    meta = {"labels": list(LETTERS), "crop_size": CROP_SIZE, "margin": CROP_MARGIN, "hidden": recipe.hidden,
            "features": list(recipe.features), "mask": recipe.mask, "mask_width": recipe.mask_width,
            "shipped": recipe.shipped if trained["crop"] is not None else "landmarks",
            "crop_weight": recipe.crop_weight, "seed": args.seed, "date": date.today().isoformat(),
            "recipe": asdict(recipe), "train_minutes": round((time.time() - started) / 60, 1),
            "crop_history": trained["crop_history"], "data": trained["n"],
            "command": command_line("train fingerspell", args, ("max_minutes", "seed", "crop_epochs", "skip_crop", "no_mask")),
            "hand_found_rate": {f"{src}:{sp}": round(float(data["found"][(data["source"] == src)
                                                                         & (data["split"] == sp)].mean()), 4)
                                for src, sp in sorted(set(zip(data["source"], data["split"])))}}
    (out / FUSION_FILE).write_text(json.dumps(meta, indent=1))
    write_model_card(out, meta)
    log(f"wrote {out} in {meta['train_minutes']} min")
    return 0


def write_model_card(out: Path, meta: dict) -> None:
    """The training half of ``MODEL_CARD.md`` (held-out metrics are added from ``evaluate`` runs, below the marker)."""
    marker = "<!-- held-out metrics below -->"
    sizes = file_sizes_mb(out)
    recipe = meta["recipe"]
    lines = [
        "# Fingerspelling model card", "",
        f"Trained {meta['date']} with `{meta['command']}` (seed {meta['seed']}, {meta['train_minutes']} min on 2 CPU "
        "cores). Code: `stream_app/modes/fingerspell/` (train.py documents the recipe).", "",
        "## Models", "",
        f"- `landmarks.pt`: MLP {meta['data']['landmarks'] and ''}features-{meta['hidden']}-{meta['hidden']}-26 on "
        f"signer-independent landmark features (blocks {', '.join(meta['features'])}; `features.py`), float32.",
        "- `crop.pt` (+ `crop.onnx`, the same weights for ONNX Runtime): Spatial Transformer (localisation net -> "
        "affine theta, identity init -> affine_grid/grid_sample) + torchvision MobileNetV2 (ImageNet weights "
        f"`mobilenet_v2-b0353104.pth`) on a {meta['crop_size']} px square hand crop (margin {meta['margin']} per "
        f"side){', everything away from the hand black (handmask.py)' if meta['mask'] else ''}, float16."
        if "crop.pt" in sizes else "- no crop model.",
        f"- `fusion.json`: the recipe; fused = {meta['crop_weight']} x crop + {round(1 - meta['crop_weight'], 2)} x "
        f"landmarks probabilities; **shipped: {meta['shipped']}** (chosen on held-out signers, below).",
        f"- Sizes (MB): {sizes}", "",
        "## Data", "",
        "Hands found by the app's own MediaPipe hand finder (IMAGE mode with retries), cached outside git. Training: "
        "Roboflow `train` + `valid` (no signer ids), Massey's 5 hands"
        + (" and the `asl_landmarks` webcam collector (landmark model)" if recipe.get("webcam") else "")
        + f": {meta['data']} hands. Roboflow `test` is never trained on (same-distribution report).",
        f"- hand found rate per source:split: {meta['hand_found_rate']}", "",
        "## Recipe", "",
        f"{json.dumps({k: v for k, v in recipe.items() if k != 'notes'})}", "",
        "Adam lr 1e-3 decayed exponentially (a tenth by the last epoch); class balancing; label smoothing 0.1; a fixed number of epochs (no checkpoint "
        "chosen on a validation split). Landmark model: 3D augmentation (hand rotation, per-finger bone lengths, "
        "joint angles, landmark jitter, depth scale; `features.augment_points`). Crop model: Massey's cut-out hands "
        "pasted on Roboflow background patches or skin-coloured fields; rotation, scale, shift, colour, hue, gamma, "
        "lighting gradient, blur, noise; the hand mask drawn from jittered landmarks. Every hand is mirrored to a "
        "right hand (label unchanged).", "",
        f"Crop model epochs: {meta.get('crop_history', [])}", "",
        marker,
    ]
    write_card(out / "MODEL_CARD.md", "\n".join(lines), keep_below=marker, default_tail=(
        "\n## Held-out metrics\n\nRun `python -m stream_app evaluate fingerspell --signers --digits --roboflow-test`.\n"))
