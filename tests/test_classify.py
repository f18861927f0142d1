"""Classify mode: the processor, the report, the metrics, training and evaluation through the CLI, the shipped model.

Fixtures are drawn here (circles / squares / stripes with OpenCV); the data-backed test reads PneumoniaMNIST from
the shared data and skips without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream_app import cli
from stream_app.modes.classify.data import stratified_split
from stream_app.modes.classify.evaluate import compute_metrics
from stream_app.modes.classify.network import DEFAULT_MODEL, ModelMeta, available_models, load_model, prepare
from stream_app.config import VENDOR_DIR
from stream_app.frames import to_rgb8
from stream_app.modes import get_mode
from stream_app.results import FrameResult

SHAPES = ("circles", "squares", "stripes")
PNEUMONIA_NPZ = "pneumoniamnist/pneumoniamnist_reconstructed_original_splits.npz"


def draw_shape(kind: str, rng: np.random.Generator, deep: bool = False) -> np.ndarray:
    """A grey image of odd size holding one circle, one square or vertical stripes; 16-bit when ``deep``."""
    h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
    img = np.full((h, w), int(rng.integers(0, 70)), np.uint8)
    c, s = int(rng.integers(170, 256)), min(h, w)
    cx, cy = w // 2 + int(rng.integers(-4, 5)), h // 2 + int(rng.integers(-4, 5))
    if kind == "circles":
        cv2.circle(img, (cx, cy), int(s * rng.uniform(0.22, 0.4)), c, -1)
    elif kind == "squares":
        r = int(s * rng.uniform(0.2, 0.35))
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), c, -1)
    else:
        step = int(rng.integers(6, 12))
        for x in range(int(rng.integers(0, step)), w, step):
            cv2.line(img, (x, 0), (x, h), c, max(1, step // 3))
    return img.astype(np.uint16) * 257 if deep else img


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(7)
    for kind in SHAPES:
        (root / kind).mkdir()
        for i in range(30):
            cv2.imwrite(str(root / kind / f"{i:02d}.png"), draw_shape(kind, rng, deep=i % 5 == 0))
    return root


@pytest.fixture(scope="module")
def shape_model(shapes_dir, tmp_path_factory) -> Path:
    """A 3-class model trained from the folder by the CLI: a few tiny epochs."""
    if not (VENDOR_DIR / "mobilenet_v2-b0353104.pth").is_file():
        pytest.skip("ImageNet MobileNetV2 weights absent (run scripts/fetch_models.py)")
    out = tmp_path_factory.mktemp("models") / "shapes"
    code = cli.main(["train", "classify", "--images", str(shapes_dir), "--out", str(out), "--image-size", "32",
                     "--epochs", "2", "--head-epochs", "20", "--max-minutes", "3", "--seed", "1"])
    assert code == 0
    return out


def test_training_writes_the_model_folder(shape_model):
    meta = json.loads((shape_model / "labels.json").read_text())
    assert meta["classes"] == list(SHAPES)
    assert meta["input_size"] == 32 and meta["colour"] == "grey"
    assert meta["version"].startswith(meta["created"] + "+")
    assert (shape_model / "weights.pt").stat().st_size < 25e6
    card = (shape_model / "MODEL_CARD.md").read_text()
    assert "not a diagnostic device" in card and "evaluate classify" in card and "accuracy" in card
    split = json.loads((shape_model / "split.json").read_text())
    parts = [set(split[name]) for name in ("train", "val", "test")]
    assert sum(map(len, parts)) == 90 and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_folder_model_evaluates_well_above_chance(shape_model, shapes_dir, tmp_path, capsys):
    confusion_png, roc_png = tmp_path / "cm.png", tmp_path / "roc.png"
    code = cli.main(["evaluate", "classify", "--model", str(shape_model), "--images", str(shapes_dir),
                     "--split", "test", "--confusion-png", str(confusion_png), "--roc-png", str(roc_png)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"n", "accuracy", "auc", "per_class", "confusion"}
    n_test = len(json.loads((shape_model / "split.json").read_text())["test"])
    assert report["n"] == n_test and 12 <= n_test <= 15  # the held-out ~15 % of 90 images, recorded at training
    assert report["accuracy"] >= 0.7  # chance is 1/3
    assert report["auc"] >= 0.8
    assert set(report["per_class"]) == set(SHAPES)
    assert np.asarray(report["confusion"]).shape == (3, 3) and np.sum(report["confusion"]) == n_test
    for png in (confusion_png, roc_png):
        assert cv2.imread(str(png)) is not None

    assert cli.main(["evaluate", "classify", "--model", str(shape_model), "--images", str(shapes_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 90


@pytest.mark.parametrize("kind", ["grey8", "grey16", "rgb", "odd"])
def test_processor_gives_probabilities_over_all_classes(shape_model, kind):
    rng = np.random.default_rng(3)
    image = {
        "grey8": lambda: draw_shape("circles", rng),
        "grey16": lambda: draw_shape("stripes", rng, deep=True),
        "rgb": lambda: rng.integers(0, 256, (120, 160, 3), dtype=np.uint8),
        "odd": lambda: rng.integers(0, 256, (3, 517), dtype=np.uint8),
    }[kind]()
    processor = get_mode("classify").create(model=str(shape_model))
    result = processor.process(to_rgb8(image))
    labels = [label for label, _ in result.top_k]
    probs = [p for _, p in result.top_k]
    assert sorted(labels) == sorted(SHAPES)
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    assert result.counts == {} and result.error is None
    assert result.caption.startswith("model shapes ")
    assert (result.warning is not None) == (kind == "rgb")  # random colour noise given to a grey model


def test_processor_recognises_drawn_shapes(shape_model):
    rng = np.random.default_rng(11)
    processor = get_mode("classify").create(model=str(shape_model))
    hits = sum(processor.process(to_rgb8(draw_shape(kind, rng))).top_k[0][0] == kind
               for kind in SHAPES for _ in range(8))
    assert hits >= 17  # of 24; chance is 8


def test_shipped_model_is_the_default_and_classifies_any_image():
    assert DEFAULT_MODEL in available_models()
    spec = get_mode("classify")
    assert "not a diagnostic device" in spec.notice
    for image in (np.full((28, 28, 3), 128, np.uint8), np.random.default_rng(0).integers(0, 256, (1001, 777, 3),
                                                                                         dtype=np.uint8)):
        result = spec.create().process(image)
        assert sorted(label for label, _ in result.top_k) == ["normal", "pneumonia"]
        assert sum(p for _, p in result.top_k) == pytest.approx(1.0, abs=1e-5)


def test_report_png_decodes():
    spec = get_mode("classify")
    image = to_rgb8(draw_shape("circles", np.random.default_rng(0), deep=True))
    result = spec.create().process(image)
    png = spec.report(image, result)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[0] > 300 and decoded.shape[1] > 600
    # A failed frame still gives a report that says so.
    failed = spec.report(image, FrameResult(mode="classify", error="boom"))
    assert cv2.imdecode(np.frombuffer(failed, np.uint8), cv2.IMREAD_COLOR) is not None


def test_metrics_on_known_values():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])
    m = compute_metrics(labels, probs, ("a", "b"))
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(0.6)
    assert m["confusion"] == [[1, 1], [1, 2]]
    # AUC: positives' scores 0.7, 0.8, 0.3 vs negatives' 0.1, 0.6 -> 5 of 6 pairs ranked right.
    assert m["auc"] == pytest.approx(5 / 6)
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    three = compute_metrics(np.array([0, 1, 2]), np.eye(3), ("x", "y", "z"))
    assert three["accuracy"] == 1.0 and three["auc"] == 1.0
    assert compute_metrics(np.array([0, 0]), np.array([[0.6, 0.4], [0.3, 0.7]]), ("a", "b"))["auc"] is None


def test_stratified_split_is_seeded_disjoint_and_stratified():
    labels = np.repeat([0, 1, 2], [50, 20, 10])
    a, b = stratified_split(labels, 0.15, 0.15, seed=4), stratified_split(labels, 0.15, 0.15, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(80))
    for part in a.values():
        assert set(labels[part]) == {0, 1, 2}


def test_prepare_shrinks_to_the_native_size_then_resizes():
    meta = ModelMeta(name="m", classes=("a", "b"), input_size=64, colour="grey", source_size=28)
    big = np.zeros((560, 420, 3), np.uint8)
    big[:, 210:] = 255
    out = prepare(big, meta)
    assert out.shape == (64, 64) and out.dtype == np.uint8
    assert out[:, :24].max() < 10 and out[:, 40:].min() > 245
    rgb = prepare(np.zeros((10, 30), np.uint8), ModelMeta(name="m", classes=("a", "b"), input_size=16, colour="rgb"))
    assert rgb.shape == (16, 16, 3)


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, shapes_dir):
    assert cli.main(["evaluate", "classify", "--model", "no-such-model", "--images", str(shapes_dir)]) == 2
    assert "no classifier model 'no-such-model'" in capsys.readouterr().err
    one_class = tmp_path / "one"
    (one_class / "only").mkdir(parents=True)
    for i in range(5):
        cv2.imwrite(str(one_class / "only" / f"{i}.png"), np.full((20, 20), i * 40, np.uint8))
    assert cli.main(["train", "classify", "--images", str(one_class), "--out", str(tmp_path / "m")]) == 2
    assert "error:" in capsys.readouterr().err
    assert cli.main(["evaluate", "classify", "--npz", str(tmp_path / "missing.npz")]) == 2
    result = get_mode("classify").create().process_safely(np.zeros((5, 5), np.uint8))
    assert result.error and not result.top_k


def test_shipped_model_meets_the_targets_on_pneumoniamnist_test(shared_data, capsys):
    npz = shared_data("pneumoniamnist") / Path(PNEUMONIA_NPZ).name
    code = cli.main(["evaluate", "classify", "--model", DEFAULT_MODEL, "--npz", str(npz), "--split", "test"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 624
    assert report["accuracy"] >= 0.90
    assert report["auc"] >= 0.97
    assert load_model(DEFAULT_MODEL).meta.classes == ("normal", "pneumonia")
