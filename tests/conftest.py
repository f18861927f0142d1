"""Shared fixtures. Data-backed tests call ``shared_data("bccd")``: it skips, with the reason, where the shared data
sets are absent (a developer machine without ../shared), and CI (which has them) runs the test. ``rf_test_path`` and
``rf_test_photo("B19")`` serve the held-out Roboflow letter photos the same way. ``loopback_only_network`` moves the
test thread (and every process it starts) into a network namespace whose only interface is ``lo``."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path

import pytest

from stream_app.config import data_dir

RF_TEST = "asl_roboflow_letters/datasets/american_sign_language/test/images"


@pytest.fixture
def shared_data():
    def require(subdir: str) -> Path:
        path = data_dir() / subdir
        if not path.is_dir():
            pytest.skip(f"shared data set {subdir!r} not found at {path} (set STREAM_APP_DATA to ../shared/data)")
        return path

    return require


@pytest.fixture
def rf_test_path(shared_data):
    """``rf_test_path("B19")``: the file of that held-out Roboflow letter photo (never trained on)."""
    def find(photo_id: str) -> Path:
        return sorted(shared_data(RF_TEST).glob(f"{photo_id}*_jpg.rf.*.jpg"))[0]

    return find


@pytest.fixture
def rf_test_photo(rf_test_path):
    """``rf_test_photo("B19")``: that held-out photo as an RGB array."""
    import cv2

    def load(photo_id: str):
        return cv2.cvtColor(cv2.imread(str(rf_test_path(photo_id))), cv2.COLOR_BGR2RGB)

    return load


CLONE_NEWNET = 0x40000000


def _set_lo_up() -> None:
    """``ip link set lo up`` without iproute2 (SIOCGIFFLAGS / SIOCSIFFLAGS on the current namespace's ``lo``)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, struct.pack("16sH14s", b"lo", 0, bytes(14)))[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, bytes(14)))


@pytest.fixture(scope="module")
def loopback_only_network():
    """A machine with no network but ``lo`` (a clinic PC, a laptop with Wi-Fi off), made for the tests of one module.

    The calling thread (pytest runs every test of a module in its main thread) enters a new network namespace with only
    ``lo`` (up), and processes started from it (the app, ChromeDriver, Chromium) live there too; the thread's own
    namespace comes back at teardown. Yields ``None`` inside the namespace, or a reason string where the machine does
    not allow it (``unshare(CLONE_NEWNET)`` needs CAP_SYS_ADMIN): callers then run on the machine's network and say so.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            yield f"unshare(CLONE_NEWNET) failed: {errno.errorcode.get(code, code)} (needs CAP_SYS_ADMIN)"
            return
        try:
            _set_lo_up()
            names = [name for _, name in socket.if_nameindex()]
            assert names == ["lo"], f"the new network namespace has interfaces {names}"
            yield None
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's own network namespace failed")
    finally:
        os.close(own)
