"""Findings file (../shared/findings/reliability-2026-12.md), defect 6 and the import's minor items: a failed or
cancelled import left orphan photos and an empty project behind (so the same command then failed with
"already exists"), one awkward file (a symbolic link loop, a 255-byte name, an unreadable folder) aborted the
whole import, and importing the same photos again stored them twice. Through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatstudio.cli import main as cli
from splatstudio.model.library import Library
from splatstudio.model.sample import generate_sample


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return generate_sample(tmp_path_factory.mktemp("photos") / "set", 4, 320, 240, seed=3).directory


def _library() -> Library:
    return Library(os.environ["SPLATSTUDIO_LIBRARY"])


def _project_folders() -> list[str]:
    return sorted(p.name for p in _library().folder.iterdir() if (p / "project.json").exists())


def _leftovers(library_folder: Path) -> list[str]:
    """Anything an import leaves beside the projects: staging folders, temporary files."""
    return sorted(str(p.relative_to(library_folder)) for p in library_folder.rglob("*")
                  if "-import-" in p.name or p.name.endswith(".part"))


def test_one_awkward_file_is_rejected_and_the_rest_imported(photos, tmp_path, capsys):
    folder = tmp_path / "drop"
    folder.mkdir()
    for photo in sorted(photos.glob("*.jpg")):
        (folder / photo.name).write_bytes(photo.read_bytes())
    (folder / "loop_a.jpg").symlink_to("loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to("loop_a.jpg")
    long_name = "L" * 251 + ".jpg"  # 255 bytes: the longest a file system takes
    Image.new("RGB", (320, 240), (200, 40, 90)).save(folder / long_name, "JPEG")
    assert cli(["new", "Awkward", str(folder), "--set", "min_image_size=200"]) == 0
    out = capsys.readouterr().out
    assert "loop_a.jpg: a symbolic link that loops back on itself" in out
    project = _library().get("Awkward")
    names = project.image_names()
    assert len(names) == 5 and all(len(name.encode()) <= 130 for name in names)
    assert sorted(p.name for p in project.images_dir.iterdir()) == sorted(names)


def test_importing_the_same_photos_again_stores_nothing_twice(photos, capsys):
    assert cli(["new", "Again", str(photos), "--set", "min_image_size=200"]) == 0
    assert cli(["add", "Again", str(photos)]) == 1
    captured = capsys.readouterr()
    assert "duplicate: the same photo as" in captured.out and "none of the files could be added" in captured.err
    project = _library().get("Again")
    assert len(project.image_names()) == 4 and len(list(project.images_dir.iterdir())) == 4


def test_nothing_importable_keeps_no_empty_project(tmp_path, capsys):
    folder = tmp_path / "phone"
    folder.mkdir()
    (folder / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    (folder / "notes.txt").write_text("not a photo")
    assert cli(["new", "Empty", str(folder)]) == 1
    assert "none of the files could be imported" in capsys.readouterr().err
    assert _project_folders() == []
    assert cli(["new", "Empty"]) == 0  # the name is free again; an empty project asked for is kept
    assert _project_folders() == ["Empty"]


def _without_root_powers(command: list[str]) -> list[str]:
    """Root reads every folder whatever its mode: run the command without the capabilities that allow it."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("as root, an unreadable folder needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]


def test_an_unreadable_folder_is_reported_and_the_rest_imported(photos, tmp_path):
    """As a user who cannot read one subfolder nor search another."""
    drop = tmp_path / "drop"
    (drop / "locked").mkdir(parents=True)
    (drop / "closed").mkdir()
    for photo in sorted(photos.glob("*.jpg")):
        (drop / photo.name).write_bytes(photo.read_bytes())
    (drop / "locked" / "hidden.jpg").write_bytes(next(photos.glob("*.jpg")).read_bytes())
    (drop / "closed" / "inside.jpg").write_bytes(next(photos.glob("*.jpg")).read_bytes())
    (drop / "locked").chmod(0o000)
    (drop / "closed").chmod(0o600)  # readable but not searchable: the file inside cannot even be looked at
    done = subprocess.run(_without_root_powers([sys.executable, "-m", "splatstudio", "new", "Partial", str(drop),
                                                str(drop / "closed" / "inside.jpg"), "--set", "min_image_size=200"]),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{drop / 'locked'}: this folder cannot be read" in done.stdout
    assert f"{drop / 'closed' / 'inside.jpg'}: cannot be read (Permission denied)" in done.stdout
    assert "4 photo(s) imported" in done.stdout


def _slow_photo_set(folder: Path, count: int) -> Path:
    """Photos big enough that importing them takes seconds (each is resized), all different."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    base = (rng.random((900, 1200, 3)) * 255).astype(np.uint8)
    for i in range(count):
        picture = base.copy()
        picture[:20, :20] = i
        Image.fromarray(picture).save(folder / f"p{i:03d}.png", compress_level=0)
    return folder


def test_ctrl_c_during_import_keeps_nothing_and_the_same_command_then_works(tmp_path):
    drop = _slow_photo_set(tmp_path / "big", 40)
    command = [sys.executable, "-m", "splatstudio", "new", "Slow", str(drop), "--set", "max_image_size=500"]
    library = Path(os.environ["SPLATSTUDIO_LIBRARY"])
    # Ctrl+C's default action, whatever this suite inherited: a shell runs a background job (`... &`) with
    # SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(library.glob("*/images/*.png")):
        time.sleep(0.05)  # wait until photos are being stored
    assert process.poll() is None, "the import ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, (out, err)
    assert "Traceback" not in err and "cancelled" in err and "the new project was removed" in err
    assert _project_folders() == [] and _leftovers(library) == []
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    project = _library().get("Slow")
    assert sorted(project.image_names()) == [f"p{i:03d}.png" for i in range(40)]  # no "-2" copies
    assert len(list(project.images_dir.iterdir())) == 40


def test_a_full_disk_during_import_says_so_and_keeps_nothing(tmp_path):
    """The library on a small tmpfs (needs root to mount): the disk fills while photos are stored."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("a small full disk here is a tmpfs, which only root on Linux can mount")
    library = tmp_path / "lib"
    library.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(library)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        drop = _slow_photo_set(tmp_path / "big", 12)
        env = dict(os.environ, SPLATSTUDIO_LIBRARY=str(library))
        command = [sys.executable, "-m", "splatstudio", "new", "Full", str(drop), "--set", "max_image_size=700"]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 1, done.stdout
        assert "Traceback" not in done.stderr
        assert "No space left on device" in done.stderr and "nothing was imported" in done.stderr
        assert not [p for p in library.iterdir() if (p / "project.json").exists()]
        assert _leftovers(library) == []
        # room again (fewer, smaller photos): the same name works
        for extra in sorted(drop.iterdir())[2:]:
            extra.unlink()
        done = subprocess.run([*command[:-1], "max_image_size=300"], capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        project = Library(library).get("Full")
        assert json.loads(project.path("import.json").read_text())["accepted"][1]["name"] == "p001.png"
    finally:
        subprocess.run(["umount", "-l", str(library)], capture_output=True)
