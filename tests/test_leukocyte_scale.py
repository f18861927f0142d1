"""Leukocytes at any magnification: tiling and merging, mosaics and eyepiece views, the scale estimate on BCCD images
shrunk by known factors, the processor's cell scale, VOC folders as phone-photo sets come, and ``evaluate
--zoom-out`` end to end. Data-backed tests skip (with the reason) without the shared data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream_app.modes.leukocyte.scale import MIN_CELLS, ScaleEstimate, ScaleKeeper, TRAIN_RBC_PX
from stream_app.modes.leukocyte.tiling import OVERLAP, TILE_H, TILE_W, detect_scaled, field_mask, tile_origins
from stream_app.modes.leukocyte.tracking import iou_matrix
from stream_app.modes.leukocyte.zoomout import eyepiece, mosaic, phone_photo
from stream_app.results import Detections

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "models" / "leukocyte" / "detector_clahe_lab.pt"
needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"{WEIGHTS} not trained yet")


# ---- tiling -------------------------------------------------------------------------------------------------------
def test_tile_origins_cover_the_length_with_the_overlap():
    assert tile_origins(300, TILE_W) == [0]
    assert tile_origins(TILE_W, TILE_W) == [0]
    for length in (428, 900, 1911, 3000):
        starts = tile_origins(length, TILE_W)
        assert starts[0] == 0 and starts[-1] + TILE_W == length
        assert all(b - a <= TILE_W - OVERLAP for a, b in zip(starts, starts[1:]))  # every pair shares >= OVERLAP


def _discs(h, w, centres, radius):
    frame = np.full((h, w, 3), 225, np.uint8)
    for cx, cy in centres:
        cv2.circle(frame, (cx, cy), radius, (120, 40, 150), -1)
    truth = np.array([[cx - radius, cy - radius, cx + radius + 1, cy + radius + 1] for cx, cy in centres], np.float32)
    return frame, truth


def _blob_detector(tile):
    """A real (if simple) detector: dark connected blobs, one "WBC" box each."""
    dark = (cv2.cvtColor(tile, cv2.COLOR_RGB2GRAY) < 150).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(dark)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h, a in stats[1:] if a > 20], np.float32).reshape(-1, 4)
    return Detections(boxes, np.ones(len(boxes)), ["WBC"] * len(boxes))


def test_tiled_detection_finds_every_cell_once_in_frame_pixels_even_across_tile_edges():
    rng = np.random.default_rng(0)
    # discs 30 px across on a 700x500 frame; zoom 2 makes it 1400x1000: 4 x 5 tiles, discs cross their edges
    centres = [(int(x), int(y)) for x, y in zip(rng.integers(20, 680, 40), rng.integers(20, 480, 40))]
    kept = []
    for c in centres:  # no touching discs (they would be one blob)
        if all(np.hypot(c[0] - k[0], c[1] - k[1]) > 34 for k in kept):
            kept.append(c)
    frame, truth = _discs(500, 700, kept, 15)
    found, tiles = detect_scaled(frame, _blob_detector, 2.0)
    assert tiles == len(tile_origins(1000, TILE_H)) * len(tile_origins(1400, TILE_W)) > 1
    assert len(found) == len(truth) and set(found.labels) == {"WBC"}
    iou = iou_matrix(truth, found.boxes)
    assert (iou.max(axis=1) > 0.8).all()  # whole cells, in the original frame's pixels
    # the same at zoom 0.5: one padded tile, nothing lost
    found, tiles = detect_scaled(frame, _blob_detector, 0.5)
    assert tiles == 1 and len(found) == len(truth)


def test_tiles_outside_an_eyepiece_field_are_skipped():
    frame, _ = _discs(600, 600, [(300, 300)], 15)
    rng = np.random.default_rng(1)
    view, weight = eyepiece(frame, rng, centre=(300, 300), radius=200, blur=0, jpeg=95)
    mask = field_mask(view)
    assert mask[300, 300] and not mask[5, 5]  # the middle is lit, the corners are dark
    assert abs(mask.mean() - (weight > 0.5).mean()) < 0.05
    _, with_mask = detect_scaled(view, _blob_detector, 3.0, mask)
    _, without = detect_scaled(view, _blob_detector, 3.0)
    assert with_mask < without


# ---- mosaics, scale bookkeeping -----------------------------------------------------------------------------------
def test_mosaic_shrinks_fields_and_moves_their_boxes():
    images = [np.full((480, 640, 3), 40 * i, np.uint8) for i in range(4)]
    boxes = [np.array([[64, 48, 128, 96]], np.float32) for _ in range(4)]
    labels = [np.array([1]) for _ in range(4)]
    frame, b, lab = mosaic(images, boxes, labels, 2)
    assert frame.shape == (480, 640, 3) and frame[300, 400, 0] == 120  # field 3 bottom right
    assert np.allclose(b[3], [320 + 32, 240 + 24, 320 + 64, 240 + 48]) and list(lab) == [1, 1, 1, 1]
    with pytest.raises(ValueError):
        mosaic(images[:3], boxes[:3], labels[:3], 2)


def test_scale_keeper_estimates_once_then_again_when_the_picture_changes():
    keeper = ScaleKeeper(retry_s=2.0, drift=1.3, patience=3)
    assert keeper.due((480, 640, 3), 0, 0.0)
    keeper.set(ScaleEstimate(100.0, "auto", 10), (480, 640, 3), 0, 0.0)
    assert not keeper.due((480, 640, 3), 0, 1.0)
    assert keeper.due((720, 1280, 3), 0, 1.0)  # another frame size
    assert keeper.due((480, 640, 3), 50, 1.0)  # the cell_size setting changed
    rbc = lambda size, n=8: Detections([[0, 0, size, size]] * n, np.ones(n), ["RBC"] * n)  # noqa: E731
    for _ in range(3):  # cells now 1.6x larger (another zoom): followed without a new search
        keeper.observe(rbc(160))
    assert keeper.estimate.rbc_px == pytest.approx(160)
    for _ in range(3):  # no cells in three rounds: search again (at most every retry_s)
        keeper.observe(rbc(160, MIN_CELLS - 1))
    assert keeper.due((480, 640, 3), 0, 2.5)
    keeper.set(ScaleEstimate(None, "none"), (480, 640, 3), 0, 3.0)
    assert not keeper.due((480, 640, 3), 0, 4.0) and keeper.due((480, 640, 3), 0, 5.1)
    assert "no red cells found" in keeper.estimate.describe()
    assert ScaleEstimate(15.0, "auto").describe().startswith("cell size: RBC 15 px (auto), magnification 0.15x")


# ---- VOC folders as phone-photo sets come -------------------------------------------------------------------------
def test_flat_voc_folder_with_only_white_cells_and_other_names_loads(tmp_path):
    from stream_app.modes.leukocyte.data import load_split

    for i, name in enumerate(("WBC", "white blood cell", "Leukocyte")):
        cv2.imwrite(str(tmp_path / f"p{i}.jpg"), np.full((416, 416, 3), 200, np.uint8))
        (tmp_path / f"p{i}.xml").write_text(
            f"<annotation><object><name>{name}</name><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>35</xmax>"
            "<ymax>44</ymax></bndbox></object></annotation>")
    samples = load_split(tmp_path, "test")  # no split lists: the folder is the set
    assert [s.image_id for s in samples] == ["p0", "p1", "p2"]
    assert all(list(s.labels) == [1] and s.boxes.shape == (1, 4) for s in samples)
    (tmp_path / "sets" / "test").mkdir(parents=True)
    for p in tmp_path.glob("p0.*"):
        (tmp_path / "sets" / "test" / p.name).write_bytes(p.read_bytes())
    assert [s.image_id for s in load_split(tmp_path / "sets", "test")] == ["p0"]


# ---- the real detector --------------------------------------------------------------------------------------------
def _bccd(shared_data, split="test"):
    from stream_app.modes.leukocyte.data import load_split

    samples = load_split(shared_data("bccd"), split)
    return samples, [s.load() for s in samples]


@needs_weights
def test_scale_estimate_on_bccd_images_shrunk_by_known_factors(shared_data):
    from stream_app.modes.leukocyte.detector import shared_detector
    from stream_app.modes.leukocyte.scale import estimate_scale

    samples, images = _bccd(shared_data)
    detector = shared_detector(str(WEIGHTS))
    for k in (1, 2, 3):
        idx = list(range(k * k))
        frame, _, _ = mosaic([images[i] for i in idx], [samples[i].boxes for i in idx],
                             [samples[i].labels for i in idx], k)
        estimate = estimate_scale(detector, frame)
        assert estimate.found and estimate.source == "auto"
        assert 0.75 <= estimate.rbc_px / (TRAIN_RBC_PX / k) <= 1.3, (k, estimate)
    blank = estimate_scale(detector, np.full((480, 640, 3), 215, np.uint8))
    assert not blank.found and blank.source == "none"


@needs_weights
def test_processor_boxes_white_cells_of_a_3x3_mosaic_in_original_pixels(shared_data):
    from stream_app.modes import create_processor

    samples, images = _bccd(shared_data)
    idx = [i for i, s in enumerate(samples) if (s.labels == 1).sum() == 1][:9]
    frame, boxes, labels = mosaic([images[i] for i in idx], [samples[i].boxes for i in idx],
                                  [samples[i].labels for i in idx], 3)
    big = cv2.resize(frame, (1280, 960), interpolation=cv2.INTER_LINEAR)  # boxes must come back in these pixels
    truth = boxes[labels == 1] * 2
    result = create_processor("leukocyte").process(big)
    assert result.error is None and result.extras.description.startswith("cell size: RBC")
    assert 0.75 <= result.extras.rbc_px / (2 * TRAIN_RBC_PX / 3) <= 1.3 and result.extras.source == "auto"
    assert result.to_json(0, 0.0)["text"] == result.extras.description
    wbc = np.array([d.box for d in result.detections if d.label == "WBC"], np.float32).reshape(-1, 4)
    assert len(wbc) >= 8 and (iou_matrix(truth, wbc).max(axis=1) >= 0.5).sum() >= 8
    fixed = create_processor("leukocyte", cell_size=2 * TRAIN_RBC_PX / 3).process(big)
    assert "(set)" in fixed.extras.description and fixed.extras.source == "fixed"
    assert sum(d.label == "WBC" for d in fixed.detections) >= 8
    blank = create_processor("leukocyte").process(np.full((480, 640, 3), 215, np.uint8))
    assert blank.warning and "no red cells found" in blank.warning


@needs_weights
def test_evaluate_zoom_out_scores_mosaics_end_to_end(shared_data, tmp_path):
    samples, images = _bccd(shared_data)
    chosen = [i for i, s in enumerate(samples) if (s.labels == 1).sum() == 1][:4]
    root = tmp_path / "voc"
    for sub in ("JPEGImages", "Annotations"):
        (root / sub).mkdir(parents=True)
    from stream_app.modes.leukocyte.model import CLASSES

    for i in chosen:
        s = samples[i]
        cv2.imwrite(str(root / "JPEGImages" / f"{s.image_id}.jpg"), cv2.cvtColor(images[i], cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        objs = "".join(f"<object><name>{CLASSES[l - 1]}</name><bndbox><xmin>{int(b[0])}</xmin><ymin>{int(b[1])}"
                       f"</ymin><xmax>{int(b[2])}</xmax><ymax>{int(b[3])}</ymax></bndbox></object>"
                       for b, l in zip(s.boxes, s.labels))
        (root / "Annotations" / f"{s.image_id}.xml").write_text(f"<annotation>{objs}</annotation>")
    run = subprocess.run([sys.executable, "-m", "stream_app", "evaluate", "leukocyte", "--voc", str(root),
                          "--zoom-out", "1,2"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert set(out["zoom_out"]) == {"1", "2"} and out["targets"]["wbc_ap50_zoom_out"]["2"] == 0.95
    one, two = out["zoom_out"]["1"], out["zoom_out"]["2"]
    assert one["n_frames"] == 4 and two["n_frames"] == 1 and two["frame_size"] == [640, 480]
    assert one["tiles_per_frame"] == 1  # BCCD-sized fields: one network run, as before
    assert two["tiles_per_frame"] > 1  # cells at half size: enlarged and tiled
    assert 0.75 <= two["scale_estimate"]["median_ratio_to_truth"] <= 1.3
    assert two["WBC"]["ap50"] >= 0.9 and two["image_level"]["recall"] == 1.0
    assert "target_met" in two and "zoom-out 2x2: WBC AP50" in run.stderr


@needs_weights
def test_phone_photo_proxy_set_in_a_flat_voc_folder_runs_the_auto_scale_pipeline(shared_data, tmp_path):
    samples, images = _bccd(shared_data)
    rng = np.random.default_rng(5)
    photo, boxes, labels = phone_photo(images, [s.boxes for s in samples], [s.labels for s in samples], rng, 1 / 7)
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    objs = "".join(f"<object><name>WBC</name><bndbox><xmin>{int(b[0])}</xmin><ymin>{int(b[1])}</ymin><xmax>"
                   f"{int(b[2])}</xmax><ymax>{int(b[3])}</ymax></bndbox></object>"
                   for b, l in zip(boxes, labels) if l == 1)
    (tmp_path / "photo.xml").write_text(f"<annotation>{objs}</annotation>")
    run = subprocess.run([sys.executable, "-m", "stream_app", "evaluate", "leukocyte", "--voc", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["n_images"] == 1 and out["per_class"]["RBC"]["ap50"] is None  # WBC-only labels
    assert 0.75 <= out["scale"]["rbc_px_median"] / (TRAIN_RBC_PX / 7) <= 1.3
    assert out["scale"]["tiles_per_image"] > 10 and "faint" not in out  # reference rows skipped: many tiles
    assert out["per_class"]["WBC"]["ap50"] >= 0.6


def test_slide_motion_inside_an_eyepiece_follows_the_slide_not_the_still_border():
    from stream_app.modes.leukocyte.tracking import SlideMotion, field_window

    rng = np.random.default_rng(0)
    slide = cv2.GaussianBlur(rng.integers(60, 255, (600, 1400, 3), dtype=np.uint8), (0, 0), 3)
    circle = np.zeros((480, 640), np.uint8)
    cv2.circle(circle, (320, 240), 230, 1, -1)
    views = [np.ascontiguousarray(slide[60:540, x:x + 640] * circle[..., None]) for x in range(0, 200, 10)]
    window = field_window(field_mask(views[0]))
    assert window is not None and window[2] - window[0] > 250
    plain, inside = SlideMotion(), SlideMotion()
    for view in views:
        a, b = plain.update(view), inside.update(view, window)
    assert abs(b[0] - (-190)) < 12 and abs(b[1]) < 6  # the slide's pan, measured inside the circle
    assert abs(a[0]) < 20  # over the whole frame the still circle wins: the pan is lost
    assert field_window(np.ones((480, 640), bool)) is None


def test_zoom_out_training_sample_is_a_wider_field_back_at_the_training_scale():
    from stream_app.modes.leukocyte.train import zoom_out

    frame, truth = _discs(480, 640, [(100, 100), (320, 240), (600, 440)], 50)
    pool = [(frame, truth, np.array([1, 2, 2]))]
    rng = np.random.default_rng(0)
    for _ in range(10):
        image, boxes, labels = zoom_out(frame, truth, np.array([1, 2, 2]), pool, rng)
        h, w = image.shape[:2]
        assert 0.8 * 480 * 0.95 <= h <= 1.25 * 480 * 1.05  # one field's worth, enlarged back (+-25%)
        assert len(boxes) == len(labels) and len(boxes) <= 12
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        whole = side[(boxes[:, 0] > 1) & (boxes[:, 1] > 1) & (boxes[:, 2] < w - 1) & (boxes[:, 3] < h - 1)]
        assert ((whole > 0.7 * 101) & (whole < 1.35 * 101)).all()  # cells back at about their training size


# ---- routing by scale: the shipped model for BCCD-sized fields, the multi-scale model for rescaled frames ----------
MULTISCALE = ROOT / "models" / "leukocyte" / "detector_clahe_lab_multiscale.pt"


def test_a_routed_pair_must_see_the_same_input():
    from stream_app.modes.leukocyte.detector import Detector, RoutedDetector
    from stream_app.modes.leukocyte.model import DetectorConfig

    lab = Detector(None, DetectorConfig(input="clahe_lab"))
    with pytest.raises(ValueError, match="input"):
        RoutedDetector(lab, Detector(None, DetectorConfig(input="rgb")))
    with pytest.raises(ValueError, match="min_size"):
        RoutedDetector(lab, Detector(None, DetectorConfig(input="clahe_lab", min_size=352)))
    assert lab.rescaled is lab and RoutedDetector(lab, lab).rescaled is lab


@pytest.mark.skipif(not (WEIGHTS.is_file() and MULTISCALE.is_file()), reason="shipped detectors not present")
def test_bccd_fields_go_to_the_shipped_model_and_zoomed_out_fields_to_the_multiscale_one(shared_data):
    from stream_app.modes.leukocyte.detector import RoutedDetector, mode_detector, shared_detector
    from stream_app.modes.leukocyte.scale import detect_at, estimate_scale

    routed = mode_detector("clahe_lab")
    base, multi = shared_detector(str(WEIGHTS)), shared_detector(str(MULTISCALE))
    assert isinstance(routed, RoutedDetector) and routed.base is base and routed.rescaled is multi  # the cached models
    assert mode_detector("rgb").rescaled is mode_detector("rgb")  # no multi-scale RGB model: one model for all

    samples, images = _bccd(shared_data)

    def same(a, b):
        return (np.array_equal(a.labels, b.labels) and a.boxes.shape == b.boxes.shape and np.allclose(a.boxes, b.boxes)
                and np.allclose(a.scores, b.scores))

    # a BCCD field at its own scale: one run of the shipped model, exactly as without routing
    field = images[0]
    got, timings = detect_at(routed, field, TRAIN_RBC_PX)
    assert timings["tiles"] == 1 and same(got, detect_at(base, field, TRAIN_RBC_PX)[0])
    # a 2x2 mosaic (cells at half size): brought to the training scale and tiled, read by the multi-scale model
    frame, _, _ = mosaic(images[:4], [s.boxes for s in samples[:4]], [s.labels for s in samples[:4]], 2)
    got, timings = detect_at(routed, frame, TRAIN_RBC_PX / 2)
    assert timings["tiles"] > 1
    assert same(got, detect_at(multi, frame, TRAIN_RBC_PX / 2)[0])
    assert not same(got, detect_at(base, frame, TRAIN_RBC_PX / 2)[0])  # (so the line above tells the two apart)
    # the scale search looks at rescaled crops: the multi-scale model's
    assert estimate_scale(routed, frame) == estimate_scale(multi, frame)
