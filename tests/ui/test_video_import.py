"""Video in, in the window: a dropped video shows as a badged item followed by the frames it would give, the
frame count can be changed, removing the video removes its frames, Create imports them, and Stop during the
import keeps nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _ui_helpers import drop_paths
from PySide6.QtCore import Qt
from video_clips import make_clip

from splatstudio.model.project import Project
from splatstudio.model.video import frame_sequences
from splatstudio.ui.new_project import KIND_ROLE, REASON_ROLE, SOURCE_ROLE


@pytest.fixture
def drop_folder(tmp_path, tiny_photos) -> Path:
    """Two tiny photos and a 2.5-second clip (320x240, big enough for the tests' 200-pixel minimum)."""
    folder = tmp_path / "garden"
    folder.mkdir()
    for photo in sorted(tiny_photos.glob("*.jpg"))[:2]:
        shutil.copy(photo, folder / photo.name)
    make_clip(folder / "walk.mp4", frames=60, width=320, height=240, fps=24)
    return folder


def _kinds(page) -> list[str]:
    return [item.data(KIND_ROLE) for item in page.items()]


def test_a_dropped_video_shows_its_frames_and_imports_them(window, qtbot, drop_folder):
    page = window.new_page
    with qtbot.waitSignal(page.sig_checked, timeout=60_000):
        assert drop_paths(window, [drop_folder])
    assert window.pages.currentWidget() is page
    # auto: 2 frames a second but at least 20
    assert _kinds(page) == ["photo", "photo", "video", *["frame"] * 20]
    video = page.items()[2]
    assert Path(video.data(SOURCE_ROLE)).name == "walk.mp4" and video.data(REASON_ROLE) is None
    assert video.text() == "walk.mp4\n20 frames" and "320×240, 0:02.5, 24 fps, h264" in video.toolTip()
    assert not video.icon().isNull()
    frames = page.frame_items()
    assert frames[0].text().startswith("walk.mp4\n0:00.") and frames[0].toolTip().startswith("frame at 0:00.")
    assert frames[-1].text().startswith("walk.mp4\n0:02.")  # the last of 20 stretches of 0.125 s
    assert not frames[0].flags() & Qt.ItemFlag.ItemIsSelectable
    assert page.summary.text() == "2 photo(s) and 20 frame(s) of 1 video(s) will be imported"
    assert page.accepted_sources()[-1] == str(drop_folder / "walk.mp4")
    assert not page.frames.isHidden() and page.frames.text() == "auto (2 a second, 20-150)"

    # fewer frames: the video is checked again, the photos stay as they are
    with qtbot.waitSignal(page.sig_checked, timeout=60_000):
        page.frames.setValue(6)
    assert _kinds(page) == ["photo", "photo", "video", *["frame"] * 6]
    assert page.summary.text() == "2 photo(s) and 6 frame(s) of 1 video(s) will be imported"
    assert page.photo_sizes() == [(320, 240)] * 8

    page.name_edit.setText("Garden video")
    with qtbot.waitSignal(page.sig_project_created, timeout=60_000) as created:
        page.create_button.click()
    project = Project(created.args[0])
    names = project.image_names()
    assert len(names) == 8 and project.settings.video_frames == 6
    assert frame_sequences(project.images_dir) == [[f"walk_{i:04d}.jpg" for i in range(1, 7)]]


def test_removing_a_video_removes_its_frames(window, qtbot, drop_folder):
    page = window.new_page
    with qtbot.waitSignal(page.sig_checked, timeout=60_000):
        window.show_new_project([str(drop_folder / "walk.mp4"), str(next(drop_folder.glob("*.jpg")))])
    assert _kinds(page).count("frame") == 20
    page.grid.setFocus()
    page.grid.clearSelection()
    next(item for item in page.items() if item.data(KIND_ROLE) == "video").setSelected(True)
    qtbot.keyClick(page.grid, Qt.Key.Key_Delete)
    assert _kinds(page) == ["photo"]
    assert page.summary.text() == "1 photo(s) will be imported"


def test_stop_during_the_import_keeps_nothing(window, qtbot, tmp_path, library):
    page = window.new_page
    clip = make_clip(tmp_path / "long" / "long.mp4", frames=360, width=320, height=240, fps=24)
    with qtbot.waitSignal(page.sig_checked, timeout=60_000):
        window.show_new_project([str(clip)])
    assert _kinds(page) == ["video", *["frame"] * 30]
    page.name_edit.setText("Stopped")
    with qtbot.waitSignal(page.sig_message, timeout=60_000) as said:
        page.create_button.click()
        assert page.stop_button.isVisible()
        page.stop_button.click()
    assert said.args[0] == "the import was stopped: nothing was imported and project 'Stopped' was not created"
    assert page.summary.text() == "The import was stopped: nothing was imported and project 'Stopped' was not created."
    assert library.find("Stopped") is None
    assert [p.name for p in library.folder.iterdir() if p.is_dir() and not p.name.startswith(".")] == []
    assert not page.stop_button.isVisible() and page.create_button.isEnabled()
    assert _kinds(page) == ["video", *["frame"] * 30]  # what was dropped is still there to try again


def test_stop_while_a_video_is_checked_leaves_an_empty_page(window, qtbot, tmp_path):
    page = window.new_page
    clip = make_clip(tmp_path / "long" / "long.mp4", frames=360, width=320, height=240, fps=24)
    window.show_new_project([str(clip)])
    assert page.stop_button.isVisible()
    page.stop_button.click()
    qtbot.waitUntil(lambda: not page.busy.isVisible(), timeout=60_000)
    assert page.summary.text() == "Stopped checking: drop the files again to check them."
    assert page.items() == [] and not page.create_button.isEnabled()
    with qtbot.waitSignal(page.sig_checked, timeout=60_000):  # dropping it again checks it
        window.show_new_project([str(clip)])
    assert _kinds(page) == ["video", *["frame"] * 30]
