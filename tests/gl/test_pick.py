"""Picking returns the splat under the cursor: the one contributing most to that pixel."""

from __future__ import annotations

import numpy as np
from conftest import single_splats

from splatstudio.render.camera import Intrinsics, Pose


def _pixel(canvas, point) -> tuple[float, float]:
    pose, intr = canvas.pose, canvas.intrinsics()
    cam = pose.R @ np.asarray(point, dtype=np.float64) + pose.t
    return intr.fx * cam[0] / cam[2] + intr.cx, intr.fy * cam[1] / cam[2] + intr.cy


def test_pick_returns_the_splat_under_the_cursor(make_canvas):
    positions = [[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -2.0, 0.0]]
    colours = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]]
    cloud = single_splats(positions, colours, scale=0.12, opacity=0.9)
    canvas = make_canvas(160, 120)
    canvas.load(cloud)
    canvas.set_camera(pose=Pose.look_at(np.array([0.0, -5.0, 0.3]), np.zeros(3), np.array([0.0, 0.0, 1.0])),
                      intrinsics=Intrinsics.from_fov_y(160, 120, 50.0))  # fmt: skip
    for index in (0, 2, 3):
        hit = canvas.pick(*_pixel(canvas, positions[index]))
        assert hit is not None and hit.index == index
        assert np.allclose(hit.position, positions[index])
        assert np.allclose(hit.color, colours[index], atol=0.01)
        assert abs(hit.opacity - 0.9) < 1e-4
        assert np.allclose(hit.scale, 0.12, rtol=1e-4)
    # splat 4 is straight in front of splat 1: the front one is picked
    hit = canvas.pick(*_pixel(canvas, positions[1]))
    assert hit is not None and hit.index == 4
    assert hit.depth < 4.0
    # empty background
    assert canvas.pick(2.0, 2.0) is None
