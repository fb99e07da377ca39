"""``splatstudio export`` and ``convert`` with ``--format sog``, ``--target-count`` and ``--target-size``
(issue 23, Delivery), through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from _clouds import random_cloud
from dataset_builders import render_photos, write_trainer_output

from splatstudio.cli import main as cli
from splatstudio.io.decimate import keep_most_important
from splatstudio.io.formats import load_splats
from splatstudio.io.ply import write_splat_ply


def test_convert_to_a_target_count_keeps_the_most_visible(tmp_path: Path, capsys) -> None:
    cloud = random_cloud(2000, sh_degree=2, seed=2)
    write_splat_ply(tmp_path / "in.ply", cloud)
    assert cli(["convert", str(tmp_path / "in.ply"), str(tmp_path / "out.splat"), "--target-count", "500"]) == 0
    assert "converted 500 of 2000 splats" in capsys.readouterr().out
    back = load_splats(tmp_path / "out.splat")
    expected = keep_most_important(cloud, 500)
    assert len(back) == 500
    assert {tuple(p) for p in back.positions.round(4)} == {tuple(p) for p in expected.positions.round(4)}


def test_convert_to_sog_within_a_target_size(tmp_path: Path, capsys) -> None:
    write_splat_ply(tmp_path / "in.ply", random_cloud(6000, sh_degree=3, seed=3))
    assert cli(["convert", str(tmp_path / "in.ply"), str(tmp_path / "web.sog"), "--target-size", "60kB"]) == 0
    out = capsys.readouterr().out
    size = (tmp_path / "web.sog").stat().st_size
    assert size <= 60_000 and "web.sog" in out
    assert 0 < len(load_splats(tmp_path / "web.sog")) < 6000


@pytest.mark.parametrize(("option", "message"), [
    (["--target-size", "20 parsecs"], "--target-size: expected a size such as 20MB"),
    (["--target-count", "0"], "a target splat count must be at least 1"),
    (["--target-size", "10"], "out.spz: the target size, 10 bytes, is less than a .spz file of a single splat"),
])
def test_bad_targets_are_refused_in_words(tmp_path: Path, capsys, option: list[str], message: str) -> None:
    write_splat_ply(tmp_path / "in.ply", random_cloud(50))
    assert cli(["convert", str(tmp_path / "in.ply"), str(tmp_path / "out.spz"), *option]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.spz").exists()


def test_export_a_project_as_sog_for_the_web(tmp_path: Path, capsys) -> None:
    photos = render_photos(tmp_path / "scene" / "images", count=6, width=160, height=120)
    output = write_trainer_output(tmp_path / "output", photos, None, iterations=(30,), gaussians=800, sh_degree=3)
    assert cli(["open", str(output), "--name", "Web", "--run"]) == 0
    capsys.readouterr()
    target = tmp_path / "web"
    assert cli(["export", "Web", "--format", "sog", "-o", str(target), "--target-count", "300"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("exported 300 of ") and "(the most visible) to " in out and "web.sog" in out
    back = load_splats(tmp_path / "web.sog")
    assert len(back) == 300 and back.sh_degree == 3


def test_an_old_spz_is_written_again_the_right_way_up(tmp_path: Path, capsys) -> None:
    """Our .spz files from before the frame fix held turned axes: `convert --old-spz` reads them so."""
    import numpy as np

    from splatstudio.io.spz import write_spz

    cloud = random_cloud(300, sh_degree=1, seed=5)
    write_spz(tmp_path / "old.spz", cloud, rub=True)  # as the old writer did
    assert not np.allclose(load_splats(tmp_path / "old.spz").positions, cloud.positions, atol=1e-2)
    assert cli(["convert", str(tmp_path / "old.spz"), str(tmp_path / "fixed.spz"), "--old-spz"]) == 0
    assert np.allclose(load_splats(tmp_path / "fixed.spz").positions, cloud.positions, atol=1e-2)
    assert cli(["convert", str(tmp_path / "fixed.spz"), str(tmp_path / "x.ply"), "--old-spz"]) == 0
    assert cli(["convert", str(tmp_path / "x.ply"), str(tmp_path / "y.spz"), "--old-spz"]) == 2
    assert "not one" in capsys.readouterr().err
