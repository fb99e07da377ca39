"""Selection geometry (issue 23, item 2), pure numpy: projected centres, rectangle, lasso (concave and
self-crossing, against an exact even-odd test), brush, box, sphere and value thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from _clouds import random_cloud

from splatstudio.render.camera import Intrinsics, Pose
from splatstudio.render.selection import (
    SplatValues,
    brush_raster,
    by_values,
    histogram,
    in_box,
    in_brush,
    in_polygon,
    in_rectangle,
    in_sphere,
    points_in_polygon,
    polygon_raster,
    project_centres,
)

W, H = 200, 150


def _grid_centres() -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W]
    return np.column_stack([xs.ravel() + 0.5, ys.ravel() + 0.5])


def _projected(xy: np.ndarray):
    from splatstudio.render.selection import Projected

    return Projected(np.asarray(xy, dtype=np.float32), np.ones(len(xy), dtype=bool), W, H)


C_SHAPE = np.array([[20, 20], [180, 20], [180, 50], [60, 50], [60, 100], [180, 100], [180, 130], [20, 130]], float)
BOWTIE = np.array([[30, 30], [170, 120], [170, 30], [30, 120]], float)


@pytest.mark.parametrize("polygon", [C_SHAPE, BOWTIE, C_SHAPE + 0.37])
def test_the_lasso_raster_agrees_with_the_exact_test_at_every_pixel_centre(polygon):
    raster = polygon_raster(polygon, W, H)
    exact = points_in_polygon(_grid_centres(), polygon).reshape(H, W)
    assert np.array_equal(raster, exact)
    assert raster.any() and not raster.all()


def _edge_distance(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    out = np.full(len(points), np.inf)
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        out = np.minimum(out, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1))
    return out


def test_lasso_takes_the_centres_inside_a_concave_shape_and_not_the_notch():
    rng = np.random.default_rng(0)
    xy = rng.uniform([0, 0], [W, H], (5000, 2))
    got = in_polygon(_projected(xy), C_SHAPE)
    # away from the edges (more than a pixel) the raster and the exact test must agree exactly
    far = _edge_distance(xy, C_SHAPE) > 1.0
    assert np.array_equal(got[far], points_in_polygon(xy, C_SHAPE)[far])
    assert not in_polygon(_projected([[100.0, 75.0]]), C_SHAPE)[0]  # in the notch
    assert in_polygon(_projected([[40.0, 75.0]]), C_SHAPE)[0]


def test_rectangle_takes_centres_inside_any_corner_order_and_only_ahead():
    from splatstudio.render.selection import Projected

    xy = np.array([[10, 10], [50, 40], [51, 40], [30, 25]], np.float32)
    p = Projected(xy, np.array([True, True, True, False]), W, H)
    assert in_rectangle(p, 50, 40, 10, 10).tolist() == [True, True, False, False]


def test_brush_takes_what_is_within_its_radius_of_the_stroke():
    raster = brush_raster(np.array([[20.0, 20.0], [120.0, 20.0]]), 10.0, W, H)
    centres = _grid_centres().reshape(H, W, 2)
    dx = np.clip(centres[..., 0], 20, 120) - centres[..., 0]
    expected = dx ** 2 + (centres[..., 1] - 20) ** 2 <= 100
    assert np.array_equal(raster, expected)
    xy = np.array([[70, 25], [70, 35], [5, 20], [131, 20]], float)
    assert in_brush(_projected(xy), [[20, 20], [120, 20]], 10).tolist() == [True, False, False, False]
    assert brush_raster(np.array([[-50.0, -50.0]]), 5, W, H).sum() == 0  # off screen


def test_projected_centres_match_the_cameras_projection():
    cloud = random_cloud(500, seed=1)
    pose = Pose.look_at(np.array([0.0, -15.0, 3.0]), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    intr = Intrinsics.from_fov_y(W, H, 60.0)
    p = project_centres(cloud.positions, pose.view_matrix(), intr, 0.01)
    cam = cloud.positions.astype(np.float64) @ pose.R.T + pose.t
    ahead = cam[:, 2] > 0.01
    assert np.array_equal(p.ahead, ahead)
    u = intr.fx * cam[ahead, 0] / cam[ahead, 2] + intr.cx
    assert np.allclose(p.xy[ahead, 0], u, atol=1e-3)
    behind = project_centres(np.array([[0.0, -20.0, 3.0]]), pose.view_matrix(), intr, 0.01)
    assert not in_rectangle(behind, -1e9, -1e9, 1e9, 1e9)[0]


def test_box_sphere_and_values():
    positions = np.array([[0, 0, 0], [1, 1, 1], [2, 0, 0], [0.5, 0.0, 0.0]], float)
    assert in_box(positions, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]).tolist() == [True, True, False, True]
    turned = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float)  # axes swapped: a box long along y
    assert in_box(positions, [0, 0, 0], [0.1, 2.5, 0.1], turned).tolist() == [True, False, True, True]
    assert in_sphere(positions, [0, 0, 0], 1.0).tolist() == [True, False, False, True]
    cloud = random_cloud(2000, seed=2)
    values = SplatValues.of(cloud)
    mask = by_values(values, opacity=(0.2, 0.8), size=(0.01, 0.05))
    alpha, size = cloud.alphas(), np.exp(cloud.scales.max(axis=1))
    assert np.array_equal(mask, (alpha >= 0.2) & (alpha <= 0.8) & (size >= 0.01) & (size <= 0.05))
    red = by_values(values, color=(1.0, 0.0, 0.0), tolerance=0.5)
    assert np.array_equal(red, np.linalg.norm(cloud.colors_rgb() - [1, 0, 0], axis=1) <= 0.5)
    counts, edges = histogram(values.size, bins=20, log=True)
    assert counts.sum() == 2000 and len(edges) == 21 and edges[0] > 0
    assert histogram(np.zeros(0))[0].sum() == 0
