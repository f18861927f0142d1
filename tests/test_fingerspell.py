"""Fingerspelling: hand finding on real photos (shared data), crop, letters, spelling rules, J/Z motion, CLI."""

from __future__ import annotations

import copy
import json
import threading

import cv2
import numpy as np
import pytest

from stream_app.config import VENDOR_DIR
from stream_app.modes.fingerspell import LETTERS
from stream_app.modes.fingerspell.hands import Hand, choose_signing_hand, landmark_features, square_crop
from stream_app.modes.fingerspell.motion import MotionTracker, is_j_path, is_z_path
from stream_app.modes.fingerspell.speller import Speller
from stream_app.modes.fingerspell.models import MODEL_DIR

needs_bundle = pytest.mark.skipif(not (VENDOR_DIR / "hand_landmarker.task").is_file(),
                                  reason="MediaPipe bundle missing: run scripts/fetch_models.py")
needs_model = pytest.mark.skipif(not (MODEL_DIR / "fusion.json").is_file(),
                                 reason="no trained fingerspelling model in models/fingerspell")
# Held-out Roboflow test photos (never trained on) that the shipped model should read; distinct hand shapes.
KNOWN = ["B19", "C17", "V10", "W16", "Y"]


# ------------------------------------------------------------------------------------------- pure geometry
def _fake_hand(cx: float, cy: float, size: float, label: str = "Right") -> Hand:
    rng = np.random.default_rng(int(cx + cy))
    pts = np.zeros((21, 3), np.float32)
    pts[:, 0] = cx + rng.uniform(-size / 2, size / 2, 21)
    pts[:, 1] = cy + rng.uniform(-size / 2, size / 2, 21)
    pts[0, :2] = (cx - size / 2, cy - size / 2)
    pts[1, :2] = (cx + size / 2, cy + size / 2)
    return Hand(pts, np.zeros((21, 3), np.float32), label, 0.9)


def test_signing_hand_is_the_largest_and_a_near_tie_goes_to_the_centre():
    small, big = _fake_hand(100, 100, 60), _fake_hand(500, 300, 150)
    assert choose_signing_hand([small, big], 640, 480) is big
    assert choose_signing_hand([], 640, 480) is None
    edge, centre = _fake_hand(40, 40, 100), _fake_hand(320, 240, 96)
    assert choose_signing_hand([edge, centre], 640, 480) is centre


def test_landmark_features_ignore_position_and_scale_and_mirror_left_hands():
    hand = _fake_hand(200, 150, 120).points
    moved = hand * np.float32(2.5) + np.float32([40, -10, 0])
    np.testing.assert_allclose(landmark_features(hand, False), landmark_features(moved, False), atol=1e-5)
    mirrored = hand.copy()
    mirrored[:, 0] = 640 - mirrored[:, 0]
    np.testing.assert_allclose(landmark_features(mirrored, True), landmark_features(hand, False), atol=1e-5)
    assert not np.allclose(landmark_features(mirrored, False), landmark_features(hand, False), atol=1e-3)


def test_square_crop_is_square_centred_and_mirrors():
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[100:200, 150:200] = (255, 0, 0)   # left half of the box red
    frame[100:200, 200:250] = (0, 0, 255)   # right half blue
    pts = np.array([[150, 100], [250, 200]], np.float32)
    crop = square_crop(frame, pts, 64, 0.25, mirror=False)
    assert crop.shape == (64, 64, 3)
    assert crop[32, 20, 0] > 200 and crop[32, 44, 2] > 200     # red left, blue right
    assert crop[2, 2].max() == 0                               # the margin is outside the box
    flipped = square_crop(frame, pts, 64, 0.25, mirror=True)
    assert flipped[32, 20, 2] > 200 and flipped[32, 44, 0] > 200


# ------------------------------------------------------------------------------------------------ spelling
def feed(speller: Speller, t0: float, seconds: float, letter, fps=30.0, **kw) -> float:
    n = int(round(seconds * fps))
    for i in range(n):
        speller.update(t0 + i / fps, letter, **kw)
    return t0 + n / fps


def test_letter_joins_only_after_it_is_stable():
    s = Speller(stable_s=0.6, release_s=0.25)
    t = feed(s, 0.0, 0.5, "A")
    assert s.text == ""
    t = feed(s, t, 0.2, "A")
    assert s.text == "A"
    t = feed(s, t, 3.0, "A")                  # held on: still once
    assert s.text == "A"
    t = feed(s, t, 0.1, "B")                  # a flicker is neither a letter nor a release
    feed(s, t, 1.0, "A")
    assert s.text == "A"


def test_double_letter_needs_a_release():
    s = Speller(stable_s=0.5, release_s=0.25)
    t = feed(s, 0.0, 1.0, "L")
    t = feed(s, t, 0.1, None)                 # hand gone: release
    t = feed(s, t, 1.0, "L")
    assert s.text == "LL"
    t = feed(s, t, 0.35, "O")                 # another letter for >= release_s but < stable_s: release, not added
    feed(s, t, 1.0, "L")
    assert s.text == "LLL"


def test_no_letter_shown_is_a_release_and_j_z_join_only_with_their_motion():
    s = Speller(stable_s=0.4, release_s=0.25)
    t = feed(s, 0.0, 1.0, "A")
    t = feed(s, t, 0.3, None, hand=True)      # the hand stays, no letter is shown: a release after release_s
    t = feed(s, t, 1.0, "A")
    assert s.text == "AA"
    t = feed(s, t, 1.0, "J")                  # J / Z shown without their motion never join the text
    t = feed(s, t, 1.0, "Z")
    assert s.text == "AA"
    assert s.update(t, "J", motion=True) == "J" and s.text == "AAJ"
    feed(s, t + 0.03, 1.0, "J")               # the held end of the motion does not add it again
    assert s.text == "AAJ"


def test_a_letter_counts_its_hold_from_when_it_began_to_win_but_not_from_before_a_button():
    s = Speller(stable_s=0.6)
    assert s.update(1.0, "B", since=0.5) is None           # shown at 1.0, winning since 0.5
    assert s.update(1.1, "B", since=0.5) == "B"            # 0.6 s after it began to win
    s.space()
    t = feed(s, 1.2, 0.5, "C", since=0.0)                  # began to win long ago, but a button was pressed since
    assert s.text == "B "
    feed(s, t, 0.2, "C", since=0.0)
    assert s.text == "B C"


def test_space_delete_clear_are_thread_safe_buttons():
    s = Speller(stable_s=0.3)
    t = feed(s, 0.0, 0.5, "H")
    t = feed(s, t, 0.1, None)
    t = feed(s, t, 0.5, "I")
    threads = [threading.Thread(target=s.space) for _ in range(3)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    assert s.text == "HI   "
    s.delete()
    s.delete()
    assert s.text == "HI "
    t = feed(s, t, 0.2, "I")                  # after a button, the letter must be held stable_s again
    assert s.text == "HI "
    s.clear()
    assert s.text == ""
    feed(s, t, 0.5, "I")
    assert s.text == "I"


def _trace(points, seconds=0.8, fps=30):
    pts = np.asarray(points, np.float32)
    n = int(seconds * fps)
    u = np.linspace(0, len(pts) - 1, n)
    return np.stack([np.interp(u, np.arange(len(pts)), pts[:, k]) for k in range(2)], 1)


J_PATH = _trace([(0, 0), (0, 0.3), (0, 0.6), (-0.1, 0.75), (-0.3, 0.75)])
Z_PATH = _trace([(0, 0), (0.6, 0), (0, 0.6), (0.6, 0.6)])


def test_motion_shapes_on_synthetic_trajectories():
    assert is_j_path(J_PATH) and is_j_path(J_PATH * [-1, 1])
    assert not is_j_path(_trace([(0, 0), (0, 0.6)]))           # only down: no hook
    assert not is_j_path(_trace([(0, 0), (0.6, 0)]))           # only sideways
    assert is_z_path(Z_PATH) and is_z_path(Z_PATH * [-1, 1])
    assert not is_z_path(_trace([(0, 0), (0.6, 0), (1.2, 0)]))  # a straight stroke
    assert not is_z_path(J_PATH)


def test_motion_tracker_needs_a_moving_tip():
    tracker = MotionTracker(window_s=1.0)
    assert all(tracker.update(i / 30, (0, 0), (0, 0), 100, False, "I") is None for i in range(60))
    tracker = MotionTracker(window_s=1.0)
    assert any(tracker.update(i / 30, (0, 0), (300 + 100 * x, 200 + 100 * y), 100, False, "I") == "J"
               for i, (x, y) in enumerate(J_PATH))


# ------------------------------------------------------------------------------------------- real MediaPipe
@needs_bundle
def test_hand_found_and_cropped_on_real_photos(rf_test_photo):
    from stream_app.modes.fingerspell.hands import HandFinder

    finder = HandFinder(video=False)
    try:
        for photo in ("B19", "V10", "C17"):
            image = rf_test_photo(photo)
            hands, small, scale = finder.find(image)
            assert len(hands) == 1, photo
            pts = hands[0].points
            assert pts.shape == (21, 3)
            assert (pts[:, 0] > -5).all() and (pts[:, 0] < image.shape[1] + 5).all()
            crop = square_crop(small, pts[:, :2] * scale, 128, 0.2, hands[0].mirrored)
            assert crop.shape == (128, 128, 3) and crop.std() > 10
        # the same photo as a 4K portrait frame: found on a downscaled copy, landmarks in the big frame's pixels
        big = cv2.resize(rf_test_photo("B19"), (2160, 3840))
        hands_big, small_big, scale_big = finder.find(big)
        assert max(small_big.shape) == 640 and scale_big == pytest.approx(640 / 3840)
        hands_small, _, _ = finder.find(cv2.resize(big, (360, 640), interpolation=cv2.INTER_AREA))
        np.testing.assert_allclose(hands_big[0].points[:, :2], hands_small[0].points[:, :2] * 6, atol=6)
    finally:
        finder.close()


@needs_bundle
@needs_model
def test_processor_reads_letters_of_held_out_photos(rf_test_photo):
    from stream_app.modes import create_processor

    proc = create_processor("fingerspell")
    try:
        correct = 0
        for photo in KNOWN:
            result = proc.process(rf_test_photo(photo))
            assert result.extras.letter is not None and result.warning is None, photo
            assert len(result.top_k) == 5 and result.top_k[0][0] == result.extras.letter
            assert 0 < result.extras.letter_score <= 1 and len(result.extras.landmarks) == 21
            correct += result.extras.letter == photo[0]
        assert correct >= len(KNOWN) - 1
    finally:
        proc.close()


@needs_bundle
@needs_model
def test_no_hand_odd_sizes_and_4k_do_not_crash():
    from stream_app.modes import create_processor

    proc = create_processor("fingerspell")
    try:
        rng = np.random.default_rng(0)
        for shape in [(480, 640, 3), (3840, 2160, 3), (517, 333, 3), (7, 5, 3)]:
            frame = rng.integers(0, 60, shape, dtype=np.uint8)
            for ts in (None, 0.5):
                result = proc.process(frame, ts)
                assert result.extras.letter is None and result.top_k == [] and result.warning == "no hand"
                assert result.error is None and "hands" in result.timings_ms
        result = proc.process(np.zeros((480, 640, 3), np.uint8), 0.4)  # timestamp going back: still fine
        assert result.warning == "no hand"
        with pytest.raises(ValueError):
            proc.process(np.zeros((480, 640), np.uint8))
    finally:
        proc.close()


@needs_bundle
@needs_model
def test_several_hands_reads_the_larger_one_and_warns(rf_test_photo):
    from stream_app.modes import create_processor

    image = rf_test_photo("B19")
    smaller = cv2.resize(image[:, ::-1], (300, 300))
    canvas = np.full((416, 416 + 320, 3), 110, np.uint8)
    canvas[:, :416] = image
    canvas[58:358, 426:726] = smaller
    proc = create_processor("fingerspell")
    try:
        result = proc.process(canvas)
        assert result.counts["hands"] == 2
        assert result.warning == "2 hands: reading the larger one"
        assert max(x for x, _ in result.extras.landmarks) < 416          # the big hand on the left
    finally:
        proc.close()


@needs_bundle
@needs_model
def test_stream_finds_a_second_hand_within_a_census_and_then_reads_the_larger(rf_test_photo):
    """Streams track one hand (cheap); the several-hands check every 15 frames must still notice a second hand."""
    from stream_app.modes import create_processor

    image = rf_test_photo("B19")
    one = np.full((416, 416 + 320, 3), 110, np.uint8)
    one[:, :416] = image
    two = one.copy()
    two[58:358, 426:726] = cv2.resize(image[:, ::-1], (300, 300))
    proc = create_processor("fingerspell")
    try:
        first = [proc.process(one, i / 30) for i in range(5)]
        assert all(r.counts["hands"] == 1 and r.warning is None for r in first)
        later = [proc.process(two, (5 + i) / 30) for i in range(30)]
        warned = [i for i, r in enumerate(later) if r.warning == "2 hands: reading the larger one"]
        assert warned and warned[0] < 15, [r.counts for r in later]
        # from then on every frame sees both hands and reads the big one on the left
        assert all(r.counts["hands"] == 2 for r in later[warned[0]:])
        assert all(max(x for x, _ in r.extras.landmarks) < 416 for r in later[warned[0]:])
        back = [proc.process(one, (35 + i) / 30) for i in range(40)]
        assert all(r.counts["hands"] == 1 for r in back[-10:])
    finally:
        proc.close()


@needs_bundle
@needs_model
def test_stream_reclassifies_a_still_hand_every_other_frame_and_a_moved_hand_at_once(rf_test_photo):
    from stream_app.modes import create_processor

    image = rf_test_photo("B19")
    other = rf_test_photo("C17")
    # every=2: at least every other frame is classified; the first tracked frames after the detection jitter more
    # than the tolerance and are classified too
    for every, expected_calls in ((1, {8}), (2, {4, 5})):
        proc = create_processor("fingerspell", reclassify_every=every)
        calls = []
        real_predict = proc._classifiers.predict
        proc._classifiers = copy.copy(proc._classifiers)
        proc._classifiers.predict = lambda *a, **k: calls.append(1) or real_predict(*a, **k)
        try:
            results = [proc.process(image, i / 30) for i in range(8)]
            assert len(calls) in expected_calls and {r.top_k[0][0] for r in results} == {"B"}
            assert results[-1].extras.letter == "B"
            calls.clear()
            changed = proc.process(other, 8 / 30)  # another hand shape: classified on its first frame, and the
            assert len(calls) == 1 and changed.top_k[0][0] == "C"  # average starts afresh with it
        finally:
            proc.close()


@needs_bundle
@needs_model
def test_stream_spells_a_held_letter(rf_test_photo):
    from stream_app.modes import create_processor

    image = rf_test_photo("B19")
    proc = create_processor("fingerspell", stable_s=0.3, min_confidence=0.0)
    try:
        letters = [proc.process(image, i / 30).extras.letter for i in range(20)]
        assert proc.process(np.zeros((416, 416, 3), np.uint8), 0.7).extras.letter is None
        assert proc.speller.text and set(proc.speller.text) <= set(letters)
        proc.actions()["Clear text"]()
        assert proc.speller.text == ""
    finally:
        proc.close()


@needs_bundle
@needs_model
def test_evaluate_cli_prints_the_schema(rf_test_path, tmp_path, capsys):
    from stream_app.cli import main

    for photo, name in (("B19", "B"), ("V10", "v"), ("C17", "c")):
        (tmp_path / name).mkdir()
        src = rf_test_path(photo)
        (tmp_path / name / src.name).symlink_to(src)
    (tmp_path / "B" / "blank.png").write_bytes(cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    (tmp_path / "not_a_letter").mkdir()
    png = tmp_path / "confusion.png"
    assert main(["evaluate", "fingerspell", "--images", str(tmp_path), "--confusion-png", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 4 and out["hand_found_rate"] == 0.75 and len(out["no_hand_images"]) == 1
    assert set(out["labels"]) >= {"B", "C", "V"} and set(out["labels"]) <= set(LETTERS)
    assert len(out["confusion"]) == len(out["labels"]) and sum(map(sum, out["confusion"])) == 3
    assert set(out["per_letter"]["B"]) == {"precision", "recall", "f1", "n"}
    assert 0 <= out["accuracy"] <= 1 and set(out["models"]) >= {"landmarks"}
    assert png.stat().st_size > 1000
    assert main(["evaluate", "fingerspell", "--images", str(tmp_path / "nope")]) == 2


@needs_bundle
@needs_model
def test_process_video_writes_letters_and_text(rf_test_photo, tmp_path, capsys):
    from stream_app.cli import main
    from stream_app.synthetic import write_video

    image = rf_test_photo("V10")
    frame = np.full((480, 640, 3), 100, np.uint8)
    frame[32:448, 112:528] = image
    blank = np.full((480, 640, 3), 100, np.uint8)
    clip = write_video(tmp_path / "clip.mp4", [frame] * 30 + [blank] * 5, fps=30)
    out = tmp_path / "out.jsonl"
    assert main(["process", str(clip), "--mode", "fingerspell", "--jsonl", str(out), "--set", "stable_s=0.3",
                 "--set", "min_confidence=0.0"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 35
    assert all(len(r["top_k"]) == 5 and r["detections"] for r in records[:30])
    # a stream's letter is the decision: none until one letter has clearly won for show_s (0.2 s), then held
    shown = [r["letter"] for r in records[:30]]
    assert shown[0] is None and shown[-1] in LETTERS and set(shown[shown.index(shown[-1]):30]) == {shown[-1]}
    assert all(r["letter"] is None and r["warning"] == "no hand" for r in records[-3:])
    assert records[-1]["text"] and records[0]["text"] == ""
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["text"] == records[-1]["text"]


def test_models_shapes_and_identity_spatial_transformer():
    import torch

    from stream_app.modes.fingerspell.models import LandmarkMLP, SpatialTransformer

    stn = SpatialTransformer()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(stn(x), x, atol=1e-4, rtol=1e-4)   # identity at the start of training
    assert LandmarkMLP()(torch.rand(4, 63)).shape == (4, len(LETTERS))


@needs_bundle
def test_hand_cache_is_rebuilt_when_the_hand_model_changes(rf_test_path, tmp_path, monkeypatch):
    """A cache made by another MediaPipe bundle would train the classifiers on crops the app never makes."""
    import shutil

    from stream_app.modes.fingerspell import data

    rows = ["image_path,split,source_image_id,letter_from_filename,yolo_box_classes"]
    tree = tmp_path / "data" / data.RF_DIR
    for photo in ("B19", "C17"):
        path = rf_test_path(photo)
        (tree / "images").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tree / "images" / path.name)
        rows.append(f"images/{path.name},train,{photo},{photo[0]},{photo[0]}")
    (tree / "manifest.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "data" / data.MASSEY_DIR / "asl_dataset").mkdir(parents=True)
    monkeypatch.setenv("STREAM_APP_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("STREAM_APP_CACHE", str(tmp_path / "cache"))
    messages = []
    target = data.build_cache(log=messages.append)
    with np.load(target) as z:
        assert z["found"].tolist() == [True, True] and str(z["hand_model"]) == data.hand_model_id()
    assert data.build_cache(log=messages.append) == target and not any("rebuilding" in m for m in messages)
    monkeypatch.setattr(data, "hand_model_id", lambda: "another-bundle")
    data.build_cache(log=messages.append)
    assert any("another hand model" in m for m in messages)
    with np.load(target) as z:
        assert str(z["hand_model"]) == "another-bundle"
