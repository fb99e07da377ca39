"""Tests for `splatstudio.model.splatcloud`."""

from __future__ import annotations

import numpy as np
import pytest
from _clouds import clouds, random_cloud
from hypothesis import given
from hypothesis import strategies as st

from splatstudio.model.splatcloud import (
    SH_C0,
    SplatCloud,
    SplatValidationError,
    all_finite,
    degree_for_rest_count,
    logit,
    rgb_to_sh_dc,
    sh_rest_count,
    sigmoid,
)


def test_arrays_are_float32_and_sh_rest_defaults_to_degree_0() -> None:
    cloud = SplatCloud(
        positions=np.zeros((2, 3), dtype=np.float64),
        scales=np.zeros((2, 3)),
        rotations=[[1, 0, 0, 0], [1, 0, 0, 0]],
        opacities=np.zeros((2, 1)),
        sh_dc=np.zeros((2, 3)),
    )
    assert len(cloud) == 2
    assert cloud.sh_rest.shape == (2, 0, 3)
    assert cloud.sh_degree == 0
    assert cloud.opacities.shape == (2,)
    for array in (cloud.positions, cloud.scales, cloud.rotations, cloud.opacities, cloud.sh_dc, cloud.sh_rest):
        assert array.dtype == np.float32
    cloud.validate()


@pytest.mark.parametrize(("degree", "k"), [(0, 0), (1, 3), (2, 8), (3, 15)])
def test_sh_degree_from_rest_count(degree: int, k: int) -> None:
    assert sh_rest_count(degree) == k
    assert degree_for_rest_count(k) == degree
    assert random_cloud(3, sh_degree=degree).sh_degree == degree


def test_invalid_sh_counts_are_rejected() -> None:
    with pytest.raises(ValueError):
        sh_rest_count(4)
    with pytest.raises(ValueError):
        degree_for_rest_count(5)


def test_activations() -> None:
    cloud = SplatCloud(
        positions=np.zeros((3, 3)),
        scales=np.log([[1.0, 2.0, 4.0]] * 3),
        rotations=[[2, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]],
        opacities=[0.0, 100.0, -100.0],
        sh_dc=[[0, 0, 0], [1 / SH_C0, -1 / SH_C0, 0.25 / SH_C0], [0, 0, 0]],
    )
    np.testing.assert_allclose(cloud.activated_scales(), [[1, 2, 4]] * 3, rtol=1e-6)
    with np.errstate(over="raise", invalid="raise"):
        np.testing.assert_allclose(cloud.alphas(), [0.5, 1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(cloud.normalized_rotations(), [[1, 0, 0, 0], [1, 0, 0, 0], [0.5] * 4])
    np.testing.assert_allclose(cloud.colors_rgb(), [[0.5] * 3, [1.0, 0.0, 0.75], [0.5] * 3], atol=1e-6)


def test_tiny_quaternions_normalise_accurately() -> None:
    cloud = random_cloud(2)
    cloud.rotations[:] = [[7.7e-22, 7.7e-22, 7.7e-22, 7.7e-22], [0, 0, 1e-40, 0]]
    np.testing.assert_allclose(cloud.normalized_rotations(), [[0.5] * 4, [0, 0, 1, 0]], rtol=1e-6)


def test_subset_by_mask_and_index() -> None:
    cloud = random_cloud(5, sh_degree=2, normals=True)
    by_mask = cloud.subset(np.array([True, False, True, False, False]))
    by_index = cloud.subset(np.array([0, 2]))
    for part in (by_mask, by_index):
        assert len(part) == 2
        np.testing.assert_array_equal(part.positions, cloud.positions[[0, 2]])
        np.testing.assert_array_equal(part.sh_rest, cloud.sh_rest[[0, 2]])
        np.testing.assert_array_equal(part.normals, cloud.normals[[0, 2]])
    with pytest.raises(ValueError, match="mask"):
        cloud.subset(np.array([True, False]))


def test_with_sh_degree_truncates_and_pads() -> None:
    cloud = random_cloud(4, sh_degree=2)
    lower = cloud.with_sh_degree(1)
    assert lower.sh_degree == 1
    np.testing.assert_array_equal(lower.sh_rest, cloud.sh_rest[:, :3])
    higher = cloud.with_sh_degree(3)
    np.testing.assert_array_equal(higher.sh_rest[:, :8], cloud.sh_rest)
    assert not higher.sh_rest[:, 8:].any()


def test_bounds() -> None:
    cloud = random_cloud(10)
    low, high = cloud.bounds()
    np.testing.assert_array_equal(low, cloud.positions.min(axis=0))
    np.testing.assert_array_equal(high, cloud.positions.max(axis=0))
    with pytest.raises(ValueError, match="empty"):
        SplatCloud.empty().bounds()


def test_empty_cloud_is_valid() -> None:
    cloud = SplatCloud.empty(sh_degree=3)
    cloud.validate()
    assert len(cloud) == 0 and cloud.sh_degree == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("positions", np.zeros((5, 2)), "positions has shape"),
        ("rotations", np.zeros((5, 3)), "rotations has shape"),
        ("opacities", np.zeros(6), "opacities has shape"),
        ("sh_rest", np.zeros((5, 4, 3)), "coefficients per channel"),
        ("sh_rest", np.zeros((5, 3, 1)), "sh_rest has shape"),
        ("normals", np.zeros((5, 2)), "normals has shape"),
    ],
)
def test_validate_rejects_bad_shapes(field: str, value: np.ndarray, message: str) -> None:
    cloud = random_cloud(5)
    setattr(cloud, field, value.astype(np.float32))
    with pytest.raises(SplatValidationError, match=message):
        cloud.validate()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("field", ["positions", "scales", "rotations", "opacities", "sh_dc", "sh_rest"])
def test_validate_rejects_non_finite(field: str, bad: float) -> None:
    cloud = random_cloud(5)
    getattr(cloud, field).reshape(5, -1)[3, 0] = bad
    with pytest.raises(SplatValidationError, match=f"{field} holds 1 non-finite value.*Gaussian 3"):
        cloud.validate()


def test_all_finite() -> None:
    assert all_finite(np.zeros(0, dtype=np.float32))
    assert all_finite(np.full(10, 3e38, dtype=np.float32))  # the float64 sum must not overflow
    assert not all_finite(np.array([1.0, np.nan], dtype=np.float32))
    assert not all_finite(np.array([np.inf, -np.inf], dtype=np.float32))
    assert not all_finite(np.array([1.0, np.inf]))
    assert all_finite(np.arange(5))


@given(st.floats(-30, 30, allow_nan=False))
def test_logit_inverts_sigmoid(x: float) -> None:
    p = sigmoid(np.array([x], dtype=np.float32))
    if 1e-3 < p[0] < 1 - 1e-3:
        np.testing.assert_allclose(logit(p), [x], atol=1e-3)
    assert np.isfinite(logit(p)).all()


def test_rgb_to_sh_dc_inverts_colors() -> None:
    rgb = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    cloud = SplatCloud(np.zeros((1, 3)), np.zeros((1, 3)), [[1, 0, 0, 0]], [0], rgb_to_sh_dc(rgb))
    np.testing.assert_allclose(cloud.colors_rgb(), rgb, atol=1e-6)


@given(clouds())
def test_random_clouds_validate_and_subset(cloud: SplatCloud) -> None:
    cloud.validate()
    half = cloud.subset(np.arange(len(cloud)) % 2 == 0)
    half.validate()
    assert len(half) == (len(cloud) + 1) // 2
    assert half.sh_degree == cloud.sh_degree
    norms = np.linalg.norm(cloud.normalized_rotations(), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    assert ((cloud.alphas() >= 0) & (cloud.alphas() <= 1)).all()
