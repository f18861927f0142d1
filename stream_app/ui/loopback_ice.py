"""Loopback ICE host candidates when the server is bound to a loopback address, so that a browser on the same machine
connects even when ``lo`` is the machine's only interface (a clinic PC or a laptop with Wi-Fi off).

Why an adapter: aiortc's ICE agent, aioice, gathers its host candidates in ``aioice.ice.get_host_addresses``, which
lists every interface's addresses *except* 127.0.0.1 and ::1 (RFC 8445 section 5.1.1.1 says loopback addresses must
not be candidates). With no other interface the server offers no candidate at all and no frame ever flows; no STUN or
TURN setting can help, there is no network to reach. aioice has no option for it (aiortc/aioice issue 2 asks for one).

The hook (aioice 0.13.0, ``constraints.txt``): ``Connection.gather_candidates`` calls the module-level function
``aioice.ice.get_host_addresses(use_ipv4, use_ipv6) -> list[str]`` by its global name. :func:`install` wraps that one
function: the original addresses are kept and the loopback address is appended, so nothing that worked before stops
working and a local browser always has a pair that stays on the machine. It is installed only when the server is bound
to a loopback address (``./run.sh`` binds 127.0.0.1): then every browser that can load the page runs on this machine,
so a loopback candidate is reachable by all of them and reveals nothing. A server bound to another address is left
exactly as aioice made it.

``tests/test_loopback_ice.py`` checks that the hook is still where this module expects it (a real aioice
``Connection`` gathers a 127.0.0.1 candidate after :func:`install`), so an aioice upgrade that moves it fails a test
instead of silently breaking offline use; the browser tests run without any test-only patch and, where the machine
allows it, inside a network namespace whose only interface is ``lo``.
"""

from __future__ import annotations

import functools
import ipaddress
import logging

log = logging.getLogger(__name__)

TESTED_AIOICE = "0.13.0"
_MARK = "_stream_app_loopback"


def is_loopback(address: str | None) -> bool:
    """``True`` for 127.0.0.0/8, ::1 and ``localhost``; ``False`` for empty/None (Streamlit then listens on every
    interface) and for any other address or name."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_addresses(bind_address: str, use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """The loopback addresses to offer for a server bound to ``bind_address``: 127.0.0.1 (or the bound 127.x
    address) for IPv4, ::1 for IPv6 when the server is bound to ::1 or ``localhost``."""
    name = bind_address.strip().strip("[]").lower()
    out = []
    if use_ipv4:
        out.append(name if name not in ("localhost", "::1") else "127.0.0.1")
    if use_ipv6 and name in ("localhost", "::1"):
        out.append("::1")
    return out


def install(bind_address: str | None) -> bool:
    """Make aioice offer loopback host candidates if ``bind_address`` is a loopback address; idempotent (Streamlit
    runs the app script on every rerun). Returns whether the adapter is in place afterwards."""
    if not is_loopback(bind_address):
        return False
    try:
        import aioice
        import aioice.ice as ice
    except ImportError:  # pragma: no cover - aioice comes with aiortc, a dependency of the app
        return False
    original = getattr(ice, "get_host_addresses", None)
    if original is None:
        log.warning("aioice %s has no ice.get_host_addresses (tested with %s): loopback candidates not added; a "
                    "machine without a network interface cannot stream", getattr(aioice, "__version__", "?"),
                    TESTED_AIOICE)
        return False
    if getattr(original, _MARK, None) == bind_address:
        return True
    original = getattr(original, "__wrapped__", original) if getattr(original, _MARK, None) else original

    @functools.wraps(original)
    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(original(use_ipv4=use_ipv4, use_ipv6=use_ipv6))
        return addresses + [a for a in loopback_addresses(bind_address, use_ipv4, use_ipv6) if a not in addresses]

    setattr(get_host_addresses, _MARK, bind_address)
    ice.get_host_addresses = get_host_addresses
    log.info("aioice: loopback host candidates added (server bound to %s)", bind_address)
    return True


def uninstall() -> None:
    """Put aioice's own function back (tests)."""
    import aioice.ice as ice

    current = ice.get_host_addresses
    if getattr(current, _MARK, None):
        ice.get_host_addresses = current.__wrapped__
