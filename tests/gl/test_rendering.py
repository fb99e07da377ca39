"""Pixel checks of the splat renderer: SH view dependence, depth order, off-screen centres, overlays,
the moving budget and the background sort."""

from __future__ import annotations

import time

import numpy as np
import pytest
from _reference import psnr, render_reference, sh_color
from conftest import single_splats, small_cloud
from optional import need_numba

from splatstudio.render.camera import Intrinsics, Pose, TrainingCamera

UP = np.array([0.0, 0.0, 1.0])


def _centre_pixel(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return image[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1].reshape(-1, 3).mean(axis=0)


def test_sh_degree1_colour_follows_the_view_direction(make_canvas):
    rest = np.zeros((1, 3, 3), dtype=np.float32)
    rest[0, 2, 0] = 0.8  # red, basis -C1 * x
    rest[0, 0, 2] = -0.5  # blue, basis -C1 * y
    cloud = single_splats([[0, 0, 0]], [[0.5, 0.5, 0.5]], scale=0.5, opacity=0.99, sh_rest=rest)
    canvas = make_canvas(64, 64)
    canvas.load(cloud)
    intr = Intrinsics.from_fov_y(64, 64, 40.0)
    seen = {}
    for eye in ([4.0, 0, 0], [-4.0, 0, 0], [0, 4.0, 0]):
        eye = np.array(eye)
        canvas.set_camera(pose=Pose.look_at(eye, np.zeros(3), UP), intrinsics=intr)
        pixel = _centre_pixel(canvas.render_image())
        sh = np.concatenate([cloud.sh_dc, cloud.sh_rest[0]], axis=0).astype(np.float64)
        direction = -eye / np.linalg.norm(eye)
        # 0.99 opacity x the falloff half a pixel off-centre (pixel centres straddle the image centre)
        expected = 255.0 * sh_color(sh, direction, 1) * 0.99 * _falloff_at_half_pixel(cloud, 4.0, intr)
        assert np.allclose(pixel, expected, atol=3.0), (eye, pixel, expected)
        seen[tuple(eye)] = pixel
    red_plus_x, red_minus_x = seen[(4.0, 0, 0)][0], seen[(-4.0, 0, 0)][0]
    assert red_plus_x - red_minus_x > 0.6 * 255 * 2 * 0.4886 * 0.8 * 0.9  # ~ 2 C1 0.8 apart


def _falloff_at_half_pixel(cloud, distance: float, intr: Intrinsics) -> float:
    sigma_px = float(np.exp(cloud.scales[0, 0])) * intr.fx / distance
    var = sigma_px**2 + 0.3
    return float(np.exp(-0.5 * (0.25 + 0.25) / var))


@pytest.mark.parametrize("load_order", ["red_first", "green_first"])
def test_front_splat_dominates_in_both_depth_orders(make_canvas, load_order):
    positions = [[0, 0, 0.6], [0, 0, -0.6]]  # red above, green below
    colours = [[1, 0, 0], [0, 1, 0]]
    if load_order == "green_first":
        positions, colours = positions[::-1], colours[::-1]
    canvas = make_canvas(64, 64)
    canvas.load(single_splats(positions, colours, scale=0.4, opacity=0.99))
    intr = Intrinsics.from_fov_y(64, 64, 40.0)
    canvas.set_camera(pose=Pose.look_at(np.array([0.0, 0.0, 5.0]), np.zeros(3), np.array([0.0, 1.0, 0.0])),
                      intrinsics=intr)  # fmt: skip
    top = _centre_pixel(canvas.render_image())
    canvas.set_camera(pose=Pose.look_at(np.array([0.0, 0.0, -5.0]), np.zeros(3), np.array([0.0, 1.0, 0.0])),
                      intrinsics=intr)  # fmt: skip
    bottom = _centre_pixel(canvas.render_image())
    assert top[0] > 220 and top[1] < 10, top  # red in front from above
    assert bottom[1] > 220 and bottom[0] < 10, bottom  # green in front from below


def test_large_splat_with_centre_outside_viewport_still_draws(make_canvas):
    cloud = single_splats([[-2.2, 0.0, 0.0]], [[0.2, 0.8, 0.4]], scale=0.8, opacity=0.95)
    width, height = 96, 64
    canvas = make_canvas(width, height)
    canvas.load(cloud)
    pose = Pose.look_at(np.array([0.0, -4.0, 0.0]), np.zeros(3), UP)
    intr = Intrinsics.from_fov_y(width, height, 40.0)
    canvas.set_camera(pose=pose, intrinsics=intr)
    u = intr.fx * (pose.R @ cloud.positions[0] + pose.t)[0] / (pose.R @ cloud.positions[0] + pose.t)[2] + intr.cx
    assert u < 0, "the centre must project left of the image"
    image = canvas.render_image()
    assert image[:, :8, 1].mean() > 60, "the visible part of the splat vanished"
    reference = render_reference(cloud, pose.R, pose.t, width, height, intr.fx, intr.fy)
    assert psnr(image, reference) >= 30.0


def test_overlays_draw_over_the_scene(make_canvas):
    canvas = make_canvas(120, 90)
    canvas.load(small_cloud(20, seed=3))
    cam = TrainingCamera(
        "c", Pose.look_at(np.array([2.0, 2.0, 1.0]), np.zeros(3), UP), Intrinsics(60, 40, 50, 50, 30, 20)
    )
    canvas.set_training_cameras([cam])
    canvas.set_sparse_points(np.random.default_rng(0).uniform(-1, 1, (50, 3)), np.full((50, 3), 255, np.uint8))
    canvas.set_camera(pose=Pose.look_at(np.array([5.0, 4.0, 4.0]), np.zeros(3), UP), fov_y_deg=60.0)
    plain = canvas.render_image()
    for name in ("grid", "axes", "frustums", "points"):
        setattr(canvas.overlays, name, True)
        with_overlay = canvas.render_image()
        assert np.abs(with_overlay.astype(int) - plain.astype(int)).sum() > 0, f"{name} overlay drew nothing"
        setattr(canvas.overlays, name, False)


def test_moving_camera_draws_budget_then_refines_in_background(make_canvas, qtbot):
    cloud = small_cloud(3000, seed=5, sh_degree=1)
    canvas = make_canvas(96, 72, budget=400, moving_scale=0.5)
    canvas.load(cloud)
    canvas.set_camera(pose=Pose.look_at(np.array([4.0, 0.5, 1.0]), np.zeros(3), UP), fov_y_deg=50.0)
    canvas.orbit.orbit(0.2, 0.05)
    canvas._interacted()  # what a mouse drag does
    canvas.on_draw(None)
    assert not canvas.stats.full
    assert 0 < canvas.stats.splats_drawn <= 400
    assert canvas._reduced is not None and canvas._reduced[0] == (48, 36)  # drawn at half resolution
    qtbot.waitUntil(lambda: canvas.stats.full and canvas.stats.splats_drawn > 2000, timeout=10_000)
    assert canvas.wait_until_idle(10.0)
    assert canvas._colors.degree == canvas.sh_degree == 3  # the worker replaced the quick degree-0 colours
    canvas.on_draw(None)
    assert canvas.stats.frame_ms > 0
    assert canvas.stats.splats_drawn == 3000
    assert "3,000/3,000 splats" in canvas.stats.text()


def test_tiny_camera_changes_keep_the_depth_order():
    from splatstudio.render.frames import views_close

    a = Pose.look_at(np.array([4.0, 0.0, 1.0]), np.zeros(3), UP).view_matrix()
    nudged = Pose.look_at(np.array([4.0, 0.001, 1.0]), np.zeros(3), UP).view_matrix()
    turned = Pose.look_at(np.array([4.0, 0.5, 1.0]), np.zeros(3), UP).view_matrix()
    assert views_close(a, a, 1.0)
    assert views_close(a, nudged, 2.0)
    assert not views_close(a, turned, 2.0)
    assert not views_close(None, a, 1.0)


def test_changing_sh_degree_during_a_background_sort_still_refines(make_canvas, qtbot):
    canvas = make_canvas(96, 72, budget=300)
    canvas.load(small_cloud(2000, seed=8, sh_degree=2))
    canvas.set_camera(pose=Pose.look_at(np.array([3.0, 2.0, 1.0]), np.zeros(3), UP), fov_y_deg=50.0)
    canvas.on_draw(None)  # budget frame now, full sort requested
    canvas.set_sh_degree(1)
    canvas.on_draw(None)
    assert canvas.wait_until_idle(10.0)
    assert canvas.stats.full and canvas.stats.splats_drawn == 2000
    assert canvas._colors.degree == 1
    reference = canvas.render_image()
    canvas.on_draw(None)
    assert psnr(canvas.render(alpha=False), reference) > 40  # what is on screen is the exact frame


def test_large_scenes_on_software_gl_are_composited_in_the_background(make_canvas, qtbot):
    need_numba()
    canvas = make_canvas(96, 72, budget=300)  # compositor="auto": more splats than the budget
    canvas.load(small_cloud(2000, seed=8, sh_degree=2))
    canvas.set_camera(pose=Pose.look_at(np.array([3.0, 2.0, 1.0]), np.zeros(3), UP), fov_y_deg=50.0)
    canvas.on_draw(None)  # the budget now, the full frame asked of the sort thread
    assert canvas._software_gl, "the GL tier runs on llvmpipe"
    assert canvas.wait_until_idle(60.0)  # the first frame may compile the kernels
    canvas.on_draw(None)
    if not canvas.stats.composite_ms:  # the kernels were compiling: the next full frame is composited
        canvas.orbit.orbit(0.1, 0.0)
        canvas.set_camera(pose=canvas.orbit.pose())
        canvas.on_draw(None)
        assert canvas.wait_until_idle(60.0)
        canvas.on_draw(None)
    assert canvas.stats.full and canvas.stats.splats_drawn == 2000 and canvas.stats.composite_ms > 0
    assert "composited" in canvas.stats.text()
    shown = canvas.render(alpha=False)
    canvas.compositor = "gl"
    drawn = canvas.render_image()
    assert psnr(shown, drawn) > 40  # what is on screen is the full frame
    canvas.compositor = "auto"
    canvas.native.resize(80, 60)  # a resize invalidates the composited image: the budget shows meanwhile
    canvas.app.process_events()
    canvas.on_draw(None)
    assert canvas.wait_until_idle(30.0)
    canvas.on_draw(None)
    assert canvas.stats.full and canvas.stats.composite_ms > 0


def test_previews_reloaded_in_place_are_composited_off_the_gui_thread(make_canvas, qtbot):
    need_numba()
    from splatstudio.render import composite

    assert composite.warm_up()
    canvas = make_canvas(120, 90)  # compositor="auto", scenes within the budget
    canvas.load(small_cloud(300, seed=1))
    canvas.set_camera(pose=Pose.look_at(np.array([3.0, -2.0, 1.0]), np.zeros(3), UP), fov_y_deg=50.0)
    canvas.on_draw(None)  # an exact frame drawn with OpenGL, synchronously
    assert canvas._software_gl and canvas.stats.composite_ms == 0
    frames = []
    canvas.signals.sig_stats_changed.connect(frames.append)
    canvas.load(small_cloud(300, seed=2), reset_camera=False)  # a training preview
    assert canvas._requested is not None and not frames, "no repaint until the composited frame arrives"
    assert canvas.wait_until_idle(30.0)
    qtbot.waitUntil(lambda: bool(frames), timeout=5_000)
    assert canvas.stats.full and canvas.stats.composite_ms > 0
    shown = canvas.render(alpha=False)
    canvas.compositor = "gl"
    assert psnr(shown, canvas.render_image()) > 40


def test_still_frames_of_a_large_viewport_on_software_gl_never_rasterise_on_the_gui_thread(make_canvas, qtbot):
    need_numba()
    from splatstudio.render import composite
    from splatstudio.render.frame_policy import SYNC_GL_PIXELS

    assert composite.warm_up()
    canvas = make_canvas(400, 300)  # compositor="auto", a scene well within the budget
    assert 400 * 300 > SYNC_GL_PIXELS
    drawn = []
    original = canvas._draw_splats
    canvas._draw_splats = lambda *a: (drawn.append(a), original(*a))
    canvas.load(small_cloud(500, seed=3))
    canvas.set_camera(pose=Pose.look_at(np.array([3.0, -2.0, 1.0]), np.zeros(3), UP), fov_y_deg=50.0)
    canvas.on_draw(None)
    assert canvas._software_gl
    assert canvas._requested is not None and not drawn, "the first still frame waits for the sort thread"
    assert canvas.wait_until_idle(30.0)
    canvas.on_draw(None)
    assert not drawn and canvas.stats.full and canvas.stats.composite_ms > 0
    shown = canvas.render(alpha=False)
    canvas.compositor = "gl"
    assert psnr(shown, canvas.render_image()) > 40  # the composited frame is the full frame
    assert drawn  # render_image draws synchronously, whatever the viewport
    canvas.compositor = "auto"
    canvas.on_draw(None)  # render_image replaced the composited frame: composited again
    assert canvas.wait_until_idle(30.0)
    # a preview reloaded in place keeps the last frame on screen until its own arrives
    canvas.load(small_cloud(500, seed=4), reset_camera=False)
    before = len(drawn)
    canvas.on_draw(None)
    assert len(drawn) == before
    assert psnr(canvas.render(alpha=False), shown) > 40
    assert canvas.wait_until_idle(30.0)
    canvas.on_draw(None)
    assert psnr(canvas.render(alpha=False), shown) < 40  # the new scene now


def test_the_renderer_is_known_before_any_canvas_and_the_compositor_warms_up_on_software_gl(qapp):
    need_numba()
    from splatstudio.render import composite, glinfo

    assert glinfo.is_software("llvmpipe (LLVM 15.0.6, 256 bits)") and glinfo.is_software("Software Rasterizer")
    assert not glinfo.is_software("NVIDIA GeForce RTX 4090/PCIe/SSE2")
    name = glinfo.renderer_name()
    assert name and glinfo.is_software(name), f"CI draws with Mesa's llvmpipe under Xvfb, got {name!r}"
    assert glinfo.warm_up_compositor_if_software()
    deadline = time.monotonic() + 120
    while not composite.ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert composite.ready()
