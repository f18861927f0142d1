"""Regenerate the own-made sample video ``assets/sample_shapes.mp4`` (5 s, 640x480, 30 fps, H.264).

    .venv/bin/python scripts/make_sample_video.py [--out PATH] [--seconds S] [--seed N]

Moving shapes on a textured background from :func:`stream_app.synthetic.moving_shapes` (deterministic; the shipped
sample is seed 0; other seeds give other backgrounds, e.g. a set of videos for ``batch``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stream_app.config import ASSETS_DIR
from stream_app.synthetic import moving_shapes, write_video


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / "sample_shapes.mp4")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fps = 30
    path = write_video(args.out, moving_shapes(int(args.seconds * fps), 640, 480, seed=args.seed), fps=fps)
    print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
