"""Leave-one-signer-out: the recipe (:class:`.train.Recipe`) retrained without one signer and tested on that signer,
for every signer with an identity (:mod:`.signers`): Massey's 5 hands (landmark, crop and fused models) and the
``asl_landmarks`` webcam collector (landmark model only: the rows have no images). Roboflow train + valid (no signer
ids) are in every fold's training data; Roboflow test is in none.

Reported per signer and as the mean and the WORST signer, for each model and for the shipped one. Accuracy is over
the signer's images with a hand found (the hand-found rate is given beside it). ``fusion_grid`` gives the fused
accuracy for other crop weights on the same folds: a weight chosen on it is chosen on held-out signers (what the issue
asks), but on the same signers it is then measured on: say so beside the number.

A fold with the crop model takes ~10-20 minutes on 2 shared cores, so every fold's result (its accuracies, its
held-out probabilities and, for crop folds, its crop model) is cached under ``.cache/fingerspell/loso/``, keyed by the
recipe, the crop epochs, the seed and the hand-finder bundle: ``evaluate fingerspell --signers --only-signers hand3``
runs one fold (one bounded job under the CPU lock), and a later ``--signers`` run reuses it and prints the table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from stream_app.modes.fingerspell.data import cache_dir, hand_model_id, letter_index, load_cache
from stream_app.modes.fingerspell.features import hand_features
from stream_app.modes.fingerspell.signers import WEBCAM, webcam_landmarks
from stream_app.modes.fingerspell.train import (Recipe, accuracy, cache_uv, center_crops, image_signer,
                                                predict_crops, predict_landmarks, train_all)

MASSEY_HANDS = ("hand1", "hand2", "hand3", "hand4", "hand5")
SIGNERS = MASSEY_HANDS + (WEBCAM,)
LOSO_VERSION = 1  # bump when the protocol changes: cached folds of another version are not reused


def fold_key(recipe: Recipe, crop_epochs: int, seed: int) -> str:
    """What decides a fold's models (not how they are combined: the fusion weight and the shipped choice are not
    part of it)."""
    trained = {k: v for k, v in dataclasses.asdict(recipe).items() if k not in ("crop_weight", "shipped", "notes")}
    spec = {"recipe": trained, "crop_epochs": crop_epochs, "seed": seed,
            "hand_model": hand_model_id(), "version": LOSO_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=list).encode()).hexdigest()[:16]


def fold_dir() -> Path:
    return cache_dir() / "loso"


def _summary(per: dict, key: str) -> dict | None:
    vals = {s: r[key] for s, r in per.items() if r.get(key) is not None}
    if not vals:
        return None
    worst = min(vals, key=vals.get)
    return {"mean": round(float(np.mean(list(vals.values()))), 4), "worst": vals[worst], "worst_signer": worst,
            "signers": len(vals)}


def run_fold(recipe: Recipe, signer: str, data: dict, webcam, *, crop_epochs: int = 0, seed: int = 0) -> dict:
    """Train without ``signer``, test on it: {"result": {...}, "probs": {"landmarks", "crop", "labels"}, "crop"}."""
    t0 = time.time()
    use_crop = signer != WEBCAM and recipe.crop and crop_epochs > 0
    trained = train_all(dataclasses.replace(recipe, crop_epochs=crop_epochs) if use_crop else recipe, data, webcam,
                        holdout=signer, crop_minutes=5.0 * crop_epochs if use_crop else 0.0, seed=seed)
    if signer == WEBCAM:
        labels = letter_index(webcam[0])
        feats = hand_features(webcam[1], False, recipe.features)
        res = {"n": int(len(labels)), "hand_found_rate": None}
    else:
        every = image_signer(data) == signer
        test = every & data["found"]
        labels = letter_index(data["letter"][test])
        feats = hand_features(data["points"][test], data["mirrored"][test], recipe.features)
        res = {"n": int(every.sum()), "hand_found_rate": round(float(data["found"][every].mean()), 4)}
    probs = {"labels": labels, "landmarks": np.mean([predict_landmarks(m, feats) for m in trained["landmarks"]], 0)}
    res["landmarks"] = round(accuracy(probs["landmarks"], labels), 4)
    res["crop"] = res["fused"] = None
    if trained["crop"] is not None:
        crops = center_crops(data["crops"][test], cache_uv(data, test), recipe.mask, recipe.mask_width)
        probs["crop"] = predict_crops(trained["crop"], crops)
        res["crop"] = round(accuracy(probs["crop"], labels), 4)
        w = recipe.crop_weight
        res["fused"] = round(accuracy(w * probs["crop"] + (1 - w) * probs["landmarks"], labels), 4)
    res["shipped"] = res.get(recipe.shipped)
    res["crop_epochs"] = len(trained["crop_history"]) or None
    res["seconds"] = round(time.time() - t0, 1)
    return {"result": res, "probs": probs, "crop": trained["crop"], "landmarks": trained["landmarks"]}


def leave_one_signer_out(recipe: Recipe, *, crop_epochs: int = 0, seed: int = 0, signers=SIGNERS,
                         run: tuple[str, ...] | None = None, use_cache: bool = True, folds: Path | None = None,
                         log=None) -> dict:
    """Per signer: n, hand_found_rate, landmarks / crop / fused / shipped accuracy; mean and worst per model.

    ``crop_epochs`` > 0 also trains the crop model per Massey hand for that many epochs (a fixed count, so the run
    repeats whatever the load on the machine; bounded by 5 minutes an epoch). ``run`` limits which folds may be
    trained now (default: all missing ones); cached folds are reused, the others are listed under ``missing``.
    ``folds``: where folds are cached (default ``.cache/fingerspell/loso``)."""
    import torch

    from stream_app.modes.fingerspell.models import save_half

    torch.set_num_threads(2)
    key = fold_key(recipe, crop_epochs, seed)
    folder = Path(folds or fold_dir()) / key
    data = webcam = None
    per, missing, grid_probs = {}, [], []
    for signer in signers:
        cached = folder / f"{signer}.npz"
        if use_cache and cached.is_file():
            with np.load(cached) as z:
                res = json.loads(str(z["result"]))
                probs = {k: z[k] for k in ("labels", "landmarks", "crop") if k in z.files}
        elif run is None or signer in run:
            if data is None:
                data, webcam = load_cache(), webcam_landmarks()
            fold = run_fold(recipe, signer, data, webcam, crop_epochs=crop_epochs, seed=seed)
            res, probs = fold["result"], fold["probs"]
            folder.mkdir(parents=True, exist_ok=True)
            np.savez(cached, result=json.dumps(res), **probs)
            if fold["crop"] is not None:
                save_half(fold["crop"], folder / f"{signer}_crop.pt")
            torch.save(fold["landmarks"][0].state_dict(), folder / f"{signer}_landmarks.pt")
            if log:
                log(f"leave-one-signer-out {signer}: {res}")
        else:
            missing.append(signer)
            continue
        per[signer] = res
        if "crop" in probs:
            grid_probs.append((probs["crop"], probs["landmarks"], probs["labels"]))
    out = {"signers": per, "summary": {k: _summary(per, k) for k in ("landmarks", "crop", "fused", "shipped")},
           "missing": missing, "shipped": recipe.shipped, "crop_weight": recipe.crop_weight,
           "crop_epochs_per_fold": crop_epochs, "seed": seed, "folds": str(folder),
           "note": "retrained per held-out signer with the recipe in fusion.json; accuracy over the signer's images "
                   "with a hand found; the webcam collector has landmarks only (no crop, no fused)"}
    if grid_probs:
        out["fusion_grid"] = {str(round(w, 1)): round(float(np.mean([accuracy(w * c + (1 - w) * lm, y)
                                                                    for c, lm, y in grid_probs])), 4)
                              for w in np.linspace(0, 1, 11)}
    return out
