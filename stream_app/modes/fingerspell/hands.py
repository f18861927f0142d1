"""Hand finding with MediaPipe Tasks ``HandLandmarker``, the square hand crop, and the landmark features.

Why MediaPipe Tasks: it is the maintained hand detector + 21-landmark model and works fully offline from the
``hand_landmarker.task`` bundle in ``config.VENDOR_DIR`` (see ``../shared/design.md``; mediapipe >= 0.10.30 has no
``solutions`` API, hence Tasks). The bundle holds the FULL palm detector and landmark model: tracking one hand costs
~17 ms a 640x480 frame on 2 cores, on ONE of them: on Linux MediaPipe runs its models with a single XNNPACK thread,
and the Python Tasks API has no option to change that (the landmark model alone: 14.1 ms on one thread, 9.1 ms on
two, in LiteRT). The lite landmark model of the same wheel tracks in ~10.7 ms, but classifiers retrained on its crops
scored 0.884 on the Roboflow test split against 0.926 (valid 0.944 against 0.965; see
``models/fingerspell/MODEL_CARD.md``), so the full one stays.

- Streams (``timestamp_s`` given) use VIDEO mode: MediaPipe tracks the hand between frames, timestamps (ms) must
  strictly increase, so each processor owns its own landmarkers. MediaPipe skips its palm detector only while it
  tracks as many hands as it was asked for, so a two-hand landmarker pays the detector (~35 ms) on every frame with
  one hand in view. Streams therefore track ONE hand (~17 ms) and, every ``census_every`` frames, also run a
  two-hand landmarker; when that sees several hands, it serves every frame until it has seen one hand or none for
  ``census_every`` frames in a row.
- Stills (``timestamp_s is None``) use IMAGE mode with retries when nothing is found: the image padded with a black
  border (hands filling the frame or cut out on black, as in the Massey set, defeat the palm detector otherwise),
  padded by edge replication, a larger copy for big images, and the mirrored image. The 100 px photos of the digits
  set need no more: 677 of its 822 O/V/W/F photos are found as they are, 141 more padded with black, 4 padded by
  replication (an upscaled copy was tried as a further retry and never needed).
- Inference runs on a copy whose longer side is at most ``max_side``; landmarks come back in ORIGINAL pixels.
- Handedness: one classifier serves both hands. Hands that MediaPipe Tasks labels ``MIRROR_LABEL`` are mirrored
  (crop and landmarks) so that every hand reaches the classifiers as the same chirality. The label of a mirrored
  hand is unchanged: a letter signed with the left hand is the mirror image of the same letter signed with the right.
  (The Tasks labels are flipped relative to the legacy ``solutions.Hands`` API, which assumed a mirrored selfie
  image; in the unflipped Roboflow valid and test photos 83-84% of the hands get the label "Right" (hand-finder cache),
  so "Left" is the one that is mirrored.)
- Several hands: the signing hand is the LARGEST one (landmark box area; the dominant hand is held up, towards the
  camera); a near-tie (< 15% larger) goes to the hand nearer the frame centre. The result carries a warning. A
  stream notices a second hand within ``census_every`` frames (half a second at 30 fps).
"""

from __future__ import annotations

import atexit
import functools
import math
import weakref
from dataclasses import dataclass

import cv2
import numpy as np

from stream_app.config import VENDOR_DIR

MIRROR_LABEL = "Left"
BUNDLE_NAME = "hand_landmarker.task"
# Landmark indices (MediaPipe hand model).
WRIST, THUMB_TIP, INDEX_TIP, MIDDLE_MCP, PINKY_TIP = 0, 4, 8, 9, 20


_OPEN_FINDERS: "weakref.WeakSet[HandFinder]" = weakref.WeakSet()


@atexit.register
def _close_open_finders() -> None:
    """Close landmarkers still open at exit (MediaPipe's own finaliser fails during interpreter shutdown)."""
    for finder in list(_OPEN_FINDERS):
        finder.close()


class HandModelMissing(FileNotFoundError):
    """The MediaPipe bundle is not in VENDOR_DIR (run scripts/fetch_models.py)."""


@functools.lru_cache(maxsize=1)
def bundle_bytes() -> bytes:
    path = VENDOR_DIR / BUNDLE_NAME
    if not path.is_file():
        raise HandModelMissing(f"{path} not found: run `python scripts/fetch_models.py` to fetch the MediaPipe bundle")
    return path.read_bytes()


@dataclass
class Hand:
    """One hand: ``points`` (21, 3) float32 in ORIGINAL frame pixels (x, y; z on the x scale, wrist-relative as
    MediaPipe gives it), ``world`` (21, 3) metres, ``label`` "Left"/"Right" as MediaPipe Tasks says, ``score``."""

    points: np.ndarray
    world: np.ndarray
    label: str
    score: float

    @property
    def mirrored(self) -> bool:
        return self.label == MIRROR_LABEL

    @property
    def box(self) -> tuple[float, float, float, float]:
        xy = self.points[:, :2]
        return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(1.0, (x2 - x1)) * max(1.0, (y2 - y1))

    @property
    def size(self) -> float:
        """A scale for motion: the longer side of the landmark box (pixels)."""
        x1, y1, x2, y2 = self.box
        return max(1.0, x2 - x1, y2 - y1)


def choose_signing_hand(hands: list[Hand], width: int, height: int) -> Hand | None:
    """The largest hand; if the two largest are within 15% in area, the one nearer the frame centre."""
    if not hands:
        return None
    ranked = sorted(hands, key=lambda h: -h.area)
    if len(ranked) > 1 and ranked[1].area * 1.15 >= ranked[0].area:
        def dist(h: Hand) -> float:
            x1, y1, x2, y2 = h.box
            return math.hypot((x1 + x2) / 2 - width / 2, (y1 + y2) / 2 - height / 2)
        return min(ranked[:2], key=dist)
    return ranked[0]


class HandFinder:
    """MediaPipe ``HandLandmarker`` for one stream (``video=True``) or for stills (``video=False``).

    ``find(frame, timestamp_s)`` returns the hands in ORIGINAL pixels. Not thread-safe: one per processor.
    """

    def __init__(self, video: bool, max_side: int = 640, num_hands: int = 2, min_confidence: float = 0.4,
                 retries: bool = True, census_every: int = 15) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        self.video = video
        self.max_side = int(max_side)
        self.retries = retries
        self.census_every = max(1, int(census_every))

        def landmarker(hands: int):
            options = vision.HandLandmarkerOptions(
                base_options=BaseOptions(model_asset_buffer=bundle_bytes()),
                running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
                num_hands=hands, min_hand_detection_confidence=min_confidence,
                min_hand_presence_confidence=min_confidence, min_tracking_confidence=min_confidence)
            return vision.HandLandmarker.create_from_options(options)

        # Stills: one landmarker for all hands. Streams: a one-hand tracker plus the several-hands landmarker.
        self._landmarker = landmarker(1 if video else num_hands)
        self._multi = landmarker(num_hands) if video and num_hands > 1 else None
        self._frames = 0
        self._several = False      # the several-hands landmarker serves every frame
        self._quiet_frames = 0     # frames in a row with fewer than two hands, while it does
        self._last_ms = -1
        _OPEN_FINDERS.add(self)

    def close(self) -> None:
        for name in ("_landmarker", "_multi"):
            landmarker = getattr(self, name, None)
            if landmarker is not None:
                landmarker.close()
                setattr(self, name, None)

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def _run(self, image: np.ndarray, timestamp_ms: int | None, landmarker=None):
        import mediapipe as mp

        landmarker = landmarker or self._landmarker
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        if self.video:
            return landmarker.detect_for_video(mp_image, timestamp_ms)
        return landmarker.detect(mp_image)

    def _track(self, small: np.ndarray, ms: int, scale: float) -> list[Hand]:
        """One stream frame: the one-hand tracker, or the several-hands landmarker (see the module docstring)."""
        h, w = small.shape[:2]
        self._frames += 1
        census = self._multi is not None and (self._several or self._frames % self.census_every == 0)
        if census:
            hands = self._hands_from(self._run(small, ms, self._multi), w, h, scale=scale)
            if len(hands) > 1:
                self._several, self._quiet_frames = True, 0
                return hands
            self._quiet_frames += 1
            if self._several and self._quiet_frames < self.census_every:
                return hands
            self._several = False
        return self._hands_from(self._run(small, ms), w, h, scale=scale)

    @staticmethod
    def _hands_from(result, width: int, height: int, *, offset=(0.0, 0.0), scale: float = 1.0,
                    flipped: bool = False) -> list[Hand]:
        """MediaPipe result on an image of ``width`` x ``height`` -> hands in the coordinates of the original frame,
        where image = flip?(original * scale + offset)."""
        hands = []
        for i, lms in enumerate(result.hand_landmarks):
            pts = np.array([[p.x * width, p.y * height, p.z * width] for p in lms], dtype=np.float32)
            cat = result.handedness[i][0] if result.handedness and i < len(result.handedness) else None
            label = cat.category_name if cat is not None else "Right"
            if flipped:
                pts[:, 0] = width - pts[:, 0]
                label = "Left" if label == "Right" else "Right"
            pts[:, 0] -= offset[0]
            pts[:, 1] -= offset[1]
            pts /= np.float32(scale)
            world = (np.array([[p.x, p.y, p.z] for p in result.hand_world_landmarks[i]], dtype=np.float32)
                     if result.hand_world_landmarks and i < len(result.hand_world_landmarks)
                     else np.zeros((21, 3), np.float32))
            hands.append(Hand(pts, world, label, float(cat.score) if cat is not None else 0.0))
        return hands

    def find(self, frame: np.ndarray, timestamp_s: float | None = None) -> tuple[list[Hand], np.ndarray, float]:
        """Hands in ORIGINAL pixels, plus the downscaled copy inferred on and its scale (small / original)."""
        from stream_app.frames import fit_within

        small, scale = fit_within(frame, self.max_side)
        h, w = small.shape[:2]
        if self.video:
            ms = 0 if timestamp_s is None else int(round(timestamp_s * 1000.0))
            ms = max(ms, self._last_ms + 1)  # MediaPipe requires strictly increasing timestamps
            self._last_ms = ms
            return self._track(small, ms, scale), small, scale
        hands = self._hands_from(self._run(small, None), w, h, scale=scale)
        if hands or not self.retries:
            return hands, small, scale
        for attempt in self._retry_images(frame, small, scale):
            image, offset, s, flipped = attempt
            ih, iw = image.shape[:2]
            hands = self._hands_from(self._run(image, None), iw, ih, offset=offset, scale=s, flipped=flipped)
            if hands:
                break
        return hands, small, scale

    def _retry_images(self, frame: np.ndarray, small: np.ndarray, scale: float):
        """Alternative views for a still where nothing was found: (image, offset, scale, flipped)."""
        h, w = small.shape[:2]
        pad = max(h, w) // 3
        yield cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0), (pad, pad), scale, False
        yield cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE), (pad, pad), scale, False
        if scale < 1.0:  # a bigger copy of a big image, for small hands
            from stream_app.frames import fit_within

            big, big_scale = fit_within(frame, self.max_side * 2)
            yield big, (0, 0), big_scale, False
        yield np.ascontiguousarray(small[:, ::-1]), (0, 0), scale, True


def square_crop(frame: np.ndarray, points_xy: np.ndarray, size: int, margin: float, mirror: bool) -> np.ndarray:
    """A ``size`` x ``size`` crop centred on the landmark box, side = longer box side * (1 + 2 * margin), mirrored
    left-right when ``mirror``; parts outside the frame are filled by edge replication. ``points_xy`` in ``frame``
    pixels."""
    x1, y1 = points_xy.min(axis=0)
    x2, y2 = points_xy.max(axis=0)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    side = max(8.0, float(max(x2 - x1, y2 - y1)) * (1.0 + 2.0 * margin))
    k = side / size
    # output pixel (u, v) -> source (x, y); pixel centres at +0.5
    if mirror:
        m = np.array([[-k, 0.0, cx + side / 2 - 0.5 * k - 0.5], [0.0, k, cy - side / 2 + 0.5 * k - 0.5]])
    else:
        m = np.array([[k, 0.0, cx - side / 2 + 0.5 * k - 0.5], [0.0, k, cy - side / 2 + 0.5 * k - 0.5]])
    src = frame
    if k > 2.0:  # shrink first so the linear warp does not alias
        f = 1.5 / k
        src = cv2.resize(frame, (max(2, round(frame.shape[1] * f)), max(2, round(frame.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
        m = m * f
    return cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def landmark_features(points: np.ndarray, mirror: bool) -> np.ndarray:
    """(21, 3) pixel landmarks -> 63 features: wrist-relative, mirrored to the right hand, divided by the largest
    wrist-to-landmark distance in the image plane. Orientation is kept on purpose (G/H, P/Q/K differ by it)."""
    p = np.asarray(points, dtype=np.float32).reshape(-1, 21, 3)
    p = p - p[:, :1]
    if mirror:
        p = p * np.array([-1.0, 1.0, 1.0], np.float32)
    scale = np.linalg.norm(p[:, :, :2], axis=2).max(axis=1).reshape(-1, 1, 1)
    p = p / np.maximum(scale, 1e-6)
    out = p.reshape(-1, 63)
    return out[0] if np.asarray(points).ndim == 2 else out
