"""Tests for `splatstudio.io.decimate` and the export's target count and size (issue 23, Delivery)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _clouds import random_cloud

from splatstudio.io.decimate import fit_to_size, keep_most_important, log_importance, parse_size, ranking
from splatstudio.io.errors import FormatError
from splatstudio.io.export import ExportOptions, export_splats, prepare_export, select_splats
from splatstudio.io.formats import load_splats, save_splats
from splatstudio.model.splatcloud import sigmoid


def test_importance_is_opacity_times_the_largest_cross_section() -> None:
    cloud = random_cloud(4, sh_degree=0)
    cloud.opacities[:] = [0.0, 3.0, -3.0, 0.0]
    cloud.scales[:] = [[-1, -2, -3], [-5, -5, -5], [0, 0, 0], [-3, -1, -2]]
    expected = np.log(sigmoid(cloud.opacities.astype(np.float64))) + np.array([-3, -10, 0, -3])
    np.testing.assert_allclose(log_importance(cloud), expected, rtol=1e-6)
    # splat 2 (large, faint) first; 0 and 3 tie and keep the file's order; 1 (opaque speck) last
    assert ranking(cloud).tolist() == [2, 0, 3, 1]


def test_the_most_visible_splats_are_kept_in_file_order() -> None:
    cloud = random_cloud(1000, sh_degree=1, seed=3)
    cloud.opacities[:] = -6.0  # faint ...
    cloud.scales[:] = -6.0  # ... specks
    visible = np.arange(7, 1000, 10)  # every tenth is large and opaque, with its own importance
    cloud.opacities[visible] = np.linspace(1.0, 4.0, len(visible))
    cloud.scales[visible] = -1.0
    kept = keep_most_important(cloud, 100)
    np.testing.assert_array_equal(kept.positions, cloud.positions[visible])
    half = keep_most_important(cloud, 50)  # the 50 most opaque of them, still in file order
    np.testing.assert_array_equal(half.positions, cloud.positions[visible[50:]])
    assert keep_most_important(cloud, 1000) is cloud and keep_most_important(cloud, 5000) is cloud
    with pytest.raises(ValueError, match="at least 1"):
        keep_most_important(cloud, 0)


def test_decimation_is_deterministic_with_ties() -> None:
    cloud = random_cloud(500, sh_degree=0, seed=1)
    cloud.opacities[:] = 1.0
    cloud.scales[:] = -2.0  # every splat ties: the first ones in the file are kept
    np.testing.assert_array_equal(keep_most_important(cloud, 123).positions, cloud.positions[:123])


@pytest.mark.parametrize(("text", "size"), [("20MB", 20_000_000), ("1.5 GB", 1_500_000_000), ("800k", 800_000),
                                            ("30MiB", 30 * 2**20), ("123456", 123456), ("2 kb", 2000)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-3MB", "20 furlongs", "0", "1e6"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize(("extension", "record"), [(".splat", 32), (".ply", 248)])
def test_a_size_target_is_met_exactly_for_fixed_records(tmp_path: Path, extension: str, record: int) -> None:
    cloud = random_cloud(3000, sh_degree=3, seed=4)
    save_splats(cloud.subset(np.arange(1)), tmp_path / f"one{extension}")
    header = (tmp_path / f"one{extension}").stat().st_size - record
    target = header + 1234 * record + record // 2
    kept, path = fit_to_size(cloud, target, save_splats, tmp_path, extension)
    # the PLY header says how many vertices: 3 digits more than for one
    assert len(kept) == 1234 and path.stat().st_size <= target < path.stat().st_size + record  # one more won't fit
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, f"one{extension}"])


@pytest.mark.parametrize("extension", [".spz", ".compressed.ply", ".sog"])
def test_a_size_target_is_met_closely_for_compressed_formats(tmp_path: Path, extension: str) -> None:
    cloud = random_cloud(20000, sh_degree=1, seed=5)
    full = tmp_path / f"full{extension}"
    save_splats(cloud, full)
    target = full.stat().st_size // 3
    kept, path = fit_to_size(cloud, target, save_splats, tmp_path, extension)
    size = path.stat().st_size
    assert 0.9 * target <= size <= target and 4000 < len(kept) < 20000
    np.testing.assert_array_equal(kept.positions, keep_most_important(cloud, len(kept)).positions)
    everything = fit_to_size(cloud, full.stat().st_size * 2, save_splats, tmp_path, extension)[0]
    assert len(everything) == 20000


def test_a_size_below_one_splat_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"scene.sog: the target size, 100 bytes, is less than a .sog file"):
        fit_to_size(random_cloud(10), 100, save_splats, tmp_path, ".sog", "scene.sog")
    assert list(tmp_path.iterdir()) == []


def test_export_options_count_then_size(tmp_path: Path) -> None:
    cloud = random_cloud(5000, sh_degree=2, seed=6)
    assert len(select_splats(cloud, ExportOptions(target_count=700))) == 700
    preview = prepare_export(cloud, ".splat", ExportOptions(target_count=700, target_size=32 * 500 + 10))
    try:
        assert preview.count == 500 and preview.size == 32 * 500
        assert [p.name for p in preview.path.parent.iterdir()] == ["export.splat"]  # no attempt left behind
    finally:
        preview.discard()
    result = export_splats(cloud, tmp_path / "web.sog", ExportOptions(target_count=1200, sh_degree=1))
    back = load_splats(tmp_path / "web.sog")
    assert result.count == len(back) == 1200 and back.sh_degree == 1
    for bad, message in (({"target_count": 0}, "splat count"), ({"target_size": 0}, "file size")):
        with pytest.raises(ValueError, match=message):
            ExportOptions(**bad)


def test_export_to_a_size_below_one_splat_names_the_target(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"tiny.spz: the target size, 10 bytes"):
        export_splats(random_cloud(20), tmp_path / "tiny.spz", ExportOptions(target_size=10))
    assert list(tmp_path.iterdir()) == []
