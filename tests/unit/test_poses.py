"""Tests of pose comparison up to a similarity (splatstudio.model.poses)."""

from __future__ import annotations

import numpy as np
import pytest

from splatstudio.model.poses import pose_errors, rotation_angle_deg, umeyama


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _axis_angle(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(degrees)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _orbit_poses(count: int = 12) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Cameras on a circle looking at the origin (world up +z)."""
    poses = {}
    for i in range(count):
        angle = 2 * np.pi * i / count
        center = np.array([4 * np.cos(angle), 4 * np.sin(angle), 1.5 + 0.5 * (i % 2)])
        forward = -center / np.linalg.norm(center)
        right = np.cross(forward, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        rotation = np.stack([right, np.cross(forward, right), forward])
        poses[f"IMG_{i:04d}.jpg"] = (rotation, -rotation @ center)
    return poses


def _transform(poses: dict, scale: float, rotation: np.ndarray, translation: np.ndarray) -> dict:
    """Express the poses in a new world frame ``x_new = scale * rotation @ x + translation``."""
    out = {}
    for name, (r, t) in poses.items():
        center = -r.T @ t
        r_new = r @ rotation.T
        out[name] = (r_new, -r_new @ (scale * rotation @ center + translation))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_umeyama_recovers_similarity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((20, 3))
    scale, rotation, translation = rng.uniform(0.1, 10), _random_rotation(rng), rng.standard_normal(3)
    dst = scale * src @ rotation.T + translation
    s, r, t = umeyama(src, dst)
    assert s == pytest.approx(scale, rel=1e-10)
    np.testing.assert_allclose(r, rotation, atol=1e-10)
    np.testing.assert_allclose(t, translation, atol=1e-9)


def test_umeyama_rigid_and_reflection_free() -> None:
    rng = np.random.default_rng(7)
    src = rng.standard_normal((10, 3))
    rotation = _random_rotation(rng)
    s, r, t = umeyama(src, 3.0 * src @ rotation.T, with_scale=False)
    assert s == 1.0
    np.testing.assert_allclose(r, rotation, atol=1e-10)
    mirrored = src * [1, 1, -1]
    _, r_m, _ = umeyama(src, mirrored)
    assert np.linalg.det(r_m) == pytest.approx(1.0)


def test_umeyama_rejects_degenerate_input() -> None:
    with pytest.raises(ValueError):
        umeyama(np.zeros((2, 3)), np.zeros((2, 3)))
    line = np.outer(np.arange(5.0), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        umeyama(line, line)
    with pytest.raises(ValueError):
        umeyama(np.zeros((4, 3)), np.zeros((5, 3)))


def test_rotation_angle() -> None:
    assert rotation_angle_deg(np.eye(3)) == pytest.approx(0.0)
    assert rotation_angle_deg(_axis_angle(np.array([1.0, 2.0, 3.0]), 37.0)) == pytest.approx(37.0)
    assert rotation_angle_deg(_axis_angle(np.array([0.0, 0.0, 1.0]), 180.0)) == pytest.approx(180.0)


def test_pose_errors_of_similarity_copy_are_zero() -> None:
    gt = _orbit_poses()
    rng = np.random.default_rng(1)
    est = _transform(gt, 0.37, _random_rotation(rng), rng.standard_normal(3) * 5)
    errors = pose_errors(est, gt)
    assert len(errors.matched) == len(gt) and errors.missing == ()
    assert errors.max_rotation_deg < 1e-6
    assert errors.max_position < 1e-9
    assert errors.scale == pytest.approx(1 / 0.37)


def test_pose_errors_measure_perturbation() -> None:
    gt = _orbit_poses()
    name = "IMG_0003.jpg"
    rotation, translation = gt[name]
    center = -rotation.T @ translation
    turned = _axis_angle(np.array([0.3, -1.0, 0.2]), 2.0) @ rotation
    est = dict(gt)
    est[name] = (turned, -turned @ center)
    errors = pose_errors(est, gt)
    index = errors.matched.index(name)
    assert errors.rotation_errors_deg[index] == pytest.approx(2.0, abs=1e-9)
    assert np.delete(errors.rotation_errors_deg, index).max() < 1e-9
    assert errors.max_position < 1e-12


def test_pose_errors_measure_centre_shift_relative_to_orbit() -> None:
    gt = _orbit_poses(16)
    centers = np.array([-r.T @ t for r, t in gt.values()])
    size = np.mean(np.linalg.norm(centers - centers.mean(axis=0), axis=1))
    rng = np.random.default_rng(3)
    est = {}
    shifts = {}
    for name, (r, t) in gt.items():
        shift = rng.standard_normal(3) * 0.01 * size
        shifts[name] = shift
        est[name] = (r, -r @ (-r.T @ t + shift))
    errors = pose_errors(_transform(est, 2.0, _random_rotation(rng), np.array([1.0, 2.0, 3.0])), gt)
    true_relative = np.array([np.linalg.norm(shifts[n]) / size for n in errors.matched])
    assert errors.median_position == pytest.approx(np.median(true_relative), rel=0.3)
    assert errors.max_position < 0.06
    # The centres are nearly coplanar, so the fitted tilt is only loosely constrained.
    assert errors.median_rotation_deg < 1.5
    assert "16/16 matched" in errors.summary()


def test_pose_errors_lists_missing_images_and_needs_three() -> None:
    gt = _orbit_poses()
    est = {name: pose for name, pose in list(gt.items())[:5]}
    errors = pose_errors(est, gt)
    assert len(errors.matched) == 5 and len(errors.missing) == len(gt) - 5
    with pytest.raises(ValueError):
        pose_errors({name: gt[name] for name in list(gt)[:2]}, gt)
