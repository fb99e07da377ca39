"""Rotations and pinhole cameras, written once (`splatstudio.model.geometry`, issue 22 item 5): the formats,
the viewer, the sample scenes and the hand edits share these."""

from __future__ import annotations

import math

import numpy as np
import pytest

from splatstudio.model.geometry import (
    Intrinsics,
    matrix_to_quaternion,
    quaternion_multiply,
    quaternion_to_matrix,
    quaternions_to_matrices,
)


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = math.radians(degrees)
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def test_qvec_90_degrees_about_z() -> None:
    half = np.sqrt(0.5)
    np.testing.assert_allclose(quaternion_to_matrix([half, 0, 0, half]), [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
                               atol=1e-12)


def test_matrix_to_quaternion_gives_the_rotation_back():
    for axis, angle in (([1, 0, 0], 179.9), ([0, 1, 0], 180.0), ([1, 1, 1], 5.0), ([0, 0, 1], 0.0)):
        r = _rotation(axis, angle)
        w, x, y, z = matrix_to_quaternion(r)
        assert w >= 0
        back = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                         [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                         [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
        assert np.allclose(back, r, atol=1e-9)
        assert np.allclose(quaternion_to_matrix(matrix_to_quaternion(r)), r, atol=1e-9)


def test_one_quaternion_and_many_give_the_same_matrices():
    quats = np.random.default_rng(4).normal(size=(50, 4)) * np.random.default_rng(5).uniform(0.1, 10, (50, 1))
    many = quaternions_to_matrices(quats)
    for q, m in zip(quats, many, strict=True):
        np.testing.assert_allclose(quaternion_to_matrix(q), m, rtol=0, atol=1e-15)
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(m) == pytest.approx(1.0)


def test_a_zero_quaternion_is_the_identity_among_many_and_refused_alone():
    np.testing.assert_array_equal(quaternions_to_matrices(np.zeros((2, 4))), np.stack([np.eye(3)] * 2))
    for bad in ([0, 0, 0, 0], [1, 0, 0, float("nan")], [1, 0, 0]):
        with pytest.raises(ValueError, match="quaternion"):
            quaternion_to_matrix(bad)


def test_the_hamilton_product_composes_rotations():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=4), rng.normal(size=(3, 4))
    product = quaternion_multiply(a, b)
    for qb, q in zip(b, product, strict=True):
        np.testing.assert_allclose(quaternion_to_matrix(q), quaternion_to_matrix(a) @ quaternion_to_matrix(qb),
                                   atol=1e-12)


def test_intrinsics_from_fov_and_scaling():
    intr = Intrinsics.from_fov_y(640, 480, 60.0)
    assert intr.fov_y_deg == pytest.approx(60.0)
    assert intr.tan_half_fov[1] == pytest.approx(math.tan(math.radians(30)))
    scaled = Intrinsics(100, 80, 120.0, 100.0, 40.0, 30.0).scaled_to(200, 160)
    assert (scaled.fx, scaled.fy, scaled.cx, scaled.cy) == pytest.approx((240.0, 200.0, 80.0, 60.0))
    # a viewport narrower than the photo (the 3D view beside the photo) keeps the photo's whole width
    narrow = Intrinsics(400, 300, 300.0, 300.0, 200.0, 150.0).scaled_to(200, 300)
    assert (narrow.fx, narrow.cx, narrow.cy) == pytest.approx((150.0, 100.0, 150.0))
    assert narrow.width / 2 / narrow.fx == pytest.approx(200 / 300)  # the same horizontal field of view
    wide = Intrinsics(400, 300, 300.0, 300.0, 200.0, 150.0).scaled_to(800, 300)
    assert (wide.fy, wide.cy) == pytest.approx((300.0, 150.0))  # the same vertical field of view


def test_the_two_field_of_view_constructors():
    across = Intrinsics.from_fov_x(640, 480, 60.0)  # a photo's horizontal field of view
    assert across.tan_half_fov[0] == pytest.approx(math.tan(math.radians(30)))
    assert (across.fx, across.cx, across.cy) == (across.fy, 320.0, 240.0)
    upright = Intrinsics.from_fov_y(640, 480, across.fov_y_deg)  # the viewer's vertical one, the same camera
    assert (upright.fx, upright.fy) == pytest.approx((across.fx, across.fy))
    assert isinstance(Intrinsics.from_fov_y(64.0, 48.0, 50.0).width, int)
    np.testing.assert_allclose(across.matrix, [[across.fx, 0, 320], [0, across.fy, 240], [0, 0, 1]])
    assert across.to_dict() == {"model": "PINHOLE", "width": 640, "height": 480, "fx": across.fx, "fy": across.fy,
                                "cx": 320.0, "cy": 240.0}
