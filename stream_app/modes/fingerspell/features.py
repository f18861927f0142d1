"""Signer-independent landmark features and 3D landmark augmentation.

The 21 MediaPipe landmarks of one hand, ``(21, 3)`` or batched ``(N, 21, 3)``, in PIXELS of the frame (x right,
y down; z is MediaPipe's wrist-relative depth on the x scale, so the three axes share one unit and a rotation in 3D
is a rotation). Left hands are mirrored to right hands first (x negated), as everywhere in fingerspelling.

Features (:func:`hand_features`), each block independent of where the hand is in the frame and of its size:
- ``palm``: the 21 points in a PALM FRAME: origin at the wrist, ``y`` from the wrist to the middle of the index and
  pinky knuckles (MCPs), ``z`` the palm normal (cross product of wrist->index MCP and wrist->pinky MCP), ``x`` the
  third axis; divided by the palm size (mean wrist->MCP and index->pinky MCP distance, a rigid part of the hand, so
  a fist and an open hand share one scale). The shape of the hand whatever its rotation: 63 values.
- ``orient``: the palm frame's three axes in CAMERA coordinates (a rotation matrix, 9 values). Letters that differ by
  orientation only (G/H, K/P, U/H, I/J, the Q/G pair) are told apart here; the shape blocks cannot.
- ``bones``: the 20 bone directions (unit vectors) in the palm frame: 60 values.
- ``angles``: flexion at the 15 finger joints and the 4 spreads between neighbouring fingers (radians): 19 values.
- ``thumb``: distances (palm units) from the thumb tip and the thumb IP joint to every joint of the four fingers,
  plus the 6 fingertip-to-fingertip distances: what separates A/E/M/N/S/T (where the thumb sits) and U/V/R: 38 values.
- ``camera`` (wrist-relative points / palm size) and ``legacy`` (wrist-relative points / the largest in-plane wrist
  distance: the first landmark model's input, read when ``fusion.json`` names no blocks): 63 values each.

:func:`augment_points` changes the raw points in 3D as a different signer or camera would: a small 3D rotation of the
whole hand, per-finger bone lengths, joint angles, and landmark jitter at the level MediaPipe shows on a still hand.

Ideas taken from published work (see ``models/fingerspell/MODEL_CARD.md``): joint distances and angles (Shin et al.,
Sensors 2021); 3D landmarks with the aspect ratio undone and rotations in 3D (the 5th-place solution of Kaggle's
"ASL Fingerspelling" 2023); the palm frame and the orientation block are this project's.
"""

from __future__ import annotations

import numpy as np

WRIST = 0
INDEX_MCP, MIDDLE_MCP, RING_MCP, PINKY_MCP = 5, 9, 13, 17
THUMB_IP, THUMB_TIP = 3, 4
FINGER_TIPS = (8, 12, 16, 20)
# Parent of each landmark along its finger (the wrist is the root; every parent has a smaller index).
PARENT = np.array([-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19])
CHAINS = ((0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (0, 9, 10, 11, 12), (0, 13, 14, 15, 16), (0, 17, 18, 19, 20))
FINGER_JOINTS = tuple(range(5, 21))
BLOCKS = ("palm", "orient", "bones", "angles", "thumb")
BLOCK_SIZES = {"palm": 63, "orient": 9, "bones": 60, "angles": 19, "thumb": 38, "camera": 63, "legacy": 63}
DEFAULT_BLOCKS = BLOCKS


def n_features(blocks: tuple[str, ...] = DEFAULT_BLOCKS) -> int:
    return sum(BLOCK_SIZES[b] for b in blocks)


def _unit(v: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def canonical(points: np.ndarray, mirror) -> np.ndarray:
    """(N, 21, 3) wrist-relative points mirrored to the right hand (``mirror``: bool or (N,) bools)."""
    p = np.asarray(points, np.float64).reshape(-1, 21, 3)
    p = p - p[:, :1]
    m = np.broadcast_to(np.asarray(mirror, bool), (p.shape[0],))
    p[m, :, 0] *= -1.0
    return p


def palm_frame(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (N, 3, 3) whose COLUMNS are the palm axes x, y, z in camera coordinates, and the palm size (N,).
    ``p``: canonical (N, 21, 3) points."""
    index, pinky, middle = p[:, INDEX_MCP], p[:, PINKY_MCP], p[:, MIDDLE_MCP]
    y = _unit((index + pinky) / 2 - p[:, WRIST])
    z = _unit(np.cross(index - p[:, WRIST], pinky - p[:, WRIST]))
    x = _unit(np.cross(y, z))
    z = np.cross(x, y)
    rot = np.stack([x, y, z], axis=-1)
    size = (np.linalg.norm(index, axis=-1) + np.linalg.norm(middle, axis=-1) + np.linalg.norm(pinky, axis=-1)
            + np.linalg.norm(p[:, RING_MCP], axis=-1) + np.linalg.norm(index - pinky, axis=-1)) / 5
    return rot, np.maximum(size, 1e-6)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between vectors (radians), stable near 0 and pi."""
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


def hand_features(points: np.ndarray, mirror, blocks: tuple[str, ...] = DEFAULT_BLOCKS) -> np.ndarray:
    """(21, 3) -> (F,) or (N, 21, 3) -> (N, F) float32 features; see the module docstring for the blocks."""
    single = np.asarray(points).ndim == 2
    p = canonical(points, mirror)
    rot, size = palm_frame(p)
    local = np.einsum("nij,nkj->nki", rot.transpose(0, 2, 1), p) / size[:, None, None]  # R^T p / size
    out = []
    for block in blocks:
        if block == "palm":
            out.append(local.reshape(-1, 63))
        elif block == "camera":
            out.append((p / size[:, None, None]).reshape(-1, 63))
        elif block == "legacy":  # the first landmark model's input: divided by the largest in-plane wrist distance
            out.append((p / np.maximum(np.linalg.norm(p[:, :, :2], axis=2).max(axis=1), 1e-6)[:, None, None])
                       .reshape(-1, 63))
        elif block == "orient":
            out.append(rot.reshape(-1, 9))
        elif block == "bones":
            bones = local[:, 1:] - local[:, PARENT[1:]]
            out.append(_unit(bones).reshape(-1, 60))
        elif block == "angles":
            bones = local[:, 1:] - local[:, PARENT[1:]]  # bone i-1 ends at landmark i
            flex = []
            for chain in CHAINS:
                for a, b in zip(chain[1:-1], chain[2:]):  # joint a: between the bone ending at a and the next
                    flex.append(_angle(bones[:, a - 1], bones[:, b - 1]))
            spread = [_angle(bones[:, 2 - 1] * [1, 1, 0], bones[:, 6 - 1] * [1, 1, 0])]  # thumb vs index, in-plane
            for f1, f2 in ((6, 10), (10, 14), (14, 18)):  # proximal bones of neighbouring fingers, in the palm plane
                spread.append(_angle(bones[:, f1 - 1] * [1, 1, 0], bones[:, f2 - 1] * [1, 1, 0]))
            out.append(np.stack(flex + spread, axis=-1))
        elif block == "thumb":
            d = [np.linalg.norm(local[:, list(FINGER_JOINTS)] - local[:, [j]], axis=-1) for j in (THUMB_TIP, THUMB_IP)]
            tips = [np.linalg.norm(local[:, a] - local[:, b], axis=-1)
                    for i, a in enumerate(FINGER_TIPS) for b in FINGER_TIPS[i + 1:]]
            out.append(np.concatenate(d + [np.stack(tips, axis=-1)], axis=-1))
        else:
            raise ValueError(f"unknown feature block {block!r} (known: {', '.join(BLOCK_SIZES)})")
    feats = np.concatenate(out, axis=-1).astype(np.float32)
    return feats[0] if single else feats


# ------------------------------------------------------------------------------------------------ augmentation
def _rotations(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) rotation vectors (radians) -> (..., 3, 3) matrices."""
    theta = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    k = rotvec / np.maximum(theta, 1e-12)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    kmat = np.stack([np.stack([zero, -kz, ky], -1), np.stack([kz, zero, -kx], -1), np.stack([-ky, kx, zero], -1)], -2)
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), kmat.shape)
    return eye + s * kmat + (1 - c) * (kmat @ kmat)


def augment_points(p: np.ndarray, rng: np.random.Generator, *, rotate_deg: float = 15.0, roll_deg: float = 15.0,
                   bone_scale: float = 0.08, joint_deg: float = 5.0, jitter_xy: float = 0.012,
                   jitter_z: float = 0.03, z_scale: float = 0.2) -> np.ndarray:
    """Canonical (N, 21, 3) points -> the same hands as another signer and camera might give them.

    - bone lengths: each finger's bones scaled by one factor per finger (+-``bone_scale``) and a little per bone;
    - joint angles: each finger joint bent by a random rotation (sigma ``joint_deg``) that carries the rest of the
      finger with it;
    - the whole hand rotated in 3D: about the camera's x and y axes (+-``rotate_deg``) and its viewing axis
      (+-``roll_deg``): orientation letters stay apart because real signers vary by more than this in no letter;
    - MediaPipe's depth scale varies: z scaled by 1 +- ``z_scale``;
    - jitter: Gaussian noise per landmark, sigma ``jitter_xy`` / ``jitter_z`` of the hand's longest wrist distance.
    """
    p = np.array(p, np.float64, copy=True)
    n = p.shape[0]
    bones = p[:, 1:] - p[:, PARENT[1:]]  # bone b ends at landmark b + 1
    finger_of = np.array([c for c, chain in enumerate(CHAINS) for _ in chain[1:]])  # bone -> finger
    scale = 1 + rng.uniform(-bone_scale, bone_scale, (n, 5))[:, finger_of] + rng.normal(0, bone_scale / 3, (n, 20))
    bones = bones * scale[..., None]
    if joint_deg > 0:
        for chain in CHAINS:
            acc = np.broadcast_to(np.eye(3), (n, 3, 3))
            for j in chain[2:]:  # the bone ending at j turns at its proximal joint, and so does the rest
                acc = acc @ _rotations(rng.normal(0, np.radians(joint_deg), (n, 3)))
                bones[:, j - 1] = np.einsum("nij,nj->ni", acc, bones[:, j - 1])
    q = np.zeros_like(p)
    for i in range(1, 21):
        q[:, i] = q[:, PARENT[i]] + bones[:, i - 1]
    rv = np.stack([rng.uniform(-1, 1, n) * np.radians(rotate_deg), rng.uniform(-1, 1, n) * np.radians(rotate_deg),
                   rng.uniform(-1, 1, n) * np.radians(roll_deg)], axis=-1)
    q = np.einsum("nij,nkj->nki", _rotations(rv), q)
    q[..., 2] *= 1 + rng.uniform(-z_scale, z_scale, (n, 1))
    reach = np.linalg.norm(q[..., :2], axis=-1).max(axis=1)[:, None]
    q[..., :2] += rng.normal(0, 1, (n, 21, 2)) * jitter_xy * reach[..., None]
    q[..., 2] += rng.normal(0, 1, (n, 21)) * jitter_z * reach
    return q - q[:, :1]
