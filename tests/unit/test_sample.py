"""Tests of the synthetic photo-set generator (splatstudio.model.sample)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatstudio.model import sample as sm

WIDTH, HEIGHT, COUNT = 160, 120, 6


@pytest.fixture(scope="module")
def scene() -> sm.SampleScene:
    return sm.build_scene(0)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> sm.SampleSet:
    return sm.generate_sample(tmp_path_factory.mktemp("sample"), COUNT, WIDTH, HEIGHT, seed=0)


def _gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=float)


def test_files_count_and_size(generated: sm.SampleSet) -> None:
    names = sorted(p.name for p in generated.directory.iterdir())
    assert names == [f"IMG_{i:04d}.jpg" for i in range(1, COUNT + 1)] + [sm.GROUND_TRUTH_NAME]
    for path in generated.image_paths:
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.size == (WIDTH, HEIGHT)
            assert image.mode == "RGB"


def test_ground_truth_round_trip(generated: sm.SampleSet) -> None:
    loaded = sm.load_ground_truth(generated.directory / sm.GROUND_TRUTH_NAME)
    assert loaded.intrinsics == generated.intrinsics
    assert loaded.seed == 0
    assert [c.name for c in loaded.cameras] == [c.name for c in generated.cameras]
    for a, b in zip(loaded.cameras, generated.cameras, strict=True):
        np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-12)
        np.testing.assert_allclose(a.translation, b.translation, atol=1e-12)
    document = json.loads((generated.directory / sm.GROUND_TRUTH_NAME).read_text())
    assert "x_cam = R @ x_world + t" in document["convention"]
    assert document["world_up"] == [0.0, 0.0, 1.0]
    np.testing.assert_allclose(document["images"][0]["center"], generated.cameras[0].center)
    assert sm.load_ground_truth(generated.directory).cameras[0].name == "IMG_0001.jpg"


def test_load_ground_truth_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError):
        sm.load_ground_truth(path)


def test_same_seed_gives_identical_bytes(generated: sm.SampleSet, tmp_path: Path) -> None:
    again = sm.generate_sample(tmp_path, COUNT, WIDTH, HEIGHT, seed=0)
    for a, b in zip(generated.image_paths, again.image_paths, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / sm.GROUND_TRUTH_NAME).read_bytes() == (generated.directory / sm.GROUND_TRUTH_NAME).read_bytes()


def test_different_seeds_differ(scene: sm.SampleScene) -> None:
    intrinsics = sm.Intrinsics.from_fov_x(WIDTH, HEIGHT, sm.HORIZONTAL_FOV_DEG)
    camera = sm.orbit_cameras(4, seed=0)[0]
    image_a = sm.render_view(scene, camera, intrinsics).astype(int)
    image_b = sm.render_view(sm.build_scene(1), camera, intrinsics).astype(int)
    assert np.abs(image_a - image_b).mean() > 10.0
    centers_a = [c.center for c in sm.orbit_cameras(4, seed=0)]
    centers_b = [c.center for c in sm.orbit_cameras(4, seed=1)]
    assert not np.allclose(centers_a, centers_b)


def test_cameras_orbit_and_look_at_the_toy(generated: sm.SampleSet) -> None:
    k = generated.intrinsics
    assert (k.cx, k.cy) == (WIDTH / 2, HEIGHT / 2)
    assert k.fx == pytest.approx(0.5 * WIDTH / np.tan(np.radians(sm.HORIZONTAL_FOV_DEG / 2)))
    for camera in generated.cameras:
        rotation = camera.rotation
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)
        assert np.linalg.norm(camera.center - sm.LOOK_AT) == pytest.approx(sm.ORBIT_DISTANCE)
        pixels, depth = camera.project(np.array([sm.LOOK_AT, sm.LOOK_AT + [0.0, 0.0, 0.3]]), k)
        np.testing.assert_allclose(pixels[0], [k.cx, k.cy], atol=1e-9)
        assert depth[0] == pytest.approx(sm.ORBIT_DISTANCE)
        assert pixels[1, 1] < pixels[0, 1], "world +z must point up in the image"
    heights = {round(float(c.center[2]), 6) for c in generated.cameras}
    assert len(heights) == len(sm.RING_ELEVATIONS_DEG)


def test_orbit_cameras_rejects_zero_count() -> None:
    with pytest.raises(ValueError):
        sm.orbit_cameras(0)


def test_known_surface_point_projects_onto_rendered_depth(generated: sm.SampleSet, scene: sm.SampleScene) -> None:
    """The big sphere's point facing a camera projects in-image, at the rendered depth."""
    sphere = scene.objects[1]
    k = generated.intrinsics
    for camera in generated.cameras:
        toward = camera.center - sphere.center
        point = sphere.center + sphere.radius * toward / np.linalg.norm(toward)
        (pixel,), (depth_expected,) = camera.project(point, k)
        col, row = int(pixel[0]), int(pixel[1])
        assert 0 <= col < k.width and 0 <= row < k.height
        depth, ids = sm.render_depth(scene, camera, k)
        assert ids[row, col] == 1
        assert depth[row, col] == pytest.approx(depth_expected, rel=2e-3)


def test_rendered_depth_lies_on_surfaces(generated: sm.SampleSet, scene: sm.SampleScene) -> None:
    """Back-projecting the depth map through the ground-truth camera lands on the hit surface."""
    k = generated.intrinsics
    camera = generated.cameras[2]
    depth, ids = sm.render_depth(scene, camera, k)
    rows, cols = np.mgrid[0 : k.height, 0 : k.width] + 0.5
    cam_points = np.stack([(cols - k.cx) / k.fx * depth, (rows - k.cy) / k.fy * depth, depth], axis=-1)
    world = (cam_points.reshape(-1, 3) - camera.translation) @ camera.rotation
    ids = ids.ravel()
    for index, shape in enumerate(scene.objects):
        mine = ids == index
        np.testing.assert_allclose(shape.distance(world[mine]), 0.0, atol=1e-6)
    assert (ids < scene.ground_id).mean() > 0.1
    np.testing.assert_allclose(world[ids == scene.ground_id, 2], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(world[ids == scene.dome_id], axis=1), sm.DOME_RADIUS, rtol=1e-6)
    assert (ids == scene.ground_id).mean() > 0.2


def test_objects_inside_bounds_and_texture_volume(scene: sm.SampleScene) -> None:
    grid = scene.object_texture
    lower = grid.lower
    upper = lower + grid.cell * (np.asarray(grid.rgb.shape[:3]) - 1)
    rng = np.random.default_rng(0)
    points = rng.uniform(lower - 0.5, upper + 0.5, size=(200_000, 3))
    for shape in scene.objects:
        surface = points[np.abs(shape.distance(points)) < 0.01]
        assert len(surface) > 100
        assert np.all(sm.OBJECT_BOUNDS.distance(surface) < 0.0)
        assert np.all((surface > lower) & (surface < upper))
        assert np.all(grid.lookup(surface).max(axis=1) > 0.0), "surface voxels must be textured"


def test_images_are_richly_textured(generated: sm.SampleSet) -> None:
    for path in generated.image_paths:
        gray = _gray(path)
        assert gray.std() > 25.0
        assert np.abs(np.diff(gray, axis=1)).mean() > 4.0
        blocks = gray[: HEIGHT // 8 * 8, : WIDTH // 8 * 8].reshape(HEIGHT // 8, 8, WIDTH // 8, 8)
        flat_fraction = (blocks.std(axis=(1, 3)) < 2.0).mean()
        assert flat_fraction < 0.05, f"{path.name}: {flat_fraction:.1%} of 8x8 blocks are flat"


def test_progress_reports_monotonic_fractions(tmp_path: Path) -> None:
    calls: list[tuple[float, str]] = []
    sm.generate_sample(tmp_path, 2, 32, 24, seed=3, progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0)
    assert all(isinstance(m, str) and m for _, m in calls)
    assert not list(tmp_path.glob(".*.tmp"))


def test_rejects_tiny_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        sm.generate_sample(tmp_path, 2, 8, 8)
