"""Shared fixtures: an isolated library and config folder for every test (shared photo sets: shared_sets.py)."""

from __future__ import annotations

import os

import pytest

# Qt runs on the X server pytest-xvfb starts (xcb gives the viewer a real Mesa OpenGL context; the
# offscreen platform has none). Set before any QApplication exists; a developer's choice is kept.
if os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")


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
