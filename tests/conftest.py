"""Shared fixtures. Data-backed tests call ``shared_data("bccd")``: it skips, with the reason, where the shared data
sets are absent (a developer machine without ../shared), and CI (which has them) runs the test. ``rf_test_path`` and
``rf_test_photo("B19")`` serve the held-out Roboflow letter photos the same way."""

from __future__ import annotations

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
