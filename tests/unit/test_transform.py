"""Orientation and scale (issue 23, item 3): the similarity transform of a cloud — centres, quaternions, log
scales and SH bands 1-3 — and the level / ground / origin / scale constructors, with their refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _clouds import random_cloud

from splatstudio.model.transform import (
    UP,
    Similarity,
    TransformError,
    distance_between,
    level_from_ground,
    level_from_up,
    origin_at,
    rotation_between,
    scale_between,
    sh_basis,
    transform_cloud,
)
from splatstudio.render.sh import sh_basis as render_sh_basis
from splatstudio.render.sh import sh_to_rgb


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = math.radians(degrees)
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def _covariances(cloud) -> np.ndarray:
    q = cloud.normalized_rotations().astype(np.float64)
    w, x, y, z = q.T
    r = np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                  np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                  np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], 1)
    m = r * np.exp(cloud.scales.astype(np.float64))[:, None, :]
    return m @ m.transpose(0, 2, 1)


SIM = Similarity(2.5, _rotation([1.0, 2.0, -0.5], 37.0), np.array([0.3, -1.0, 4.0]))


def test_a_similarity_composes_inverts_and_round_trips_through_its_matrix():
    other = Similarity(0.5, _rotation([0, 0, 1], 90), np.array([1.0, 0, 0]))
    p = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 2.0]])
    assert np.allclose(SIM.then(other).apply(p), other.apply(SIM.apply(p)))
    assert np.allclose(SIM.inverse().apply(SIM.apply(p)), p)
    back = Similarity.from_matrix(json.loads(json.dumps(SIM.matrix.tolist())))
    assert np.allclose(back.matrix, SIM.matrix) and back.scale == pytest.approx(2.5)
    assert SIM.then(SIM.inverse()).is_identity(1e-9)
    assert "turned 37.00°" in SIM.describe() and "scaled x2.5" in SIM.describe()


@pytest.mark.parametrize("matrix", [np.diag([1.0, 1.0, -1.0, 1.0]), np.diag([1.0, 2.0, 1.0, 1.0]),
                                    np.zeros((4, 4)), np.full((4, 4), np.nan), [[1, 2], [3, 4]], "four"])
def test_what_is_not_a_similarity_is_refused_in_words(matrix):
    with pytest.raises(TransformError, match="transform|rotation|matrix"):
        Similarity.from_matrix(matrix)


def test_a_cloud_is_moved_turned_and_scaled_with_its_covariances():
    cloud = random_cloud(200, sh_degree=0, seed=4)
    out = transform_cloud(cloud, SIM)
    assert np.allclose(out.positions, SIM.apply(cloud.positions), atol=1e-4)
    assert np.allclose(out.scales, cloud.scales + math.log(2.5), atol=1e-5)
    r = SIM.rotation
    expected = (2.5 ** 2) * r[None] @ _covariances(cloud) @ r.T[None]
    got = _covariances(out)
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-9)
    # stored quaternions keep their length (a reader may not normalise); opacity and base colour unchanged
    assert np.allclose(np.linalg.norm(out.rotations, axis=1), np.linalg.norm(cloud.rotations, axis=1), rtol=1e-5)
    assert np.array_equal(out.opacities, cloud.opacities) and np.array_equal(out.sh_dc, cloud.sh_dc)
    assert transform_cloud(cloud, Similarity()) is cloud


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_view_dependent_colour_turns_with_the_scene(degree):
    cloud = random_cloud(300, sh_degree=degree, seed=degree)
    out = transform_cloud(cloud, SIM)
    rng = np.random.default_rng(9)
    for _ in range(3):
        eye = rng.normal(0.0, 20.0, 3)
        before = sh_to_rgb(cloud.sh_dc, cloud.sh_rest, cloud.positions, eye, clamp_max=None)
        after = sh_to_rgb(out.sh_dc, out.sh_rest, out.positions, SIM.apply(eye), clamp_max=None)
        assert np.abs(after - before).max() < 2e-4
    # without the SH rotation the colours would differ: the test can fail
    unturned = sh_to_rgb(cloud.sh_dc, cloud.sh_rest, out.positions, SIM.apply(eye), clamp_max=None)
    assert np.abs(unturned - before).max() > 1e-2


def test_the_sh_basis_is_the_viewers():
    d = np.random.default_rng(2).normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    assert np.allclose(sh_basis(d), render_sh_basis(d, 3), atol=2e-6)


def test_level_turns_the_up_direction_to_minus_y():
    for up in ([0.0, 0.0, 1.0], [0.2, -0.9, 0.1], [0.0, 1.0, 0.0]):  # the last one is upside down
        level = level_from_up(up)
        assert np.allclose(level.apply_direction(np.asarray(up) / np.linalg.norm(up)), UP, atol=1e-9)
    assert np.allclose(rotation_between(UP, UP), np.eye(3))


def test_a_ground_plane_through_three_points_ends_level_at_height_zero():
    tilt = Similarity(1.0, _rotation([1, 0, 0.3], 25.0), np.array([0.0, 2.0, 0.0]))
    ground = tilt.apply(np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 2.0]]))  # the y = 0 plane, tilted
    above = tilt.apply(np.array([0.5, -1.0, 0.5]))  # a point above it (up is -y)
    level = level_from_ground(*ground, up_hint=tilt.apply_direction(UP))
    assert np.allclose(level.apply(ground)[:, 1], 0.0, atol=1e-9)
    assert level.apply(above)[1] == pytest.approx(-1.0)
    flipped = level_from_ground(*ground, up_hint=-tilt.apply_direction(UP))  # the hint picks the side
    assert flipped.apply(above)[1] == pytest.approx(1.0)
    with pytest.raises(TransformError, match="on one line"):
        level_from_ground([0, 0, 0], [1, 1, 1], [2, 2, 2])
    with pytest.raises(TransformError, match="on one line"):
        level_from_ground([1, 1, 1], [1, 1, 1], [1, 1, 1])


def test_origin_and_scale_from_picked_points():
    p, q = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0])
    assert np.allclose(origin_at(p).apply(p), 0.0)
    scale = scale_between(p, q, 3.0)
    assert distance_between(p, q, scale) == pytest.approx(3.0)
    assert distance_between(p, q) == pytest.approx(2.0)
    with pytest.raises(TransformError, match="more than 0"):
        scale_between(p, q, 0.0)
    with pytest.raises(TransformError, match="more than 0"):
        scale_between(p, q, float("nan"))
    with pytest.raises(TransformError, match="same point"):
        scale_between(p, p, 2.0)
    with pytest.raises(TransformError, match="a number"):
        scale_between(p, q, "two metres")
