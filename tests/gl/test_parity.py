"""The viewer's image matches the slow numpy reference renderer (PSNR), from free and training cameras."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _reference import psnr, render_reference
from conftest import run_cli, small_cloud
from optional import need_numba
from PIL import Image

from splatstudio.io.colmap import Camera, ColmapModel, Points3D, write_model
from splatstudio.io.colmap import Image as ColmapImage
from splatstudio.io.ply import write_splat_ply
from splatstudio.render.camera import Intrinsics, Pose, load_training_cameras
from splatstudio.render.headless import cli_view
from splatstudio.render.picking import project_conics

PSNR_MIN = 30.0


def _reference_for(cloud, pose: Pose, intr: Intrinsics, sh_degree: int = 3) -> np.ndarray:
    return render_reference(cloud, pose.R, pose.t, intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy,
                            sh_degree=sh_degree)  # fmt: skip


@pytest.mark.parametrize(
    ("eye", "sh_degree"),
    [((3.0, -2.0, 1.5), 3), ((-2.5, 1.0, -2.0), 3), ((0.5, 3.2, 0.8), 1), ((2.0, 2.0, 2.0), 0)],
)
def test_parity_with_reference_renderer(make_canvas, eye, sh_degree):
    cloud = small_cloud(60, seed=1)
    width, height = 160, 120
    canvas = make_canvas(width, height, sh_degree=sh_degree)
    canvas.load(cloud)
    pose = Pose.look_at(np.array(eye), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    intr = Intrinsics.from_fov_y(width, height, 50.0)
    canvas.set_camera(pose=pose, intrinsics=intr)
    image = canvas.render_image((width, height))
    reference = _reference_for(cloud, pose, intr, sh_degree)
    value = psnr(image, reference)
    print(f"parity PSNR eye={eye} degree={sh_degree}: {value:.2f} dB")
    assert image.mean() > 5, "the viewer drew nothing"
    assert value >= PSNR_MIN


def test_splats_larger_than_the_largest_point_are_tiled_exactly(make_canvas):
    cloud = small_cloud(60, seed=1)
    width, height = 700, 500
    canvas = make_canvas(width, height)
    canvas.load(cloud)
    pose = Pose.look_at(np.array([1.2, -0.8, 0.6]), np.zeros(3), np.array([0.0, 0.0, 1.0]))  # inside the cloud
    intr = Intrinsics.from_fov_y(width, height, 60.0)
    canvas.set_camera(pose=pose, intrinsics=intr)
    image = canvas.render_image()
    limit = canvas._point_limit()
    _, conics, _, valid = project_conics(canvas.scene.positions, _cov6(canvas.scene), pose.view_matrix(), intr, 0.01)
    det = conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2
    sides = 6.0 * np.sqrt(np.maximum(conics[:, 0], conics[:, 2])[valid] / det[valid])
    assert (sides > limit).sum() >= 10, "the view must hold splats drawn as several tiles"
    value = psnr(image, _reference_for(cloud, pose, intr))
    print(
        f"parity PSNR, close-up with {(sides > limit).sum()} tiled splats (largest {sides.max():.0f} px): {value:.2f} dB"
    )
    assert value >= PSNR_MIN


@pytest.mark.parametrize("limit", [2, 5, 16])
def test_tiles_and_bands_reproduce_the_single_point_image(make_canvas, limit):
    """A tiny point limit makes every splat a grid of tiles and the frame many bands: same pixels."""
    canvas = make_canvas(160, 120)
    canvas.load(small_cloud(60, seed=2))
    canvas.set_camera(pose=Pose.look_at(np.array([2.5, -2.5, 1.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])),
                      intrinsics=Intrinsics.from_fov_y(160, 120, 50.0))  # fmt: skip
    plain = canvas.render_image()
    canvas._max_point = limit
    tiled = canvas.render_image()
    assert np.array_equal(tiled, plain)


def test_tiles_following_large_ellipses_keep_every_pixel(make_canvas):
    """Rows of tiles along large, elongated splats give the same pixels as one square per splat."""
    cloud = small_cloud(60, seed=3)
    cloud.scales[:, 0] += 1.2  # needles
    canvas = make_canvas(320, 240)
    canvas.load(cloud)
    canvas.set_camera(pose=Pose.look_at(np.array([2.0, -2.5, 1.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])),
                      intrinsics=Intrinsics.from_fov_y(320, 240, 50.0))  # fmt: skip
    tiled = canvas.render_image()
    canvas._single_below = 1e9  # every splat one square (all fit in a point here)
    squares = canvas.render_image()
    assert np.array_equal(tiled, squares)


def _cov6(scene) -> np.ndarray:
    return np.column_stack([scene.static["a_cov_a"], scene.static["a_cov_b"]]).astype(np.float64)


def _orbit_cameras(count: int, radius: float = 3.5) -> list[tuple[Pose, Intrinsics]]:
    cams = []
    for i in range(count):
        angle = 2 * np.pi * i / count
        eye = np.array([radius * np.cos(angle), radius * np.sin(angle), 1.0 + 0.3 * i])
        pose = Pose.look_at(eye, np.array([0.1, -0.1, 0.0]), np.array([0.0, 0.0, 1.0]))
        cams.append((pose, Intrinsics(120, 90, 100.0 + 5 * i, 100.0 + 5 * i, 60.0, 45.0)))
    return cams


def _write_cameras_json(path, cams) -> None:
    entries = []
    for i, (pose, intr) in enumerate(cams):
        entries.append({"id": i, "img_name": f"img{i:03d}", "width": intr.width, "height": intr.height,
                        "position": pose.center.tolist(), "rotation": pose.R.T.tolist(),
                        "fy": intr.fy, "fx": intr.fx})  # fmt: skip
    path.write_text(json.dumps(entries))


def _rotmat_to_qvec(r: np.ndarray) -> np.ndarray:
    w = np.sqrt(max(1.0 + np.trace(r), 1e-12)) / 2.0
    return np.array([w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)])


def test_jump_to_training_camera_reproduces_photo(make_canvas, tmp_path):
    cloud = small_cloud(80, seed=4)
    cams = _orbit_cameras(3)
    cameras_json = tmp_path / "cameras.json"
    _write_cameras_json(cameras_json, cams)
    pose, intr = cams[1]
    photo = _reference_for(cloud, pose, intr)

    canvas = make_canvas(200, 150)  # another size and aspect: the jump must still match the photo
    canvas.load(cloud)
    canvas.set_training_cameras(load_training_cameras(cameras_json))
    chosen = canvas.jump_to_camera(1)
    assert chosen.name == "img001"
    image = canvas.render_image((intr.width, intr.height))
    value = psnr(image, photo)
    print(f"training-camera jump PSNR (cameras.json:1): {value:.2f} dB")
    assert value >= PSNR_MIN
    # stepping goes on to the next camera and wraps around
    assert canvas.next_camera().name == "img002"
    assert canvas.next_camera().name == "img000"
    assert canvas.previous_camera().name == "img002"


def test_screenshot_cli_from_training_camera(tmp_path, qapp):
    cloud = small_cloud(50, seed=7)
    ply = tmp_path / "scene.ply"
    write_splat_ply(ply, cloud)
    cams = _orbit_cameras(2)
    cameras_json = tmp_path / "cameras.json"
    _write_cameras_json(cameras_json, cams)
    out = tmp_path / "shot.png"
    code, stdout, _ = run_cli(cli_view, [str(ply), "--screenshot", str(out), "--camera", f"{cameras_json}:0"])
    assert code == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    pose, intr = cams[0]
    assert image.shape == (intr.height, intr.width, 3)
    value = psnr(image, _reference_for(cloud, pose, intr))
    print(f"CLI screenshot PSNR (cameras.json:0): {value:.2f} dB")
    assert value >= PSNR_MIN
    assert "wrote" in stdout


def test_jump_to_colmap_camera_with_offset_principal_point(make_canvas, tmp_path):
    cloud = small_cloud(60, seed=9)
    pose, _ = _orbit_cameras(4)[2]
    intr = Intrinsics(128, 96, 110.0, 104.0, 70.0, 44.0)  # PINHOLE, fx != fy, off-centre
    model = ColmapModel(
        cameras={1: Camera(1, "PINHOLE", intr.width, intr.height, np.array([intr.fx, intr.fy, intr.cx, intr.cy]))},
        images={5: ColmapImage(5, _rotmat_to_qvec(pose.R), pose.t, 1, "b.jpg"),
                3: ColmapImage(3, _rotmat_to_qvec(Pose.look_at(np.array([3.0, 0, 0]), np.zeros(3)).R),
                               Pose.look_at(np.array([3.0, 0, 0]), np.zeros(3)).t, 1, "a.jpg")},
        points=Points3D.without_tracks(np.arange(3), np.zeros((3, 3)), np.zeros((3, 3)), np.zeros(3)),
    )  # fmt: skip
    write_model(model, tmp_path / "sparse")
    canvas = make_canvas(128, 96)
    canvas.load(cloud)
    canvas.set_training_cameras(load_training_cameras(tmp_path / "sparse"))
    assert canvas.jump_to_camera(1).name == "b.jpg"  # sorted by image name
    image = canvas.render_image((intr.width, intr.height))
    value = psnr(image, _reference_for(cloud, pose, intr))
    print(f"training-camera jump PSNR (COLMAP PINHOLE): {value:.2f} dB")
    assert value >= PSNR_MIN


@pytest.mark.parametrize(("eye", "sh_degree"), [((3.0, -2.0, 1.5), 3), ((1.2, -0.8, 0.6), 3), ((0.5, 3.2, 0.8), 1)])
def test_cpu_compositor_matches_the_reference(make_canvas, eye, sh_degree):
    need_numba()
    cloud = small_cloud(60, seed=1)
    width, height = 160, 120
    canvas = make_canvas(width, height, sh_degree=sh_degree, compositor="cpu")
    canvas.load(cloud)
    pose = Pose.look_at(np.array(eye), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    intr = Intrinsics.from_fov_y(width, height, 50.0)
    canvas.set_camera(pose=pose, intrinsics=intr)
    image = canvas.render_image()
    assert canvas.stats.composite_ms > 0, "the frame was not composited on the CPU"
    value = psnr(image, _reference_for(cloud, pose, intr, sh_degree))
    print(f"parity PSNR, CPU compositor, eye={eye}: {value:.2f} dB")
    assert value >= PSNR_MIN
    canvas.compositor = "gl"
    assert psnr(canvas.render_image(), image) > 45  # the same image as OpenGL draws
