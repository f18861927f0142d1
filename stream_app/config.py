"""Paths and settings, each overridable by an environment variable so nothing is hard-wired to one machine."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = Path(os.environ.get("STREAM_APP_MODELS", ROOT / "models"))
# Registry-shipped pretrained files (scripts/fetch_models.py puts them here; never committed).
VENDOR_DIR = Path(os.environ.get("STREAM_APP_VENDOR", MODELS_DIR / "vendor"))
ASSETS_DIR = ROOT / "assets"


def data_dir() -> Path:
    """The shared, read-only data sets (``STREAM_APP_DATA``, default ``../shared/data`` next to the project), as an
    absolute path (a relative setting is relative to the current directory), so paths made from it stay valid when
    written elsewhere, e.g. into a JSON report or as a symlink target."""
    return Path(os.environ.get("STREAM_APP_DATA", ROOT.parent / "shared" / "data")).expanduser().absolute()


def ice_servers() -> list[dict]:
    """ICE servers for WebRTC, from ``STREAM_APP_ICE_SERVERS`` (JSON list). None by default: localhost needs none,
    and streamlit-webrtc's fallback public STUN server is unreachable offline."""
    import json

    raw = os.environ.get("STREAM_APP_ICE_SERVERS", "").strip()
    if not raw:
        return []
    servers = json.loads(raw)
    if not isinstance(servers, list):
        raise ValueError("STREAM_APP_ICE_SERVERS must be a JSON list such as [{\"urls\": [\"stun:host:3478\"]}]")
    return servers


DEFAULT_MAX_LIVE_SESSIONS = 3


def max_live_sessions() -> int:
    """How many live streams one server runs at once (``STREAM_APP_MAX_LIVE_SESSIONS``; 0 = no cap); one more is
    refused with a message. Default 3; on 2 cores shared with the browsers even two streams fall behind (README,
    "Live sessions"), so a small server may want 1."""
    raw = os.environ.get("STREAM_APP_MAX_LIVE_SESSIONS", "").strip()
    if not raw:
        return DEFAULT_MAX_LIVE_SESSIONS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"STREAM_APP_MAX_LIVE_SESSIONS must be a whole number (0 = no cap), got {raw!r}") from None
    return max(0, value)
