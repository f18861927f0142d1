"""``python -m stream_app train classify``: transfer learning from ImageNet MobileNetV2, then a model card.

Recipe (the reference Pap-smear study's, on a network that runs on a CPU):

1. **Frozen backbone**: the ImageNet features of every training and validation image are computed once, and only the
   new head (dropout + linear) is trained on them, early-stopped on validation loss.
2. **Fine-tuning**: every layer trains (AdamW, cosine learning-rate decay over the epochs that fit in
   ``--max-minutes``) on augmented images (small random rotation, scale, shift, brightness/contrast; mirror with ``--hflip``).
3. **Early stopping** on validation loss (``--patience`` epochs without improvement); the best checkpoint (lowest
   validation loss over both stages) is written to ``--out`` whenever it improves, so a run cut short by
   ``--max-minutes`` still leaves the best model so far.
4. **Class imbalance**: the cross-entropy is weighted by inverse class frequency in the training split (the same
   weights in the validation loss), so a rare class counts as much as a common one.

Everything is seeded (``--seed``). The artefacts are ``weights.pt`` (float16), ``labels.json``, ``MODEL_CARD.md``
(whose metrics come from :func:`stream_app.modes.classify.evaluate.evaluate_data`, the code behind ``evaluate``) and
``confusion.png`` / ``roc.png`` for the held-out split.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np

from stream_app.errors import InputError
from stream_app.modes.classify.data import (LabelledImages, has_split_folders, load_folder, load_npz, npz_classes,
                                               stratified_split, write_split)
from stream_app.modes.classify.evaluate import evaluate_data
from stream_app.modes.classify.network import (ModelMeta, build_network, load_model, normalise, prepare, save_model)
from stream_app.training.loop import BestCheckpoint, TimeBudget, seed_everything, training_logger
from stream_app.training.reports import command_line, write_model_card as write_card

_log = training_logger("classify").info

TODAY = dt.date.today().isoformat


def add_train_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder with one sub-folder of images per class (or train/ val/ [test/])")
    source.add_argument("--npz", help="MedMNIST-style .npz (train_/val_/test_ images and labels)")
    parser.add_argument("--out", required=True, help="model folder to write, e.g. models/classify/<name>")
    parser.add_argument("--classes", help="comma-separated class names for --npz labels 0, 1, ...")
    parser.add_argument("--image-size", type=int, default=64, help="network input size in pixels (default 64)")
    parser.add_argument("--source-size", type=int,
                        help="native size of the training images; larger inputs are shrunk to it before resizing "
                             "(default: the npz image size, or the common size of small folder images)")
    parser.add_argument("--colour", choices=("auto", "grey", "rgb"), default="auto",
                        help="grey models replicate one channel to three (auto: grey if every image is grey)")
    parser.add_argument("--epochs", type=int, default=12, help="most fine-tuning epochs (default 12)")
    parser.add_argument("--head-epochs", type=int, default=30, help="most head-only epochs (default 30; cheap)")
    parser.add_argument("--max-minutes", type=float, default=15.0, help="stop training after this long (default 15)")
    parser.add_argument("--patience", type=int, default=3, help="epochs without a better val loss before stopping")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4, help="fine-tuning learning rate (head stage: 1e-3)")
    parser.add_argument("--hflip", action="store_true", help="mirror images in augmentation and at prediction")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="--images without val/: share for val")
    parser.add_argument("--test-fraction", type=float, default=0.15, help="--images without val/: share for test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--no-pretrained", action="store_true", help="random init instead of ImageNet weights")


def _command_line(args: argparse.Namespace) -> str:
    names = ["images", "npz", "out", "classes", "image_size", "source_size", "colour", "epochs", "head_epochs",
             "max_minutes", "patience", "batch_size", "lr", "val_fraction", "test_fraction", "seed", "hflip",
             "no_pretrained"]
    return command_line("train classify", args, [n for n in names if not (n.endswith("fraction") and args.npz)])


def _load_splits(args) -> tuple[dict[str, LabelledImages], str, dict | None]:
    """The train/val/test data, a sentence describing them, and the split made here (folder without val/)."""
    if args.npz:
        classes = npz_classes(args.npz, args.classes)
        splits = {s: load_npz(args.npz, s, classes) for s in ("train", "val")}
        try:
            splits["test"] = load_npz(args.npz, "test", classes)
        except InputError:
            pass
        return splits, f"{args.npz} (its train/val/test arrays)", None
    root = Path(args.images)
    if has_split_folders(root):
        splits = {"train": load_folder(root / "train")}
        classes = splits["train"].classes
        splits["val"] = load_folder(root / "val", classes)
        if (root / "test").is_dir():
            splits["test"] = load_folder(root / "test", classes)
        return splits, f"{root} (its train/, val/ and test/ folders)", None
    pool = load_folder(root)
    index = stratified_split(pool.labels, args.val_fraction, args.test_fraction, args.seed)
    splits = {name: pool.subset(idx) for name, idx in index.items() if len(idx)}
    desc = (f"{root}: seeded stratified split (seed {args.seed}) into train/val/test "
            f"{1 - args.val_fraction - args.test_fraction:.2f}/{args.val_fraction:.2f}/{args.test_fraction:.2f}, "
            "file lists in split.json")
    return splits, desc, {"pool": pool, "index": index}


def _is_grey(image: np.ndarray) -> bool:
    return image.ndim == 2 or (np.array_equal(image[..., 0], image[..., 1])
                               and np.array_equal(image[..., 1], image[..., 2]))


def _augment(x, generator, hflip: bool):
    """Per-image random rotation (+-10 deg), scale (+-10 %), shift (+-8 %), brightness/contrast; x in [0, 1]."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def uniform(*shape):
        return torch.rand(*shape, generator=generator) * 2 - 1

    angle, scale, shift = uniform(n) * math.radians(10), 1 + uniform(n) * 0.1, uniform(n, 2) * 0.16
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast, brightness = 1 + uniform(n, 1, 1, 1) * 0.15, uniform(n, 1, 1, 1) * 0.08
    x = ((x - mean) * contrast + mean + brightness).clamp_(0, 1)
    if hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        x[flip] = torch.flip(x[flip], dims=[3])
    return x


def _as_float(batch: np.ndarray):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch))
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.float().div_(255.0)


def _predict_logp(net, images: np.ndarray, meta: ModelMeta, batch_size: int = 256):
    """Log-probabilities of prepared images in eval mode (mirrored average when the model uses it)."""
    import torch

    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = normalise(_as_float(images[start:start + batch_size]), meta)
            p = torch.softmax(net(x), 1)
            if meta.hflip_tta:
                p = (p + torch.softmax(net(torch.flip(x, dims=[3])), 1)) / 2
            out.append(torch.log(p.clamp_min(1e-12)))
    return torch.cat(out)


def run_train(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F

    for name in ("image_size", "epochs", "batch_size", "threads"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if args.head_epochs < 0 or args.patience < 1 or args.max_minutes <= 0:
        raise InputError("--head-epochs must be >= 0, --patience >= 1 and --max-minutes > 0")
    budget = TimeBudget(args.max_minutes)
    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)

    splits, data_desc, made_split = _load_splits(args)
    train, val = splits["train"], splits["val"]
    classes = train.classes
    counts = np.bincount(train.labels, minlength=len(classes))
    if len(classes) < 2 or counts.min() == 0:
        raise InputError(f"training needs at least 2 classes, each with images; train counts "
                         f"{dict(zip(classes, counts.tolist()))}")
    if len(val) == 0:
        raise InputError("the validation split is empty")
    colour = args.colour
    if colour == "auto":
        colour = "grey" if all(_is_grey(img) for img in train.images) else "rgb"
    source_size = args.source_size
    if source_size is None:
        sizes = {tuple(img.shape[:2]) for img in train.images}
        if len(sizes) == 1:
            (h, w), = sizes
            if h == w and h < args.image_size:
                source_size = h
    meta = ModelMeta(name=out.name, classes=classes, input_size=args.image_size, colour=colour,
                     source_size=source_size, hflip_tta=args.hflip, created=TODAY())

    _log(f"data: {data_desc}; classes {list(classes)}; train {counts.tolist()}, val "
         f"{np.bincount(val.labels, minlength=len(classes)).tolist()}; test "
         f"{np.bincount(splits['test'].labels, minlength=len(classes)).tolist() if 'test' in splits else 'none'}")
    x_train = np.stack([prepare(img, meta) for img in train.images])
    x_val = np.stack([prepare(img, meta) for img in val.images])
    y_train, y_val = torch.from_numpy(train.labels), torch.from_numpy(val.labels)
    weights = torch.tensor(len(train) / (len(classes) * counts), dtype=torch.float32)
    _log(f"input {args.image_size}px {colour} (source size {source_size}); class weights "
         f"{[round(w, 3) for w in weights.tolist()]}")

    net = build_network(len(classes), pretrained=not args.no_pretrained)
    out.mkdir(parents=True, exist_ok=True)
    if made_split is not None:
        write_split(out / "split.json", Path(args.images), made_split["pool"], made_split["index"])
    best = BestCheckpoint(higher_is_better=False, min_delta=1e-4, keep_state=False)  # the best is saved as it comes
    history = []

    def consider(stage: str, epoch: int, train_loss: float) -> bool:
        logp = _predict_logp(net, x_val, meta)
        loss = float(F.nll_loss(logp, y_val, weight=weights))
        acc = float((logp.argmax(1) == y_val).float().mean())
        improved = best.consider(loss, stage=stage, epoch=epoch)
        history.append({"stage": stage, "epoch": epoch, "train_loss": round(train_loss, 4),
                        "val_loss": round(loss, 4), "val_accuracy": round(acc, 4),
                        "minutes": round(budget.elapsed_s() / 60, 2)})
        _log(f"{stage} epoch {epoch}: train loss {train_loss:.4f}, val loss {loss:.4f}, val acc {acc:.4f}"
             f"{'  * best, saved' if improved else ''}")
        if improved:
            save_model(net, meta, out)
        return improved

    # Stage 1: frozen backbone. Features are computed once (eval mode), then only the head trains on them.
    generator = torch.Generator().manual_seed(args.seed)
    if args.head_epochs:
        net.eval()
        with torch.inference_mode():
            def features(images):
                return torch.cat([torch.flatten(F.adaptive_avg_pool2d(
                    net.features(normalise(_as_float(images[i:i + 256]), meta)), 1), 1)
                    for i in range(0, len(images), 256)])
            f_train, f_val = features(x_train), features(x_val)
        _log(f"frozen features computed ({budget.elapsed_s() / 60:.1f} min)")
        head = net.classifier
        opt = torch.optim.Adam(head.parameters(), lr=1e-3)
        stale, head_best = 0, BestCheckpoint(higher_is_better=False, min_delta=1e-4)
        for epoch in range(1, args.head_epochs + 1):
            head.train()
            order = torch.randperm(len(f_train), generator=generator)
            total = 0.0
            for i in range(0, len(order), args.batch_size):
                idx = order[i:i + args.batch_size]
                loss = F.cross_entropy(head(f_train[idx]), y_train[idx], weight=weights)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            head.eval()
            with torch.no_grad():
                loss_val = float(F.cross_entropy(head(f_val), y_val, weight=weights))
            if head_best.consider(loss_val, head, epoch=epoch, train_loss=total / len(order)):
                stale = 0
            else:
                stale += 1
            if stale >= args.patience or budget.expired():
                break
        head_best.restore(head)
        _log(f"head stage: {epoch} epochs, best epoch {head_best.info['epoch']}")
        consider("head", head_best.info["epoch"], head_best.info["train_loss"])

    # Stage 2: fine-tune every layer on augmented images. The learning rate follows a cosine from --lr down to
    # 5 % of it over the planned epochs; after the first epoch the plan shrinks to what fits in --max-minutes.
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = max(1, math.ceil(len(x_train) / args.batch_size))
    planned, step = args.epochs, 0
    stale, out_of_time = 0, budget.expired()
    stage_start = budget.elapsed_s()
    for epoch in range(1, args.epochs + 1):
        if out_of_time or epoch > planned:
            break
        net.train()
        order = torch.randperm(len(x_train), generator=generator).numpy()
        total, seen = 0.0, 0
        for i in range(0, len(order), args.batch_size):
            idx = np.sort(order[i:i + args.batch_size])
            step += 1
            if len(idx) < 2:
                continue  # BatchNorm needs two images
            progress = min(1.0, (step - 1) / (planned * steps_per_epoch))
            for group in opt.param_groups:
                group["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
            x = normalise(_augment(_as_float(x_train[idx]), generator, args.hflip), meta)
            loss = F.cross_entropy(net(x), y_train[idx], weight=weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if budget.expired():
                out_of_time = True
                _log(f"--max-minutes {args.max_minutes} reached during fine-tuning epoch {epoch}")
                break
        if seen == 0:
            break
        improved = consider("fine-tune", epoch, total / seen)
        if epoch == 1:
            per_epoch = budget.elapsed_s() - stage_start
            fits = 1 + int(budget.left_s() // per_epoch)
            if fits < planned:
                planned = max(1, fits)
                _log(f"an epoch takes {per_epoch / 60:.1f} min: {planned} fine-tuning epochs fit in --max-minutes")
        stale = 0 if improved else stale + 1
        if stale >= args.patience:
            _log(f"early stop: no better val loss for {args.patience} epochs")
            break
    if best.score is None:  # not even one evaluation happened: keep what there is
        consider("final", 0, float("nan"))
    train_minutes = budget.elapsed_s() / 60
    best = {"loss": best.score, **best.info}
    _log(f"best: {best['stage']} epoch {best['epoch']}, val loss {best['loss']:.4f}; training took "
         f"{train_minutes:.1f} min")

    # Evaluate the saved (float16) model with the same code as `evaluate`, then write the card.
    model = load_model(out)
    meta = model.meta
    eval_split = "test" if "test" in splits else "val"
    metrics = evaluate_data(model, splits[eval_split], out / "confusion.png", out / "roc.png")
    val_metrics = evaluate_data(model, val) if eval_split != "val" else metrics
    if args.npz:
        eval_cmd = f"python -m stream_app evaluate classify --model {out} --npz {args.npz} --split {eval_split}"
    elif made_split is None:
        eval_cmd = f"python -m stream_app evaluate classify --model {out} --images {Path(args.images) / eval_split}"
    else:
        eval_cmd = f"python -m stream_app evaluate classify --model {out} --images {args.images} --split {eval_split}"
    summary = {"model": str(out), "version": meta.version, "classes": list(classes), "best_stage": best["stage"],
               "best_epoch": best["epoch"], "best_val_loss": round(best["loss"], 4),
               "train_minutes": round(train_minutes, 2), "eval_split": eval_split, "metrics": metrics,
               "val_metrics": val_metrics}
    sizes = {name: np.bincount(s.labels, minlength=len(classes)).tolist() for name, s in splits.items()}
    (out / "training.json").write_text(json.dumps({"command": _command_line(args), "split_sizes": sizes,
                                                   "history": history, **summary}, indent=1) + "\n")
    write_model_card(out, meta, _command_line(args), data_desc, sizes, eval_split, eval_cmd, metrics, val_metrics,
                     history, best, train_minutes, args.threads)
    print(json.dumps(summary))
    return 0


def _metrics_table(metrics: dict) -> str:
    rows = ["| class | precision | recall | F1 |", "| --- | --- | --- | --- |"]
    rows += [f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |"
             for name, m in metrics["per_class"].items()]
    return "\n".join(rows)


def write_model_card(out: Path, meta: ModelMeta, command: str, data_desc: str, sizes: dict, eval_split: str,
                     eval_cmd: str, metrics: dict, val_metrics: dict, history: list, best: dict,
                     train_minutes: float, threads: int = 2) -> None:
    auc = "n/a" if metrics["auc"] is None else f"{metrics['auc']:.4f}"
    split_lines = "\n".join(f"- {name}: {sum(c)} images, per class {dict(zip(meta.classes, c))}"
                            for name, c in sizes.items())
    epochs = "\n".join(f"| {h['stage']} | {h['epoch']} | {h['train_loss']} | {h['val_loss']} | {h['val_accuracy']} "
                       f"| {h['minutes']} |" for h in history)
    text = f"""# Model card: `{meta.name}` (classify mode)

**Research demo, not a diagnostic device.** Probabilities are the network's output, not calibrated clinical risk.

- Version: `{meta.version}` (training date + first 8 hex digits of the weights' sha256); date {meta.created}
- Classes: {', '.join(f'`{c}`' for c in meta.classes)}
- Network: torchvision MobileNetV2, ImageNet weights (`models/vendor/mobilenet_v2-b0353104.pth`), new head
  (dropout 0.2 + linear); weights stored as a float16 state_dict (`weights.pt`), metadata in `labels.json`
- Input: {meta.colour} {'(replicated to 3 channels)' if meta.colour == 'grey' else 'RGB'}, \
{f'shrunk to its native {meta.source_size}x{meta.source_size} first, then ' if meta.source_size else ''}\
resized to {meta.input_size}x{meta.input_size}, ImageNet mean/std{'; prediction averaged with the mirrored image' if meta.hflip_tta else ''}

## Training
```
{command}
```
- Data: {data_desc}
{split_lines}
- Recipe: head only on frozen ImageNet features, then all layers fine-tuned (AdamW, cosine learning-rate decay)
  with augmentation (rotation +-10 deg,
  scale +-10 %, shift +-8 %, brightness/contrast{', mirroring' if meta.hflip_tta else ''}); cross-entropy weighted by
  inverse class frequency; early stopping on validation loss; best checkpoint kept: {best['stage']} epoch
  {best['epoch']} (val loss {best['loss']:.4f}). Training took {train_minutes:.1f} min on {threads} CPU threads.

| stage | epoch | train loss | val loss | val accuracy | minutes |
| --- | --- | --- | --- | --- | --- |
{epochs}

## Metrics ({eval_split} split, n = {metrics['n']})
Printed by
```
{eval_cmd}
```
- accuracy **{metrics['accuracy']:.4f}**, AUC **{auc}** (one-vs-rest macro for more than two classes)
- confusion matrix (rows true, columns predicted, order {list(meta.classes)}): {metrics['confusion']}

{_metrics_table(metrics)}

Validation split (used for early stopping): accuracy {val_metrics['accuracy']:.4f}, AUC \
{'n/a' if val_metrics['auc'] is None else f"{val_metrics['auc']:.4f}"}.
Plots of the {eval_split} split: `confusion.png`, `roc.png`.

## Limits
Trained on one data set; images from other sources (scanners, hospitals, sizes, populations) can fail silently.
Use for demonstration and research only.
"""
    write_card(out / "MODEL_CARD.md", text)
