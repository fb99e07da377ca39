"""The preview of an edit in the real viewer (issue 23, item 1): the splats the clean-up would remove are
drawn tinted, or hidden; the others are drawn as before; clearing the marks restores the picture."""

from __future__ import annotations

import numpy as np
from conftest import single_splats

from splatstudio.model.cleanup import Views, cleanup_mask, cleanup_scores
from splatstudio.render.camera import Intrinsics, Pose
from splatstudio.render.viewer import MARK_TINT

UP = np.array([0.0, 0.0, 1.0])


def _pixel(image: np.ndarray, x: int, y: int) -> np.ndarray:
    return image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(axis=0)


def test_marked_splats_are_tinted_or_hidden_and_the_rest_unchanged(make_canvas):
    # a green splat left, a grey one right, seen from the front
    cloud = single_splats([[-0.8, 0.0, 0.0], [0.8, 0.0, 0.0]], [[0.1, 0.8, 0.2], [0.5, 0.5, 0.5]], scale=0.3,
                          opacity=0.95)
    canvas = make_canvas(96, 64)
    canvas.load(cloud)
    pose = Pose.look_at(np.array([0.0, -4.0, 0.0]), np.zeros(3), UP)
    intr = Intrinsics.from_fov(96, 64, 50.0)
    canvas.set_camera(pose=pose, intrinsics=intr)
    columns = []
    for centre in cloud.positions:
        local = pose.R @ centre + pose.t
        columns.append(int(round(intr.fx * local[0] / local[2] + intr.cx)))
    left, right, row = columns[0], columns[1], 32
    plain = canvas.render_image()
    assert plain[row, left, 1] > 150 and abs(int(plain[row, right, 0]) - int(plain[row, right, 1])) < 10

    canvas.mark(np.array([False, True]))
    tinted = canvas.render_image()
    assert np.allclose(_pixel(tinted, left, row), _pixel(plain, left, row), atol=2)  # unmarked: as before
    red, green, blue = _pixel(tinted, right, row)
    assert red > 150 and blue > 100 and green < 80  # magenta
    assert MARK_TINT[0] > MARK_TINT[1] and MARK_TINT[2] > MARK_TINT[1]

    canvas.mark(np.array([False, True]), hide=True)
    hidden = canvas.render_image()
    assert _pixel(hidden, right, row).max() < 20 and np.allclose(_pixel(hidden, left, row), _pixel(plain, left, row),
                                                                 atol=2)
    canvas.mark(None)
    assert np.allclose(canvas.render_image().astype(int), plain.astype(int), atol=1)


def test_the_clean_up_mask_previews_exactly_the_splats_it_removes(make_canvas):
    # a row of small splats and one huge faint one behind them: the clean-up's strengths mark it, then more
    positions = [[x, 0.0, 0.0] for x in np.linspace(-1, 1, 9)] + [[0.0, 3.0, 0.0]]
    cloud = single_splats(positions, [[0.5, 0.5, 0.5]] * 10, scale=0.08, opacity=0.95)
    cloud.scales[9] = np.log(1.5)
    cloud.opacities[9] = -6.0  # 0.25 % opacity
    views = Views(np.array([[0.0, -4.0, 0.0]]), np.array([Pose.look_at(np.array([0.0, -4.0, 0.0]), np.zeros(3),
                                                                       UP).R.T]),
                  np.array([60.0]), np.array([60.0]), np.array([96.0]), np.array([64.0]))
    scores = cleanup_scores(cloud, views)
    canvas = make_canvas(96, 64)
    canvas.load(cloud)
    canvas.set_camera(pose=Pose.look_at(np.array([0.0, -4.0, 0.0]), np.zeros(3), UP), fov_y_deg=50.0)
    plain = canvas.render_image()
    mask, _counts = cleanup_mask(scores, 0.5)
    assert mask.tolist() == [False] * 9 + [True]
    canvas.mark(mask)
    tinted = canvas.render_image()
    above = _pixel(tinted, 48, 24)  # above the row of small splats, only the big faint one is drawn
    assert above[0] > _pixel(plain, 48, 24)[0] + 60 and above[1] < above[0] / 2  # now it shows, magenta
    assert np.allclose(_pixel(tinted, 48, 32), _pixel(plain, 48, 32), atol=40)  # the row in front, as before
