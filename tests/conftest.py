"""Shared fixtures. Data-backed tests call ``shared_data("bccd")``: it skips, with the reason, where the shared data
sets are absent (a developer machine without ../shared), and CI (which has them) runs the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.config import data_dir


@pytest.fixture
def shared_data():
    def require(subdir: str) -> Path:
        path = data_dir() / subdir
        if not path.is_dir():
            pytest.skip(f"shared data set {subdir!r} not found at {path} (set STREAM_APP_DATA to ../shared/data)")
        return path

    return require
