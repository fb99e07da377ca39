"""Video in through the real CLI: `new` and `reconstruct` take videos; a corrupt or cut-short video is refused
with a reason naming the file and leaves nothing behind; without PyAV the CLI says what to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from video_clips import make_clip

from splatstudio.cli import main as cli
from splatstudio.model.library import Library
from splatstudio.model.video import frame_sequences
from splatstudio.pipeline.sfm import camera_groups

SMALL = ["--set", "min_image_size=64", "--set", "video_frames=8"]


def _library() -> Library:
    return Library(os.environ["SPLATSTUDIO_LIBRARY"])


def _project_folders() -> list[str]:
    return sorted(p.name for p in _library().folder.iterdir() if (p / "project.json").exists())


def _leftovers() -> list[str]:
    folder = _library().folder
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "-import-" in p.name or
                  p.name.endswith((".part", ".tmp")))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A good clip, and the ways a video arrives damaged."""
    folder = tmp_path_factory.mktemp("clips")
    good = make_clip(folder / "walk.mp4", frames=120, fps=24)  # the index (moov) at the end, as PyAV writes it
    data = good.read_bytes()
    clips = {"good": good}
    clips["cut_mp4"] = folder / "cut.mp4"  # an interrupted copy: the index at the end is missing
    clips["cut_mp4"].write_bytes(data[: len(data) // 2])
    indexed_first = make_clip(folder / "streamable.mkv", frames=120, fps=24)
    clips["cut_mkv"] = folder / "cut.mkv"  # the header declares 5 s; the pictures stop at half
    clips["cut_mkv"].write_bytes(indexed_first.read_bytes()[: indexed_first.stat().st_size // 2])
    scrambled = bytearray(data)
    rng = np.random.default_rng(1)
    scrambled[len(data) // 3: len(data) // 3 + len(data) // 4] = rng.integers(0, 256, len(data) // 4,
                                                                               dtype=np.uint8).tobytes()
    clips["corrupt"] = folder / "corrupt.mp4"  # a quarter of the picture data overwritten
    clips["corrupt"].write_bytes(bytes(scrambled))
    clips["not_video"] = folder / "holiday.mov"
    clips["not_video"].write_text("these are my holiday notes, not a video\n" * 50)
    return clips


def test_new_with_a_video_creates_a_project_of_its_frames(clips, capsys):
    assert cli(["new", "Walk", str(clips["good"]), *SMALL]) == 0
    out = capsys.readouterr().out
    assert f"video {clips['good']}: 8 frames of 120 (160×96, 0:05.0, 24 fps, h264)" in out
    assert "Walk: 8 photo(s) imported (8 of them frames of 1 video(s)), 0 rejected (8 in the project)" in out
    project = _library().get("Walk")
    names = project.image_names()
    assert names == [f"walk_{i:04d}.jpg" for i in range(1, 9)]
    assert frame_sequences(project.images_dir) == [names]
    assert camera_groups(project.images_dir, names) == [names]
    assert _library().list_projects()[0]["image_count"] == 8


def test_new_mixes_photos_and_a_video_and_its_frames_share_one_camera(clips, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        picture = np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8)
        Image.fromarray(picture).save(photos / f"IMG_{i}.jpg")
    assert cli(["new", "Mixed", str(photos), str(clips["good"]), *SMALL]) == 0
    assert "10 photo(s) imported (8 of them frames of 1 video(s))" in capsys.readouterr().out
    project = _library().get("Mixed")
    names = project.image_names()
    assert names[:2] == ["IMG_0.jpg", "IMG_1.jpg"] and len(names) == 10
    assert camera_groups(project.images_dir, names) == [names[:2], names[2:]]


@pytest.mark.parametrize(("clip", "words"), [
    ("cut_mp4", "cannot be read as a video: the file is damaged, cut short (an interrupted copy or download?)"),
    ("cut_mkv", "cut short or damaged: its pictures end at 0:02."),
    ("corrupt", "corrupt video data: "),
    ("not_video", "cannot be read as a video"),
])
def test_a_damaged_video_is_refused_by_name_and_nothing_is_kept(clips, clip, words):
    done = subprocess.run([sys.executable, "-m", "splatstudio", "new", "Damaged", str(clips[clip]), *SMALL],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"rejected {clips[clip]}: {words}" in done.stdout, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert "was not kept" in done.stderr
    assert _project_folders() == [] and _leftovers() == []


def test_a_damaged_video_added_to_a_project_leaves_it_as_it_was(clips, capsys):
    assert cli(["new", "Walk", str(clips["good"]), *SMALL]) == 0
    project = _library().get("Walk")
    before = sorted(p.name for p in project.images_dir.iterdir())
    accepted = json.loads(project.path("import.json").read_text())["accepted"]
    capsys.readouterr()
    assert cli(["add", "Walk", str(clips["cut_mkv"]), str(clips["corrupt"])]) == 1
    captured = capsys.readouterr()
    assert f"rejected {clips['cut_mkv']}: cut short or damaged" in captured.out
    assert f"rejected {clips['corrupt']}: corrupt video data" in captured.out
    assert "none of the files could be added" in captured.err
    assert sorted(p.name for p in project.images_dir.iterdir()) == before
    assert json.loads(project.path("import.json").read_text())["accepted"] == accepted
    assert _leftovers() == []


def test_without_pyav_the_cli_says_what_to_install(clips):
    done = subprocess.run([sys.executable, "-c", "import sys; sys.modules['av'] = None; from splatstudio.cli import "
                           "main; sys.exit(main())", "new", "Walk", str(clips["good"]), *SMALL],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"{clips['good']}: a video: reading videos needs the PyAV package (`pip install av`)" in done.stdout
    assert _project_folders() == []
