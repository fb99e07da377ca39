"""Every supported splat file variant loads and renders; corrupt files give the FormatError message."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import psnr
from conftest import run_cli, small_cloud

from splatstudio.io.ply import write_splat_ply
from splatstudio.io.splat import write_splat
from splatstudio.render.camera import Intrinsics, Pose
from splatstudio.render.headless import ViewError, cli_view, read_cloud, render_screenshot

UP = np.array([0.0, 0.0, 1.0])


def _write_ply(path, columns: dict[str, np.ndarray], byte_order: str = "<") -> None:
    """A float32 binary PLY holding exactly `columns`, in their order (a plain numpy writer)."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    fmt = "binary_little_endian" if byte_order == "<" else "binary_big_endian"
    header = ["ply", f"format {fmt} 1.0", "comment written by a test", f"element vertex {n}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    table = np.column_stack([np.asarray(columns[name], dtype=np.float32) for name in names]).astype(byte_order + "f4")
    with open(path, "wb") as handle:
        handle.write(("\n".join(header) + "\n").encode("ascii"))
        handle.write(table.tobytes())


def _columns(cloud, normals: bool, sh: bool = True) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for i, axis in enumerate("xyz"):
        cols[axis] = cloud.positions[:, i]
    if normals:
        for axis in ("nx", "ny", "nz"):
            cols[axis] = np.zeros(len(cloud))
    for c in range(3):
        cols[f"f_dc_{c}"] = cloud.sh_dc[:, c]
    if sh:
        k = cloud.sh_rest.shape[1]
        for c in range(3):
            for j in range(k):
                cols[f"f_rest_{c * k + j}"] = cloud.sh_rest[:, j, c]
    cols["opacity"] = cloud.opacities
    for i in range(3):
        cols[f"scale_{i}"] = cloud.scales[:, i]
    for i in range(4):
        cols[f"rot_{i}"] = cloud.rotations[:, i]
    return cols


def _variant(kind: str, cloud, path) -> None:
    if kind == "reference":
        write_splat_ply(path, cloud)
    elif kind == "gsplat":  # no normals, attributes grouped differently
        cols = _columns(cloud, normals=False)
        order = ["x", "y", "z"] + [n for n in cols if n.startswith("f_")] + ["opacity"]
        order += [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
        _write_ply(path, {n: cols[n] for n in order})
    elif kind == "nerfstudio":  # f_dc only, no normals (SH degree 0 export)
        _write_ply(path, _columns(cloud, normals=False, sh=False))
    elif kind == "brush":  # no normals, shuffled property order, big endian
        cols = _columns(cloud, normals=False)
        names = list(cols)
        np.random.default_rng(0).shuffle(names)
        _write_ply(path, {n: cols[n] for n in names}, byte_order=">")
    elif kind == "splat":
        write_splat(path, cloud)
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "suffix", "degree", "min_psnr"),
    [("reference", ".ply", 3, 60.0), ("gsplat", ".ply", 3, 60.0), ("nerfstudio", ".ply", 0, 60.0),
     ("brush", ".ply", 3, 60.0), ("splat", ".splat", 0, 30.0)],
)  # fmt: skip
def test_each_file_variant_loads_and_renders(make_canvas, tmp_path, kind, suffix, degree, min_psnr):
    cloud = small_cloud(40, seed=11)
    path = tmp_path / f"{kind}{suffix}"
    _variant(kind, cloud, path)
    loaded = read_cloud(path)
    assert len(loaded) == len(cloud)
    assert loaded.sh_degree == degree
    canvas = make_canvas(96, 72)
    pose = Pose.look_at(np.array([3.0, -2.0, 1.5]), np.zeros(3), UP)
    intr = Intrinsics.from_fov_y(96, 72, 50.0)
    canvas.load(cloud.with_sh_degree(degree))
    canvas.set_camera(pose=pose, intrinsics=intr)
    expected = canvas.render_image()
    canvas.load(loaded)
    canvas.set_camera(pose=pose, intrinsics=intr)
    image = canvas.render_image()
    assert image.mean() > 5
    assert psnr(image, expected) >= min_psnr


def _truncated_ply(path) -> None:
    write_splat_ply(path, small_cloud(30, seed=2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("cut.ply", _truncated_ply, "the file is truncated or corrupt"),
        ("noise.ply", lambda p: p.write_bytes(b"\x00\x01garbage" * 10), "not a PLY file"),
        ("odd.splat", lambda p: p.write_bytes(b"\x00" * 33), "odd.splat"),
        ("scene.xyz", lambda p: p.write_text("1 2 3\n"), "unknown splat file extension"),
    ],
)
def test_corrupt_file_reports_format_error_and_exits_1(tmp_path, qapp, name, make, message):
    path = tmp_path / name
    make(path)
    out = tmp_path / "shot.png"
    code, _, err = run_cli(cli_view, [str(path), "--screenshot", str(out)])
    assert code == 1
    assert message in err
    assert err.startswith("splatstudio view: ")
    assert "Traceback" not in err
    assert not out.exists()
    with pytest.raises(ViewError, match=message):
        render_screenshot(path, out)


def test_cli_usage_and_missing_file(tmp_path, qapp):
    code, _, err = run_cli(cli_view, [str(tmp_path / "missing.ply"), "--screenshot", str(tmp_path / "a.png")])
    assert code == 1
    assert "no such file" in err
    assert cli_view(["x.ply", "--size", "big"]) == 2
    assert cli_view([]) == 2
    ply = tmp_path / "s.ply"
    write_splat_ply(ply, small_cloud(10))
    code, _, err = run_cli(cli_view, [str(ply), "--screenshot", str(tmp_path / "a.png"), "--camera", "nope.json:0"])
    assert code == 1
    assert "does not exist" in err


def test_view_command_renders_a_screenshot_and_reports_bad_files(tmp_path):
    """`splatstudio view FILE --screenshot` through the main command (the thumbnail and test path)."""
    from PIL import Image

    from splatstudio.cli import main as cli
    from splatstudio.io.ply import write_splat_ply
    from splatstudio.model.splatcloud import SplatCloud

    rng = np.random.default_rng(7)
    n = 200
    cloud = SplatCloud(positions=rng.normal(0, 0.5, (n, 3)), scales=np.full((n, 3), -3.0),
                       rotations=np.tile([1.0, 0, 0, 0], (n, 1)), opacities=np.full(n, 2.0),
                       sh_dc=rng.normal(0, 1, (n, 3)))
    ply = tmp_path / "cloud.ply"
    write_splat_ply(ply, cloud)
    out = tmp_path / "shot.png"
    assert run_cli(cli, ["view", str(ply), "--screenshot", str(out), "--size", "160x120"])[0] == 0
    image = np.asarray(Image.open(out))
    assert image.shape[:2] == (120, 160) and image.std() > 1.0
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nend_header\n")
    code, _, err = run_cli(cli, ["view", str(bad), "--screenshot", str(out)])
    assert code == 1
    assert "bad.ply" in err
