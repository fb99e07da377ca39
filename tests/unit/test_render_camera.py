"""Camera math: poses, projection, orbit / fly controller, training cameras, auto-orient."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from splatstudio.io.colmap import Camera, ColmapModel, Points3D, write_model
from splatstudio.io.colmap import Image as ColmapImage
from splatstudio.render import camera as cam


def test_look_at_centre_axes_and_projection_of_the_target():
    pose = cam.Pose.look_at(np.array([3.0, -4.0, 2.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]))
    assert np.allclose(pose.center, [3, -4, 2])
    assert np.allclose(pose.R @ pose.R.T, np.eye(3))
    assert np.linalg.det(pose.R) == pytest.approx(1.0)
    target_cam = pose.R @ np.array([0.0, 0.0, 1.0]) + pose.t
    assert np.allclose(target_cam[:2], 0.0) and target_cam[2] > 0
    assert pose.up[2] > 0  # world up points up in the image
    above = pose.R @ np.array([0.0, 0.0, 2.0]) + pose.t
    assert above[1] < 0  # y is down in camera space


def test_from_c2w_round_trip():
    pose = cam.Pose.look_at(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    again = cam.Pose.from_c2w(pose.R.T, pose.center)
    assert np.allclose(again.R, pose.R) and np.allclose(again.t, pose.t)
    assert np.allclose(pose.view_matrix()[:3, :3], pose.R)


def test_projection_matrix_maps_pixels_to_ndc():
    intr = cam.Intrinsics(200, 100, 150.0, 140.0, 90.0, 55.0)
    p = cam.projection_matrix(intr, 0.1, 50.0)
    point = np.array([0.4, -0.3, 2.0, 1.0])
    clip = p @ point
    ndc = clip[:3] / clip[3]
    u = intr.fx * point[0] / point[2] + intr.cx
    v = intr.fy * point[1] / point[2] + intr.cy
    assert ndc[0] == pytest.approx(2 * u / intr.width - 1)
    assert ndc[1] == pytest.approx(1 - 2 * v / intr.height)
    near = p @ np.array([0, 0, 0.1, 1.0])
    far = p @ np.array([0, 0, 50.0, 1.0])
    assert near[2] / near[3] == pytest.approx(-1.0) and far[2] / far[3] == pytest.approx(1.0)


def test_orbit_keeps_distance_and_set_from_pose_round_trips():
    orbit = cam.OrbitCamera(target=np.array([1.0, 2.0, 0.5]), distance=4.0, yaw=0.3, pitch=0.2)
    orbit.orbit(0.5, 0.1)
    pose = orbit.pose()
    assert np.linalg.norm(pose.center - orbit.target) == pytest.approx(4.0)
    other = cam.OrbitCamera(distance=4.0)
    other.set_from_pose(pose)
    assert other.yaw == pytest.approx(orbit.yaw) and other.pitch == pytest.approx(orbit.pitch)
    assert np.allclose(other.target, orbit.target)
    orbit.orbit(0.0, 10.0)
    assert orbit.pitch < math.pi / 2  # never flips over the pole


def test_pan_zoom_fly_and_look():
    orbit = cam.OrbitCamera(distance=5.0, yaw=0.0, pitch=0.0)
    pose = orbit.pose()
    orbit.pan(1.0, 0.0)
    assert np.allclose(orbit.target, pose.right)
    orbit.zoom(0.5)
    assert orbit.distance == pytest.approx(2.5)
    eye = orbit.eye
    orbit.fly(forward=1.0)
    assert np.allclose(orbit.eye - eye, orbit.pose().forward)
    eye = orbit.eye
    orbit.look(0.4, 0.0)
    assert np.allclose(orbit.eye, eye)  # fly look turns around the eye


def test_frame_fits_the_sphere():
    orbit = cam.OrbitCamera(fov_y_deg=60.0)
    orbit.frame(np.array([1.0, 1.0, 1.0]), 2.0)
    assert orbit.distance == pytest.approx(4.0)
    centre, radius = cam.scene_frame(np.random.default_rng(0).uniform(-1, 1, (1000, 3)))
    assert np.allclose(centre, 0.0, atol=0.1) and 1.4 < radius < 1.8


def _json_entry(pose: cam.Pose, intr: cam.Intrinsics, i: int) -> dict:
    return {"id": i, "img_name": f"im{i}", "width": intr.width, "height": intr.height,
            "position": pose.center.tolist(), "rotation": pose.R.T.tolist(), "fy": intr.fy, "fx": intr.fx}  # fmt: skip


def test_cameras_json_entries_follow_the_reference_convention(tmp_path):
    pose = cam.Pose.look_at(np.array([2.0, 1.0, 3.0]), np.zeros(3))
    intr = cam.Intrinsics(320, 240, 300.0, 310.0, 160.0, 120.0)
    path = tmp_path / "cameras.json"
    path.write_text(
        json.dumps([_json_entry(pose, intr, 0), _json_entry(cam.Pose.look_at(np.ones(3) * 4, np.zeros(3)), intr, 1)])
    )
    cams = cam.load_training_cameras(path)
    assert [c.name for c in cams] == ["im0", "im1"]
    assert np.allclose(cams[0].pose.R, pose.R) and np.allclose(cams[0].pose.t, pose.t)
    assert cams[0].intrinsics == intr
    assert cam.camera_from_spec(f"{path}:1").name == "im1"
    assert cam.camera_from_spec(str(path)).name == "im0"
    with pytest.raises(cam.CameraSpecError, match="out of range"):
        cam.camera_from_spec(f"{path}:5")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(cam.CameraSpecError):
        cam.load_training_cameras(tmp_path / "bad.json")


def test_colmap_cameras_sorted_by_name(tmp_path):
    cameras = {1: Camera(1, "SIMPLE_RADIAL", 100, 80, np.array([90.0, 48.0, 41.0, 0.01])),
               2: Camera(2, "PINHOLE", 100, 80, np.array([95.0, 96.0, 50.0, 40.0]))}  # fmt: skip
    images = {7: ColmapImage(7, np.array([1.0, 0, 0, 0]), np.array([0.0, 0, 3]), 2, "b.png"),
              3: ColmapImage(3, np.array([0.0, 1, 0, 0]), np.array([0.0, 0, 4]), 1, "a.png")}  # fmt: skip
    model = ColmapModel(
        cameras, images, Points3D.without_tracks(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    )
    write_model(model, tmp_path / "sparse")
    cams = cam.load_training_cameras(tmp_path / "sparse")
    assert [c.name for c in cams] == ["a.png", "b.png"]
    assert cams[0].intrinsics == cam.Intrinsics(100, 80, 90.0, 90.0, 48.0, 41.0)
    assert np.allclose(cams[0].pose.R, np.diag([1.0, -1.0, -1.0]))  # 180 degrees about x
    assert np.allclose(cams[1].pose.center, [0, 0, -3])
    assert cam.camera_from_spec(f"{tmp_path / 'sparse'}:1").name == "b.png"


def test_average_up_orients_the_scene():
    ups = []
    for angle in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        eye = np.array([np.cos(angle), np.sin(angle), 0.3]) * 4
        ups.append(cam.Pose.look_at(eye, np.zeros(3), np.array([0.0, 1.0, 0.2])))
    up = cam.average_up(ups)
    assert np.linalg.norm(up) == pytest.approx(1.0)
    assert up @ np.array([0.0, 1.0, 0.2]) / np.linalg.norm([0.0, 1.0, 0.2]) > 0.9
    assert np.allclose(cam.average_up([]), [0, 0, 1])


def test_parse_camera_spec():
    assert cam.parse_camera_spec("a/cameras.json:12") == (cam.Path("a/cameras.json"), 12)
    assert cam.parse_camera_spec("sparse/0") == (cam.Path("sparse/0"), None)
    assert cam.parse_camera_spec("sparse/0:3") == (cam.Path("sparse/0"), 3)


def _ring(center, radius=4.0, count=8, height=-1.0):
    """Training cameras on a ring around `center`, looking at it, with -y up (COLMAP's frame)."""
    cameras = []
    for k in range(count):
        angle = 2 * math.pi * k / count
        eye = np.asarray(center) + [radius * math.cos(angle), height, radius * math.sin(angle)]
        pose = cam.Pose.look_at(eye, center, up=(0.0, -1.0, 0.0))
        cameras.append(cam.TrainingCamera(f"{k:02d}.jpg", pose, cam.Intrinsics.from_fov_y(160, 120, 60.0)))
    return cameras


def test_the_point_a_ring_of_cameras_looks_at():
    center = np.array([1.0, 0.5, 3.0])
    assert np.allclose(cam.look_at_point([c.pose for c in _ring(center)]), center, atol=1e-6)
    parallel = [cam.Pose.look_at(np.array([x, 0.0, 0.0]), np.array([x, 0.0, 1.0]), (0.0, -1.0, 0.0))
                for x in (0.0, 1.0, 2.0)]
    assert cam.look_at_point(parallel) is None  # a forward-facing capture: no point stands out


def test_home_view_is_the_first_photos_view_around_the_subject():
    """Issue 25, item 4: a scene opens as its first photo saw it, orbiting what the photos look at."""
    center = np.array([1.0, 0.5, 3.0])
    cameras = _ring(center)
    home = cam.home_view(cameras, np.zeros(3), 10.0)
    pose = home.pose()
    assert np.allclose(home.target, center, atol=1e-6)
    assert np.allclose(pose.center, cameras[0].pose.center, atol=1e-6)
    assert np.allclose(pose.forward, cameras[0].pose.forward, atol=1e-6)
    assert np.dot(home.up, [0.0, -1.0, 0.0]) > 0.9


def test_home_view_without_cameras_looks_along_z_with_minus_y_up_and_fills_the_view():
    center, half = np.array([0.0, 0.0, 5.0]), np.array([2.0, 1.0, 0.5])
    home = cam.home_view([], center, float(np.linalg.norm(half)), half_extent=half)
    pose = home.pose()
    assert np.allclose(pose.forward, [0.0, 0.0, 1.0], atol=1e-6) and np.allclose(home.up, [0.0, -1.0, 0.0])
    assert np.allclose(home.target, center)
    # the box's near face fits a 4:3 view and fills it across
    near = home.distance - half[2]
    tangent = math.tan(math.radians(home.fov_y_deg) / 2)
    assert half[0] / (near * tangent * 4 / 3) == pytest.approx(1.0)
    assert half[1] / (near * tangent) < 1.0


def test_home_view_comes_closer_than_a_distant_first_photo():
    center = np.array([1.0, 0.5, 3.0])
    far = _ring(center, radius=400.0)
    home = cam.home_view(far, center, 1.0, half_extent=np.array([0.5, 0.5, 0.5]))
    assert home.distance < 10.0 and np.allclose(home.pose().forward, far[0].pose.forward, atol=1e-6)


def test_scene_frame_follows_the_detail_not_the_soft_background():
    rng = np.random.default_rng(0)
    core = rng.normal([0.0, 0.0, 5.0], 0.5, (2000, 3))
    background = rng.normal([0.0, 0.0, 5.0], 30.0, (2000, 3))
    positions = np.concatenate([core, background])
    opacities = np.concatenate([np.full(2000, 3.0), np.full(2000, -1.0)])  # opaque detail, faint backdrop
    log_scales = np.concatenate([np.full((2000, 3), -4.0), np.full((2000, 3), 1.0)])
    center, radius = cam.scene_frame(positions, opacities, log_scales)
    assert np.linalg.norm(center - [0.0, 0.0, 5.0]) < 0.2 and radius < 3.0
    assert cam.scene_frame(positions)[1] > 30.0  # without them: every position's box
