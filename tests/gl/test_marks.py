"""The preview of an edit in the real viewer (issue 23, item 1): the splats the clean-up would remove are
drawn tinted, or hidden; the others are drawn as before; clearing the marks restores the picture."""

from __future__ import annotations

import numpy as np
from conftest import single_splats

from splatstudio.model.cleanup import Views, cleanup_mask, cleanup_scores
from splatstudio.render.camera import Intrinsics, Pose
from splatstudio.render.scene import MARK_TINT

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
    intr = Intrinsics.from_fov_y(96, 64, 50.0)
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


def test_the_clean_up_slider_at_three_strengths_tints_a_growing_set_exactly(make_canvas, qtbot):
    """The real clean-up panel drives the real viewer, as on the project page: at 20, 40 and 55 the slider
    removes a growing set (nested: more of the faint splats each time, and the one no photo saw throughout),
    and the frame shows exactly that set tinted: every marked splat magenta, every other one as before."""
    from splatstudio.ui.cleanup_panel import CleanupPanel
    from splatstudio.ui.workers import Workers

    xs = [-1.2, -0.9, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9, 1.6]
    opacity = [0.95, 0.02, 0.95, 0.04, 0.95, 0.055, 0.95, 0.95, 0.95]  # faint: 2 %, 4 %, 5.5 %
    cloud = single_splats([[x, 0.0, 0.0] for x in xs], [[0.55, 0.6, 0.55]] * len(xs), scale=0.06, opacity=opacity)
    eye = np.array([0.0, -4.0, 0.0])
    pose = Pose.look_at(eye, np.zeros(3), UP)
    # the one photo saw |x| < 1.28 at the row's depth: the last splat (x = 1.6) was never in a photo
    views = Views(eye[None], pose.R.T[None], np.array([150.0]), np.array([150.0]), np.array([96.0]),
                  np.array([64.0]))
    canvas = make_canvas(320, 160)
    canvas.load(cloud)
    intr = Intrinsics.from_fov_y(320, 160, 50.0)
    canvas.set_camera(pose=pose, intrinsics=intr)
    local = cloud.positions.astype(np.float64) @ pose.R.T + pose.t
    columns = np.rint(intr.fx * local[:, 0] / local[:, 2] + intr.cx).astype(int)
    rows = np.rint(intr.fy * local[:, 1] / local[:, 2] + intr.cy).astype(int)
    assert np.all(np.diff(columns) >= 12) and columns.min() > 4 and columns.max() < 316
    plain = canvas.render_image()

    workers = Workers()
    panel = CleanupPanel(workers)
    qtbot.addWidget(panel)
    panel.sig_marks.connect(lambda marked, hide: canvas.mark(marked, hide))  # as the project page wires it
    panel.set_model(cloud, views, 0.0)
    scores = cleanup_scores(cloud, views)
    previous = np.zeros(len(cloud), dtype=bool)
    expected_sets = {20: {1, 8}, 40: {1, 3, 8}, 55: {1, 3, 5, 8}}
    for value, expected_set in expected_sets.items():
        panel.slider.setValue(value)
        expected, _counts = cleanup_mask(scores, value / 100)
        assert set(np.flatnonzero(expected)) == expected_set
        assert not (previous & ~expected).any() and expected.sum() > previous.sum()  # a growing set
        qtbot.waitUntil(lambda expected=expected: canvas.scene.marked is not None
                        and np.array_equal(canvas.scene.marked, expected), timeout=10_000)
        assert np.array_equal(panel.mask, expected)  # what the export would remove
        tinted = canvas.render_image()
        for i, (x, y) in enumerate(zip(columns, rows, strict=True)):
            was, now = _pixel(plain, x, y), _pixel(tinted, x, y)
            if expected[i]:
                assert now[0] > now[1] + 40 and now[2] > now[1] + 30, (value, i, now)  # magenta
            else:
                assert np.allclose(now, was, atol=3), (value, i, now, was)  # untouched
        previous = expected
    panel.slider.setValue(0)
    qtbot.waitUntil(lambda: canvas.scene.marked is None, timeout=5_000)
    assert np.allclose(canvas.render_image().astype(int), plain.astype(int), atol=1)
    workers.pool.waitForDone(5_000)
