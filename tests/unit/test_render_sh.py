"""Spherical harmonics of the render layer: reference constants, orthonormality, colours."""

from __future__ import annotations

import numpy as np
import pytest

from splatstudio.render import sh


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.column_stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)])


def test_constants_are_those_of_the_reference_implementation():
    assert sh.SH_C0 == pytest.approx(1 / (2 * np.sqrt(np.pi)))
    assert sh.SH_C1 == pytest.approx(np.sqrt(3 / (4 * np.pi)))
    assert sh.SH_C2[0] == pytest.approx(0.5 * np.sqrt(15 / np.pi))
    assert sh.SH_C2[2] == pytest.approx(0.25 * np.sqrt(5 / np.pi))
    assert sh.SH_C3[1] == pytest.approx(0.5 * np.sqrt(105 / np.pi))
    assert sh.SH_C3[3] == pytest.approx(0.25 * np.sqrt(7 / np.pi))


def test_basis_is_orthonormal_over_the_sphere():
    dirs = _fibonacci_sphere(20_000)
    basis = sh.sh_basis(dirs, 3).astype(np.float64)
    gram = basis.T @ basis * (4 * np.pi / len(dirs))
    assert np.allclose(gram, np.eye(16), atol=2e-3)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_basis_shape_and_first_terms(degree):
    d = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    basis = sh.sh_basis(d, degree)
    assert basis.shape == (2, (degree + 1) ** 2)
    assert np.allclose(basis[:, 0], sh.SH_C0)
    if degree >= 1:  # reference order: -C1 y, C1 z, -C1 x
        assert np.allclose(basis[0, 1:4], [0.0, sh.SH_C1, 0.0])
        assert np.allclose(basis[1, 1:4], [0.0, 0.0, -sh.SH_C1])


def test_eval_sh_matches_a_direct_sum_and_clips_the_degree():
    rng = np.random.default_rng(0)
    dc, rest = rng.normal(size=(5, 3)), rng.normal(size=(5, 15, 3))
    dirs = sh.view_directions(rng.normal(size=(5, 3)), np.zeros(3))
    coeffs = np.concatenate([dc[:, None], rest], axis=1)
    expected = np.einsum("nk,nkc->nc", sh.sh_basis(dirs, 3), coeffs)
    assert np.allclose(sh.eval_sh(dc, rest, dirs), expected, atol=1e-5)
    assert np.allclose(sh.eval_sh(dc, rest, dirs, degree=0), sh.SH_C0 * dc, atol=1e-6)
    assert np.allclose(sh.eval_sh(dc, rest[:, :3], dirs, degree=3), sh.eval_sh(dc, rest, dirs, degree=1), atol=1e-6)


def test_colours_depend_on_the_camera_position_and_are_clamped():
    dc = np.zeros((1, 3), dtype=np.float32)
    rest = np.zeros((1, 3, 3), dtype=np.float32)
    rest[0, 2, 0] = 2.0  # red along -C1 * x
    at = np.zeros((1, 3))
    from_plus_x = sh.sh_to_rgb(dc, rest, at, np.array([5.0, 0, 0]))  # looking along -x
    from_minus_x = sh.sh_to_rgb(dc, rest, at, np.array([-5.0, 0, 0]))
    assert from_plus_x[0, 0] == pytest.approx(1.0)  # 0.5 + 0.977, clamped to 1
    assert from_minus_x[0, 0] == pytest.approx(0.0)  # 0.5 - 0.977, clamped to 0
    unclamped = sh.sh_to_rgb(dc, rest, at, np.array([5.0, 0, 0]), clamp_max=None)
    assert unclamped[0, 0] == pytest.approx(0.5 + 2 * sh.SH_C1, rel=1e-5)


def test_view_directions_are_unit_and_handle_the_camera_centre():
    d = sh.view_directions(np.array([[3.0, 0, 4], [1.0, 1, 1]]), np.array([1.0, 1, 1]))
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    assert np.allclose(d[0], np.array([2.0, -1.0, 3.0]) / np.sqrt(14.0))
    assert np.allclose(d[1], [0.0, 0.0, 1.0])


def test_direction_change():
    assert sh.direction_change_deg([1, 0, 0], [0, 1, 0]) == pytest.approx(90.0)
    assert sh.direction_change_deg([1, 0, 0], [2, 0, 0]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        sh.coefficient_count(4)
