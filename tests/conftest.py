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
    keep = {"SPLATSTUDIO_LIBRARY": home / "library", "SPLATSTUDIO_CONFIG_DIR": home / "config",
            # the trainer's speed profile (gstrain/estimate.py): tests neither read nor change the machine's
            "SPLATSTUDIO_TRAINER_PROFILE": home / "trainer-speed.json"}
    for name, value in keep.items():
        monkeypatch.setenv(name, str(value))
    for name in list(os.environ):
        if name.startswith("SPLATSTUDIO_") and name not in keep:
            monkeypatch.delenv(name)
    yield home


@pytest.fixture(autouse=True)
def qt_cycles_on_main_thread(request):
    """Qt tests collect reference cycles on the main thread only, as the app does (`MainThreadCollector`):
    Python's own collector may run on a worker (the viewer's sort thread) and destroy a canvas or a panel
    from there, in the middle of another test's drawing (CI's segfault, exit 139)."""
    if "qapp" not in request.fixturenames:
        yield
        return
    import gc

    from splatstudio.services.main_thread_gc import MainThreadCollector

    request.getfixturevalue("qapp")
    collector = MainThreadCollector()
    collector.start()
    yield
    collector.stop()
    gc.collect()
