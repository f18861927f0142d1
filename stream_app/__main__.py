"""``python -m stream_app`` (the same as the ``stream-app`` command)."""

from stream_app.cli import main

if __name__ == "__main__":  # guarded: worker processes spawned by `batch` import this module again
    raise SystemExit(main())
