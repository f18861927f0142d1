"""Fingerspelling for people the models never saw: signer-independent landmark features, 3D augmentation, the hand
mask of the crop model, the signer data sets (webcam landmarks, digits) and the leave-one-signer-out evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from stream_app.config import VENDOR_DIR
from stream_app.modes.fingerspell.features import (BLOCK_SIZES, BLOCKS, augment_points, canonical, hand_features,
                                                   n_features, palm_frame)
from stream_app.modes.fingerspell.handmask import crop_points, hand_mask, mask_crop
from stream_app.modes.fingerspell.hands import square_crop

SHAPE_BLOCKS = ("palm", "bones", "angles", "thumb")
needs_bundle = pytest.mark.skipif(not (VENDOR_DIR / "hand_landmarker.task").is_file(),
                                  reason="MediaPipe bundle missing: run scripts/fetch_models.py")


def flat_hand(curl_index_deg: float = 0.0) -> np.ndarray:
    """A right hand, palm to the camera, fingers up (pixels, y down, z towards the scene): wrist at the origin,
    knuckles 100 px above it, the thumb on the image's right (the index side), every finger straight; the index
    finger bent at its PIP joint by ``curl_index_deg`` towards the palm (away from the camera: +z)."""
    p = np.zeros((21, 3))
    p[1:5] = [[40, -20, 0], [70, -45, 0], [90, -70, 0], [105, -90, 0]]  # thumb
    for f, x in enumerate((30, 10, -10, -30)):  # index, middle, ring, pinky: MCP, PIP, DIP, tip
        base = 5 + 4 * f
        p[base:base + 4] = [[x, -100 - 35 * k, 0] for k in range(4)]
    if curl_index_deg:
        a = np.radians(curl_index_deg)
        pip = p[6].copy()
        for j, k in ((7, 1), (8, 2)):
            p[j] = pip + 35 * k * np.array([0, -np.cos(a), np.sin(a)])
    return p + np.array([320.0, 400.0, 0.0])


def rotate(p: np.ndarray, rx: float, ry: float, rz: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    centre = p[0]
    return (p - centre) @ Rotation.from_euler("xyz", [rx, ry, rz], degrees=True).as_matrix().T + centre


# ----------------------------------------------------------------------------------------------------- features
def test_palm_frame_of_a_flat_hand_facing_the_camera():
    rot, size = palm_frame(canonical(flat_hand(), False))
    # columns: x towards the index/thumb side (+x), y along the fingers (up = -y), z the palm normal (to the camera)
    np.testing.assert_allclose(rot[0], [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-9)
    assert size[0] == pytest.approx((2 * np.hypot(30, 100) + 2 * np.hypot(10, 100) + 60) / 5)  # 4 wrist->MCP + width


def test_shape_features_ignore_position_size_and_3d_rotation_but_orientation_sees_it():
    hand = flat_hand(30)
    moved = rotate(hand, 25, -20, 40) * 1.7 + np.array([55.0, -30.0, 7.0])
    a, b = hand_features(hand, False, SHAPE_BLOCKS), hand_features(moved, False, SHAPE_BLOCKS)
    np.testing.assert_allclose(a, b, atol=1e-5)
    o1, o2 = hand_features(hand, False, ("orient",)), hand_features(moved, False, ("orient",))
    assert np.abs(o1 - o2).max() > 0.3  # G/H, K/P differ by this block only
    assert a.shape == (sum(BLOCK_SIZES[k] for k in SHAPE_BLOCKS),)
    assert hand_features(hand, False).shape == (n_features(BLOCKS),)


def test_left_hands_are_mirrored_to_right_hands():
    hand = rotate(flat_hand(40), 10, 0, 15)
    left = hand * np.array([-1.0, 1.0, 1.0]) + np.array([640.0, 0, 0])  # the same handshape, other hand
    np.testing.assert_allclose(hand_features(left, True), hand_features(hand, False), atol=1e-5)
    assert not np.allclose(hand_features(left, False), hand_features(hand, False), atol=1e-3)


def test_joint_angles_read_a_bent_finger():
    names = [f"{finger}{j}" for finger in "TIMRP" for j in range(3)] + ["spread_TI", "spread_IM", "spread_MR",
                                                                          "spread_RP"]
    straight = dict(zip(names, hand_features(flat_hand(0), False, ("angles",))))
    bent = dict(zip(names, hand_features(flat_hand(90), False, ("angles",))))
    assert straight["I1"] == pytest.approx(0.0, abs=1e-6)        # the index PIP joint, straight
    assert bent["I1"] == pytest.approx(np.pi / 2, abs=1e-5)       # ... bent by 90 degrees
    assert bent["M1"] == pytest.approx(0.0, abs=1e-6)             # the middle finger did not move
    assert straight["I0"] == pytest.approx(np.arctan2(30, 100), abs=1e-5)  # MCP: wrist->knuckle vs the finger


def test_thumb_block_measures_the_thumb_tip_against_the_fingers():
    hand = flat_hand()
    feats = hand_features(hand, False, ("thumb",))
    _, size = palm_frame(canonical(hand, False))
    assert feats[0] == pytest.approx(np.linalg.norm(hand[4] - hand[5]) / size[0], rel=1e-5)  # thumb tip -> index MCP
    touching = hand.copy()
    touching[4] = touching[8]  # thumb tip on the index tip (an O/F-like contact)
    assert hand_features(touching, False, ("thumb",))[3] == pytest.approx(0.0, abs=1e-6)


def test_augmentation_keeps_the_wrist_and_changes_a_hand_within_bounds():
    p = canonical(np.stack([flat_hand(), flat_hand(60)]), False)
    rng = np.random.default_rng(0)
    same = augment_points(p, rng, rotate_deg=0, roll_deg=0, bone_scale=0, joint_deg=0, jitter_xy=0, jitter_z=0,
                          z_scale=0)
    np.testing.assert_allclose(same, p, atol=1e-9)
    rotated = augment_points(p, rng, bone_scale=0, joint_deg=0, jitter_xy=0, jitter_z=0, z_scale=0)
    np.testing.assert_allclose(hand_features(rotated, False, SHAPE_BLOCKS), hand_features(p, False, SHAPE_BLOCKS),
                               atol=1e-5)  # a rigid rotation: the shape is the same
    many = augment_points(np.repeat(p[:1], 500, 0), rng)
    assert np.all(many[:, 0] == 0)
    change = np.linalg.norm(many - p[:1], axis=-1).max(axis=1) / 250.0  # relative to the hand's length (~250 px)
    assert 0.01 < np.median(change) < 0.35


# ---------------------------------------------------------------------------------------------------- hand mask
@pytest.mark.parametrize("mirror", [False, True])
def test_crop_points_follow_square_crop(mirror):
    frame = np.zeros((480, 640, 3), np.uint8)
    pts = flat_hand()[:, :2] * 0.8 + np.array([10.0, 20.0])
    for i in (4, 8, 20):
        x, y = np.round(pts[i]).astype(int)
        frame[y - 1:y + 2, x - 1:x + 2] = 255
    crop = square_crop(frame, pts, 128, 0.2, mirror)
    uv = crop_points(pts, 128, 0.2, mirror)
    for i in (4, 8, 20):
        u, v = np.round(uv[i]).astype(int)
        assert crop[v - 1:v + 2, u - 1:u + 2].max() > 100, i


def test_mask_keeps_the_hand_and_blacks_out_the_room():
    pts = flat_hand()[:, :2]
    uv = crop_points(pts, 128, 0.2, False)
    crop = np.full((128, 128, 3), 200, np.uint8)
    out = mask_crop(crop, uv)
    for i in (0, 5, 8, 12, 20, 4):  # the wrist, knuckles and fingertips stay
        u, v = np.round(uv[i]).astype(int)
        assert out[v, u].min() >= 190, i
    assert out[2, 2].max() == 0 and out[125, 2].max() == 0  # the corners (room) are black
    between = np.round((uv[8] + uv[4]) / 2 + [0, -15]).astype(int)  # above the gap between index and thumb
    assert out[between[1], between[0]].max() < 100
    mask = hand_mask(uv, 128)
    assert 0.1 < mask.mean() < 0.6


# -------------------------------------------------------------------------------------------- signer data sets
@pytest.mark.data
def test_webcam_landmarks_come_as_right_hands_in_square_pixels(shared_data):
    from stream_app.modes.fingerspell.signers import webcam_landmarks

    shared_data("asl_landmarks")
    letters, points = webcam_landmarks()
    assert points.shape == (1022, 21, 3) and len(set(letters)) == 25 and "Q" not in letters
    b = canonical(points[letters == "B"], False)
    rot, _ = palm_frame(b)
    assert np.median(rot[:, 1, 1]) < -0.8   # fingers up
    assert np.median(b[:, 4, 0] - b[:, 20, 0]) > 0   # thumb on the index side of the pinky: a right hand
    # square pixels: the palm's width / length ratio matches the same ratio on our own (pixel) data's B hands
    ratio = np.median(np.linalg.norm(b[:, 5] - b[:, 17], axis=1) / np.linalg.norm(b[:, 9] - b[:, 0], axis=1))
    assert 0.6 < ratio < 0.95


@pytest.mark.data
@needs_bundle
def test_tiny_digit_photos_are_found_after_padding(shared_data):
    from stream_app.modes.fingerspell.hands import HandFinder
    from stream_app.modes.fingerspell.signers import digit_items
    from stream_app.sources import read_image

    shared_data("sign_language_digits")
    items = digit_items()
    assert len(items) > 800 and {c for _, c in items} == {"O", "V", "W", "F"}
    finder = HandFinder(video=False)
    plain = HandFinder(video=False, retries=False)
    found = found_plain = 0
    sample = items[::20]
    for path, _ in sample:
        image = read_image(path)
        assert image.shape[:2] == (100, 100)
        hands, _, _ = finder.find(image)
        found += bool(hands)
        found_plain += bool(plain.find(image)[0])
        for hand in hands:  # landmarks come back in the 100 px photo's pixels
            assert -20 < hand.points[:, :2].min() and hand.points[:, :2].max() < 120
    finder.close()
    plain.close()
    assert found == len(sample) and found_plain < found  # some need the black border (141 of 822)


@pytest.mark.data
@pytest.mark.slow
def test_leave_one_signer_out_trains_without_the_signer_and_reports_the_worst(shared_data, tmp_path):
    from stream_app.modes.fingerspell.loso import leave_one_signer_out
    from stream_app.modes.fingerspell.train import Recipe

    shared_data("asl_massey")
    shared_data("asl_landmarks")
    recipe = Recipe(landmark_epochs=3, crop=False)
    out = leave_one_signer_out(recipe, signers=("hand4", "webcam"), folds=tmp_path)
    hand4, webcam = out["signers"]["hand4"], out["signers"]["webcam"]
    assert hand4["n"] == 130 and webcam["n"] == 1022 and webcam["hand_found_rate"] is None
    assert 0.3 < hand4["landmarks"] <= 1.0 and hand4["crop"] is None
    summary = out["summary"]["landmarks"]
    assert summary["worst"] == min(hand4["landmarks"], webcam["landmarks"]) and summary["signers"] == 2
    again = leave_one_signer_out(recipe, signers=("hand4", "hand5"), run=(), folds=tmp_path)  # cached fold reused
    assert again["signers"]["hand4"] == hand4 and again["missing"] == ["hand5"]


def test_targets_say_which_were_met():
    from stream_app.modes.fingerspell.evaluate import targets

    out = {"signers": {"summary": {"shipped": {"mean": 0.975, "worst": 0.91}}},
           "digits": {"accuracy": 0.96, "hand_found_rate": 0.85}}
    t = targets(out)
    assert t["signers_mean"] == {"target": 0.97, "value": 0.975, "met": True}
    assert t["signers_worst"]["met"] is False and t["digits_accuracy"]["met"] is True
    assert t["digits_hand_found"]["met"] is False and "roboflow_test_accuracy" not in t
    # a --signers run of train's recipe, when the shipped weights come from another: the recorded run is the target
    out["signers"]["recipe_from"] = "train fingerspell's default recipe"
    out["shipped_loso"] = {"shipped": {"mean": 0.972, "worst": 0.949}}
    assert targets(out)["signers_mean"]["value"] == 0.972 and targets(out)["signers_worst"]["met"] is True


def test_leave_one_signer_out_never_trains_on_the_held_out_signer():
    from stream_app.modes.fingerspell.signers import WEBCAM
    from stream_app.modes.fingerspell.train import Recipe, image_signer, landmark_set, training_mask

    # 2 images of each: Roboflow train/valid/test, Massey hand1..hand3; one Roboflow hand not found
    source = np.array(["rf"] * 6 + ["massey"] * 6)
    split = np.array(["train", "train", "valid", "valid", "test", "test", "hand1", "hand1", "hand2", "hand2",
                      "hand3", "hand3"])
    found = np.ones(12, bool)
    found[1] = False
    # each image's wrist->middle-knuckle length tells which image it is (canonical keeps it)
    points = np.stack([flat_hand() * (1 + i) for i in range(12)])
    data = {"source": source, "split": split, "found": found, "letter": np.array(list("ABCDEFGHIKLM")),
            "points": points, "mirrored": np.zeros(12, bool)}
    webcam = (np.array(["Y", "Y"]), np.stack([flat_hand() * 100, flat_hand() * 100]))
    assert list(image_signer(data)) == ["rf"] * 4 + ["rf:test"] * 2 + list(split[6:])
    for holdout in ("hand1", "hand2", "hand3"):
        m = training_mask(data, holdout)
        assert not m[image_signer(data) == holdout].any()              # the held-out signer: never
        assert not m[4:6].any() and not m[1]                         # Roboflow test, hands not found: never
        assert m.sum() == 12 - 2 - 2 - 1                             # everything else: always
        pts, labels = landmark_set(data, webcam, Recipe(webcam=True), holdout)
        sizes = set(np.round(np.linalg.norm(pts[:, 9], axis=1) / 100).astype(int))  # 1 + image index, 100 webcam
        held = {1 + i for i in np.flatnonzero(image_signer(data) == holdout)}
        assert not sizes & held and 100 in sizes and len(labels) == 7 + 2
    pts, labels = landmark_set(data, webcam, Recipe(webcam=True), WEBCAM)
    assert len(labels) == 9 and 24 not in set(labels)                # the webcam collector held out: no webcam row


@pytest.mark.data
@needs_bundle
def test_evaluate_digits_reads_a_few_real_digit_photos(shared_data, capsys):
    """``evaluate fingerspell --digits`` on 3 photos per letter (O/V/W/F = digits 0/2/6/9) of the real set."""
    import json

    from stream_app.cli import main

    shared_data("sign_language_digits")
    assert main(["evaluate", "fingerspell", "--digits", "--limit", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    digits = out["digits"]
    assert digits["n"] == 12 and digits["hand_found_rate"] == 1.0  # 100 px photos: found after padding
    assert set(digits["per_letter"]) >= {"O", "V", "W", "F"} and digits["per_letter"]["V"]["n"] == 3
    assert digits["accuracy"] >= 0.75                                   # clear handshapes of people not in training
    assert out["targets"]["digits_accuracy"]["target"] == 0.95
    assert out["targets"]["digits_hand_found"] == {"target": 0.9, "value": 1.0, "met": True}


def test_legacy_block_is_the_first_landmark_models_input():
    """Weights whose fusion.json names no feature blocks (the first landmark model) are read with its own input."""
    from stream_app.modes.fingerspell.hands import landmark_features

    hand = rotate(flat_hand(50), 10, 20, 30)
    for mirror in (False, True):
        np.testing.assert_allclose(hand_features(hand, mirror, ("legacy",)), landmark_features(hand, mirror),
                                   atol=1e-6)
