"""The CPU compositor (numba) against closed-form pixels: falloff, cuts, depth order, early stop."""

from __future__ import annotations

import numpy as np
from optional import need_numba

from splatstudio.render import composite
from splatstudio.render.camera import Intrinsics, Pose

need_numba()

UP = np.array([0.0, 1.0, 0.0])
POSE = Pose.look_at(np.array([0.0, 0.0, -4.0]), np.zeros(3), UP)  # looking along +z
INTR = Intrinsics(32, 32, 40.0, 40.0, 16.0, 16.0)


def _render(positions, sigmas, colors, opacities, order=None, intr=INTR):
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = len(positions)
    sigmas = np.broadcast_to(np.asarray(sigmas, dtype=np.float64), (n,))
    cov6 = np.zeros((n, 6))
    cov6[:, 0] = cov6[:, 3] = cov6[:, 5] = sigmas**2
    rgba = np.column_stack([np.asarray(colors, dtype=np.float64).reshape(n, 3), np.broadcast_to(opacities, (n,))])
    if order is None:  # back to front
        order = np.argsort(-(positions @ POSE.R.T + POSE.t)[:, 2], kind="stable")
    return composite.composite(positions, cov6, rgba, np.asarray(order), POSE.view_matrix(), intr, 0.01)


def _expected_alpha(dx: float, dy: float, sigma_px: float, opacity: float) -> float:
    var = sigma_px**2 + 0.3
    m = (dx * dx + dy * dy) / var
    alpha = min(0.99, opacity * np.exp(-0.5 * m))
    return 0.0 if m > 9.0 or alpha < 1.0 / 255.0 else alpha


def test_one_splat_matches_the_closed_form_falloff_and_cuts():
    sigma_world = 0.1
    image = _render([[0.0, 0.0, 0.0]], sigma_world, [[1.0, 0.5, 0.25]], 0.8)
    assert image.shape == (32, 32, 4) and image.dtype == np.uint8
    sigma_px = sigma_world * INTR.fx / 4.0
    for py in range(32):
        for px in range(32):
            alpha = _expected_alpha(px + 0.5 - 16.0, py + 0.5 - 16.0, sigma_px, 0.8)
            expected = np.round(255 * np.array([1.0 * alpha, 0.5 * alpha, 0.25 * alpha, alpha]))
            assert np.all(np.abs(image[py, px].astype(int) - expected) <= 1), (px, py, image[py, px], expected)


def test_front_splat_covers_the_back_one_whatever_the_index_order():
    positions = [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]  # the second is nearer the camera
    colors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    image = _render(positions, 0.3, colors, 0.99)
    centre = image[15:17, 15:17].reshape(-1, 4).mean(axis=0)
    assert centre[1] > 240 and centre[0] < 10, centre  # green in front, red behind it
    flipped = _render(positions[::-1], 0.3, colors[::-1], 0.99)
    assert np.array_equal(flipped, image)


def test_pixels_stop_once_transmittance_is_spent():
    """Behind 3 splats of opacity 0.99 (transmittance 1e-6 < 1e-4), a bright splat adds nothing."""
    positions = [[0.0, 0.0, z] for z in (3.0, -1.0, -1.1, -1.2)]  # the first is the farthest
    colors = [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    image = _render(positions, 0.5, colors, 0.99)
    assert image[16, 16, 0] == 0 and image[16, 16, 3] == 255


def test_splats_behind_the_camera_or_off_screen_draw_nothing():
    image = _render([[0.0, 0.0, -5.0], [50.0, 0.0, 0.0]], 0.2, [[1.0, 1.0, 1.0]] * 2, 0.9)
    assert not image.any()
    empty = composite.composite(np.zeros((0, 3)), np.zeros((0, 6)), np.zeros((0, 4)), np.zeros(0, dtype=np.int64),
                                POSE.view_matrix(), INTR, 0.01)  # fmt: skip
    assert empty.shape == (32, 32, 4) and not empty.any()


def test_stats_and_readiness():
    stats: list = []
    composite.composite(np.zeros((1, 3)), np.array([[0.01, 0, 0, 0.01, 0, 0.01]]), np.array([[1.0, 1, 1, 0.5]]),
                        np.zeros(1, dtype=np.int64), POSE.view_matrix(), INTR, 0.01, stats=stats)  # fmt: skip
    assert composite.ready() and composite.warm_up()
    assert len(stats) == 1 and stats[0].entries >= 1 and stats[0].composite_ms >= 0.0
