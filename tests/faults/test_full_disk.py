"""Findings file (../shared/findings/reliability-2026-12.md), defect 15: a full disk under the library failed
with no context — the features stage died with its record left "running", the CLI printed only "error:
[Errno 28] No space left on device" without naming the stage, and a half-written `database.db.part-wal`
kept the disk full. Now the failing stage says the disk is full, its record says failed, its partial files
are gone, and the same run works once there is room. The library on a small tmpfs (root mounts it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dataset_builders import render_photos, write_colmap_folder

from splatstudio.model.library import Library
from splatstudio.model.project import FAILED

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                                reason="mounting a small tmpfs needs root on Linux")


@pytest.fixture()
def small_disk(tmp_path):
    library = tmp_path / "lib"
    library.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(library)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield library
    subprocess.run(["umount", "-l", str(library)], capture_output=True)


def _cli(library: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SPLATSTUDIO_LIBRARY=str(library))
    return subprocess.run([sys.executable, "-m", "splatstudio", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def _fill(library: Path, leave_kb: int) -> Path:
    """A file that takes all the space but ``leave_kb``."""
    filler = library / "filler"
    free_kb = os.statvfs(library).f_bavail * os.statvfs(library).f_frsize // 1024
    with open(filler, "wb") as handle:
        handle.write(bytes(max(0, free_kb - leave_kb) * 1024))
    return filler


def _partial_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".part" in p.name)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return render_photos(tmp_path_factory.mktemp("scene") / "images", count=8, width=160, height=120)


def test_features_on_a_full_disk(small_disk, photos):
    assert _cli(small_disk, "new", "T", str(photos.folder), "--set", "min_image_size=100").returncode == 0
    filler = _fill(small_disk, leave_kb=40)
    done = _cli(small_disk, "run", "T", "--until", "features")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "Feature extraction failed: the disk holding" in done.stderr and "is full" in done.stderr
    assert "free some disk space" in done.stderr
    project = Library(small_disk).get("T")
    assert project.stage_record("features").status == FAILED
    assert _partial_files(project.folder) == []
    filler.unlink()
    assert _cli(small_disk, "run", "T", "--until", "features").returncode == 0


def test_training_on_a_full_disk(small_disk, photos, tmp_path):
    dataset = write_colmap_folder(tmp_path / "garden", photos)
    settings = ["--set", "iterations=30", "--set", "preview_every=0", "--set", "sh_degree=0"]
    assert _cli(small_disk, "open", str(dataset), "--name", "G", *settings).returncode == 0
    filler = _fill(small_disk, leave_kb=100)  # room for the records, not for the trained model
    done = _cli(small_disk, "run", "G", "--until", "train")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "Gaussian Splatting training failed: the disk holding" in done.stderr and "is full" in done.stderr
    filler.unlink()
    done = _cli(small_disk, "run", "G", "--until", "train")
    assert done.returncode == 0, done.stderr


def test_no_room_at_all_starts_nothing(small_disk, photos):
    assert _cli(small_disk, "new", "T", str(photos.folder), "--set", "min_image_size=100").returncode == 0
    filler = _fill(small_disk, leave_kb=0)
    done = _cli(small_disk, "run", "T", "--until", "features")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "T: nothing was started: the disk holding" in done.stderr and "free some disk space" in done.stderr
    assert Library(small_disk).get("T").stage_record("features") is None
    filler.unlink()
    assert _cli(small_disk, "run", "T", "--until", "features").returncode == 0
