"""The app's loopback ICE adapter (:mod:`stream_app.ui.loopback_ice`): the aioice hook it wraps is still there, and on a
machine whose only interface is ``lo`` two real aioice agents connect with it and cannot without it.

The browser tests (``tests/test_browser.py``) prove the whole path with the real app and Chromium; these tests pin
the hook itself, so an aioice upgrade that moves it fails here with a precise message."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from stream_app.ui import loopback_ice


@pytest.fixture
def adapter():
    yield loopback_ice
    loopback_ice.uninstall()


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True), ("LOCALHOST", True),
    ("0.0.0.0", False), ("", False), (None, False), ("192.168.1.5", False), ("::", False), ("example.org", False),
])
def test_is_loopback(address, expected):
    assert loopback_ice.is_loopback(address) is expected


def test_the_aioice_hook_is_where_the_adapter_expects_it():
    """``Connection.gather_candidates`` looks up the module-level ``get_host_addresses(use_ipv4, use_ipv6)`` by name
    (aioice 0.13.0); if a new aioice moves it, the adapter would silently do nothing."""
    import aioice
    import aioice.ice as ice

    assert list(inspect.signature(ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"], aioice.__version__
    assert "get_host_addresses" in ice.Connection.gather_candidates.__code__.co_names, aioice.__version__


def test_install_only_for_a_loopback_bind_and_only_once(adapter):
    import aioice.ice as ice

    own = ice.get_host_addresses
    for address in ("0.0.0.0", "", None, "10.1.2.3"):
        assert adapter.install(address) is False
        assert ice.get_host_addresses is own
    assert adapter.install("127.0.0.1") is True
    wrapped = ice.get_host_addresses
    assert adapter.install("127.0.0.1") is True  # Streamlit re-runs the app script: no second wrapper
    assert ice.get_host_addresses is wrapped and wrapped.__wrapped__ is own
    assert wrapped(use_ipv4=True, use_ipv6=False)[-1] == "127.0.0.1"
    assert "127.0.0.1" not in wrapped(use_ipv4=False, use_ipv6=True)
    assert adapter.install("::1") is True  # a new bind address replaces the wrapper, it does not stack
    assert ice.get_host_addresses.__wrapped__ is own
    assert ice.get_host_addresses(use_ipv4=True, use_ipv6=True)[-2:] == ["127.0.0.1", "::1"]
    adapter.uninstall()
    assert ice.get_host_addresses is own


async def _connect_pair(timeout: float = 10.0) -> tuple[list[str], bytes | None]:
    """Two real aioice agents in this process: gather, exchange candidates, connect, send one datagram."""
    import aioice

    a, b = aioice.Connection(ice_controlling=True), aioice.Connection(ice_controlling=False)
    try:
        await asyncio.gather(a.gather_candidates(), b.gather_candidates())
        hosts = [c.host for c in a.local_candidates]
        for x, y in ((a, b), (b, a)):
            for candidate in y.local_candidates:
                await x.add_remote_candidate(candidate)
            await x.add_remote_candidate(None)
            x.remote_username, x.remote_password = y.local_username, y.local_password
        try:
            await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), timeout)
        except (ConnectionError, asyncio.TimeoutError):
            return hosts, None
        await a.send(b"frame")
        return hosts, await asyncio.wait_for(b.recv(), timeout)
    finally:
        await asyncio.gather(a.close(), b.close())


@pytest.mark.slow
def test_agents_connect_on_a_loopback_only_machine_with_the_adapter_only(loopback_only_network, adapter):
    if loopback_only_network is not None:
        pytest.skip(f"no loopback-only network namespace on this machine: {loopback_only_network}")
    hosts, received = asyncio.run(_connect_pair())
    assert hosts == [] and received is None, "aioice alone gathers no candidate where lo is the only interface"
    adapter.install("127.0.0.1")
    hosts, received = asyncio.run(_connect_pair())
    assert hosts == ["127.0.0.1"] and received == b"frame"


def test_no_connection_help_names_what_fits_the_bind_address():
    from stream_app.ui.panel import no_connection_lines

    local = "\n".join(no_connection_lines(9.2, "127.0.0.1", ice_servers=False, camera=True))
    assert local.startswith("No video after 9 s") and "camera" in local
    assert "--allow-loopback-in-peer-connection" in local and "media.peerconnection.ice.loopback" in local
    assert "TURN" not in local
    remote = "\n".join(no_connection_lines(12, "0.0.0.0", ice_servers=False, camera=False))
    assert "TURN" in remote and "STREAM_APP_ICE_SERVERS" in remote and "camera" not in remote
    assert "loopback" not in remote
    assert "it is set" in "\n".join(no_connection_lines(12, "", ice_servers=True, camera=False))
