"""16-bit radix depth sort: back-to-front order, culling behind the camera, subsets."""

from __future__ import annotations

import numpy as np
import pytest

from splatstudio.render import sorting


def _view(eye_z: float = 10.0) -> np.ndarray:
    v = np.eye(4)
    v[2, 3] = eye_z  # camera looking along +z, scene pushed eye_z in front
    return v


def test_random_points_come_back_to_front_up_to_key_resolution():
    rng = np.random.default_rng(0)
    pos = rng.normal(0, 2, (50_000, 3)).astype(np.float32)
    order = sorting.sort_back_to_front(pos, _view())
    assert len(order) == len(pos)
    assert sorted(order.indices.tolist()) == list(range(len(pos)))
    step = (order.far - order.near) / sorting.KEY_MAX
    assert sorting.is_back_to_front(pos, _view(), order.indices, tolerance=step * 1.01)


def test_matches_float_argsort_when_depths_are_well_separated():
    pos = np.zeros((100, 3), dtype=np.float32)
    pos[:, 2] = np.random.default_rng(1).permutation(100)
    order = sorting.sort_back_to_front(pos, _view())
    assert np.array_equal(order.indices, np.argsort(-pos[:, 2]))


def test_splats_behind_the_near_plane_are_dropped():
    pos = np.array([[0, 0, -20.0], [0, 0, 0.0], [0, 0, -9.995], [0, 0, 5.0]], dtype=np.float32)
    order = sorting.sort_back_to_front(pos, _view(), near=0.01)
    assert order.indices.tolist() == [3, 1]
    empty = sorting.sort_back_to_front(pos[:1], _view())
    assert len(empty) == 0


def test_subset_returns_indices_into_the_whole_set():
    pos = np.zeros((10, 3), dtype=np.float32)
    pos[:, 2] = np.arange(10)
    order = sorting.sort_back_to_front(pos, _view(), subset=np.array([2, 7, 5]))
    assert order.indices.tolist() == [7, 5, 2]


def test_keys_and_counting_sort():
    keys = sorting.depth_keys(np.array([1.0, 2.0, 3.0], dtype=np.float32), 1.0, 3.0)
    assert keys[0] == sorting.KEY_MAX and keys[2] == 0  # nearest gets the largest key: drawn last
    assert keys[1] in (32767, 32768)
    k = np.array([5, 1, 5, 0, 1], dtype=np.uint16)
    assert sorting.counting_sort_u16(k).tolist() == [3, 1, 4, 0, 2]  # stable
    with pytest.raises(TypeError):
        sorting.counting_sort_u16(np.array([1.0]))


def test_view_depths_use_the_view_matrix():
    v = np.eye(4)
    v[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # a rotation: depth is -x
    v[2, 3] = 1.0
    depths = sorting.view_depths(np.array([[2.0, 0, 0], [-3.0, 5, 5]]), v)
    assert np.allclose(depths, [-1.0, 4.0])
