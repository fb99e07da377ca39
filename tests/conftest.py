"""Shared fixtures: an isolated library and config folder for every test, and paths to shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Qt runs on the X server pytest-xvfb starts (xcb gives the viewer a real Mesa OpenGL context; the
# offscreen platform has none). Set before any QApplication exists; a developer's choice is kept.
if os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real library, settings or environment overrides."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SPLATSTUDIO_LIBRARY", str(home / "library"))
    monkeypatch.setenv("SPLATSTUDIO_CONFIG_DIR", str(home / "config"))
    for name in list(os.environ):
        if name.startswith("SPLATSTUDIO_") and name not in ("SPLATSTUDIO_LIBRARY", "SPLATSTUDIO_CONFIG_DIR"):
            monkeypatch.delenv(name)
    yield home


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"needs the shared photo set {path} (not present in this checkout)")
    return path
