"""Regenerate the own-made sample video ``assets/sample_shapes.mp4`` (5 s, 640x480, 30 fps, H.264).

    .venv/bin/python scripts/make_sample_video.py [--out PATH] [--seconds S]

Moving shapes on a textured background from :func:`stream_app.synthetic.moving_shapes` (deterministic, seed 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream_app.config import ASSETS_DIR  # noqa: E402
from stream_app.synthetic import moving_shapes, write_video  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / "sample_shapes.mp4")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    fps = 30
    path = write_video(args.out, moving_shapes(int(args.seconds * fps), 640, 480, seed=0), fps=fps)
    print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
