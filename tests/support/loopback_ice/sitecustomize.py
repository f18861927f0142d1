"""TEST ONLY: make aioice (aiortc's ICE) use the loopback interface, and only it.

aioice never offers 127.0.0.1 as a host candidate, so on a machine whose only interface is loopback no WebRTC frame
flows. The browser test starts the real app with this folder on ``PYTHONPATH`` and ``STREAM_APP_TEST_LOOPBACK_ICE=1``;
Python imports this ``sitecustomize`` at start-up and patches aioice so that

* host-candidate gathering returns exactly ``127.0.0.1`` (the app's side offers loopback only), and
* remote candidates other than 127.0.0.1 (the browser's other interfaces) are ignored,

so every ICE check and every media packet of the test stays on 127.0.0.1. The app itself is never changed by this.
"""

import os

if os.environ.get("STREAM_APP_TEST_LOOPBACK_ICE") == "1":
    try:
        import aioice.ice as _ice
    except ImportError:  # pragma: no cover - aioice is a dependency of the app
        _ice = None

    if _ice is not None:
        def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return ["127.0.0.1"] if use_ipv4 else []

        _ice.get_host_addresses = _loopback_host_addresses
        _add_remote_candidate = _ice.Connection.add_remote_candidate

        async def _add_loopback_remote_candidate(self, remote_candidate):
            if remote_candidate is not None and remote_candidate.host != "127.0.0.1":
                return None
            return await _add_remote_candidate(self, remote_candidate)

        _ice.Connection.add_remote_candidate = _add_loopback_remote_candidate
        import sys

        print("[loopback_ice] aioice patched: host candidates = 127.0.0.1 only", file=sys.stderr, flush=True)
