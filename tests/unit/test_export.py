"""Export options: crop boxes, opacity threshold, SH reduction; preview-then-commit writes; the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _clouds import random_cloud

from splatstudio.cli import main as cli
from splatstudio.io.errors import FormatError
from splatstudio.io.export import CropBox, ExportOptions, export_splats, prepare_export, select_splats
from splatstudio.io.formats import format_for, load_splats, save_splats
from splatstudio.model.splatcloud import logit, sigmoid


def test_axis_aligned_crop_keeps_points_inside_faces_included():
    box = CropBox.from_min_max((0, 0, 0), (1, 2, 3))
    pts = np.array([[0.5, 1, 1.5], [0, 0, 0], [1, 2, 3], [1.01, 1, 1], [0.5, -0.01, 1], [0.5, 1, 3.2]])
    assert box.contains(pts).tolist() == [True, True, True, False, False, False]


def test_oriented_crop_box_rotated_45_degrees_about_z():
    half = math.sqrt(0.5) / 2
    # a unit-diagonal square rotated 45 degrees: its corners lie on the axes at distance 0.5
    box = CropBox.oriented((0, 0, 0), (half, half, 1), (math.cos(math.pi / 8), 0, 0, math.sin(math.pi / 8)))
    pts = np.array([[0.49, 0, 0], [0, 0.49, 0], [0.3, 0.3, 0], [0.2, 0.2, 0], [0.51, 0, 0]])
    assert box.contains(pts).tolist() == [True, True, False, True, False]


@pytest.mark.parametrize("make, message", [
    (lambda: CropBox.from_min_max((0, 0, 0), (1, -1, 1)), "below its maximum"),
    (lambda: CropBox((0, 0, 0), (1, 0, 1)), "positive"),
    (lambda: CropBox((0, 0, float("nan")), (1, 1, 1)), "finite"),
    (lambda: CropBox((0, 0, 0), (1, 1, 1), ((1, 0, 0), (0, 1, 0), (0, 0, -1))), "rotation"),
    (lambda: CropBox.oriented((0, 0, 0), (1, 1, 1), (0, 0, 0, 0)), "quaternion"),
    (lambda: ExportOptions(min_opacity=1.0), "opacity"),
    (lambda: ExportOptions(sh_degree=4), "SH degree"),
])
def test_invalid_options_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_select_by_opacity_crop_and_sh_degree():
    cloud = random_cloud(2000, sh_degree=3, seed=3)
    opts = ExportOptions(min_opacity=0.4, sh_degree=1, crop=CropBox.from_min_max((-2, -2, -2), (2, 2, 2)))
    out = select_splats(cloud, opts)
    inside = (np.abs(cloud.positions) <= 2).all(axis=1) & (sigmoid(cloud.opacities) >= 0.4)
    assert len(out) == inside.sum() > 0
    assert out.sh_degree == 1 and out.sh_rest.shape == (len(out), 3, 3)
    np.testing.assert_array_equal(out.positions, cloud.positions[inside])
    np.testing.assert_array_equal(out.sh_rest, cloud.sh_rest[inside][:, :3, :])
    # defaults keep everything, and an SH degree above the cloud's is not invented
    assert select_splats(cloud, ExportOptions()) is cloud
    assert select_splats(random_cloud(10, sh_degree=1), ExportOptions(sh_degree=3)).sh_degree == 1


@pytest.mark.parametrize("ext", [".ply", ".splat"])
def test_preview_reports_exact_size_and_count_then_commits(tmp_path, ext):
    cloud = random_cloud(500, sh_degree=3, seed=1)
    cloud.opacities[:100] = logit(np.full(100, 0.01))
    preview = prepare_export(cloud, ext, ExportOptions(min_opacity=0.02, sh_degree=0))
    assert preview.count == len(select_splats(cloud, ExportOptions(min_opacity=0.02))) <= 400
    assert preview.size == preview.path.stat().st_size
    target = tmp_path / f"out{ext}"
    preview.commit(target)
    assert target.stat().st_size == preview.size and not preview.path.exists()
    back = load_splats(target)
    assert len(back) == preview.count and back.sh_degree == 0
    preview.discard()  # idempotent


def test_empty_selection_is_an_error_and_leaves_nothing(tmp_path):
    cloud = random_cloud(50, seed=2)
    with pytest.raises(FormatError, match="keep no splats"):
        export_splats(cloud, tmp_path / "empty.ply", ExportOptions(crop=CropBox.from_min_max((90,) * 3, (91,) * 3)))
    assert list(tmp_path.iterdir()) == []


def test_export_writes_beside_the_target_and_leaves_no_temporary(tmp_path):
    cloud = random_cloud(100, seed=4)
    result = export_splats(cloud, tmp_path / "scene.splat", ExportOptions())
    assert [p.name for p in tmp_path.iterdir()] == ["scene.splat"]
    assert result.size == 32 * 100


def test_format_for_prefers_the_longest_registered_extension():
    assert format_for("a/b/scene.PLY").extension == ".ply"
    with pytest.raises(FormatError, match="unknown splat file extension '.obj'"):
        format_for("scene.obj")
    with pytest.raises(FormatError, match="no extension"):
        format_for("ply")


def test_cli_convert_with_options(tmp_path, capsys):
    src = tmp_path / "in.ply"
    cloud = random_cloud(300, sh_degree=3, seed=5)
    save_splats(cloud, src)
    out = tmp_path / "out.ply"
    assert cli(["convert", str(src), str(out), "--crop=-3,-3,-3,3,3,3", "--min-opacity", "0.5",
                "--sh-degree", "2"]) == 0
    keep = (np.abs(cloud.positions) <= 3).all(axis=1) & (sigmoid(cloud.opacities) >= 0.5)
    back = load_splats(out)
    assert len(back) == keep.sum() and back.sh_degree == 2
    assert f"converted {keep.sum()} of 300 splats" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--crop", "1,2,3"], "--crop expects 6 numbers"),
    (["--crop", "0,0,0,1,x,1"], "comma-separated numbers"),
    (["--crop-box", "0,0,0,1,1,1,1,0,0"], "6 or 10 numbers"),
    (["--crop", "0,0,0,1,1,1", "--crop-box", "0,0,0,1,1,1"], "not both"),
    (["--min-opacity", "2"], "minimum opacity"),
])
def test_cli_rejects_bad_export_options(tmp_path, capsys, argv, message):
    src = tmp_path / "in.ply"
    save_splats(random_cloud(10), src)
    assert cli(["convert", str(src), str(tmp_path / "o.splat"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.splat").exists()
