"""Findings file (../shared/findings/reliability-2026-12.md), defect 12: export and convert left their
temporary `splatstudio-export-*` folder behind and named internal files in their messages (an existing
folder as output, a missing or read-only folder, a full disk, an empty model). Through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from splatstudio.cli import main as cli
from splatstudio.io.formats import save_splats
from splatstudio.model.splatcloud import SplatCloud


def _cloud(n: int) -> SplatCloud:
    rng = np.random.default_rng(0)
    return SplatCloud(positions=rng.normal(0, 1, (n, 3)), scales=rng.normal(-4, 1, (n, 3)),
                      rotations=rng.normal(0, 1, (n, 4)), opacities=rng.normal(2, 1, n),
                      sh_dc=rng.normal(0, 1, (n, 3)), sh_rest=np.zeros((n, 0, 3)))


@pytest.fixture()
def model(tmp_path) -> Path:
    path = tmp_path / "in" / "scene.ply"
    path.parent.mkdir()
    save_splats(_cloud(5000), path)
    return path


def _convert(source: Path, target: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = cli(["convert", str(source), str(target)])
    return code, capsys.readouterr().err


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(("splatstudio-export-", ".")))


def test_an_existing_folder_as_output_is_named_and_nothing_is_left(model, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "isdir.splat").mkdir(parents=True)
    code, err = _convert(model, out / "isdir.splat", capsys)
    assert code == 1 and "isdir.splat: is a folder" in err and ".part" not in err
    assert _leftovers(out) == []


def test_a_missing_output_folder_is_named(model, tmp_path, capsys):
    code, err = _convert(model, tmp_path / "nope" / "x.splat", capsys)
    assert code == 1 and "x.splat: its folder" in err and "does not exist" in err and "splatstudio-export" not in err


def _mount_tmpfs(mount: Path, options: str) -> None:
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a small tmpfs needs root on Linux ({done.stderr.decode(errors='replace').strip()})")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the test makes its read-only folder the Linux way")
def test_a_read_only_output_folder_is_named(model, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    as_root = os.geteuid() == 0
    if as_root:  # root writes into a chmod 555 folder: a read-only mount stops it
        _mount_tmpfs(out, "ro,size=64k")
    else:
        out.chmod(0o555)
    try:
        code, err = _convert(model, out / "x.splat", capsys)
        assert code == 1 and "splatstudio-export" not in err
        assert ("x.splat: cannot be written: " + ("" if as_root else "no permission")) in err
        assert ("read-only" in err) == as_root
        assert _leftovers(out) == []
    finally:
        if as_root:
            subprocess.run(["umount", str(out)], check=False)
        else:
            out.chmod(0o755)


def test_an_empty_model_says_so_rather_than_blaming_options(tmp_path, capsys):
    empty = tmp_path / "empty.ply"
    save_splats(SplatCloud.empty(0), empty)
    code, err = _convert(empty, tmp_path / "x.splat", capsys)
    assert code == 1 and "x.splat: the model has no splats to export" in err
    assert _leftovers(tmp_path) == []


@pytest.fixture()
def full_disk(tmp_path):
    """A 64 KB tmpfs, where this machine lets the test mount one (root on Linux)."""
    mount = tmp_path / "small"
    mount.mkdir()
    _mount_tmpfs(mount, "size=64k")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs is Linux's")
@pytest.mark.parametrize("extension", [".ply", ".splat", ".spz"])
def test_a_full_disk_is_said_in_words_and_leaves_the_disk_as_it_was(model, full_disk, capsys, extension):
    code, err = _convert(model, full_disk / f"x{extension}", capsys)
    assert code == 1, err
    assert f"x{extension}: cannot be written: the disk is full" in err and "requested" not in err
    assert list(full_disk.iterdir()) == []  # neither the temporary folder nor a half file
