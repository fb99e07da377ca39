"""Where the viewer draws a frame (`render.frame_policy.FramePolicy`), decided without OpenGL: the compositor
setting against the renderer, the scene's size against the budget, the viewport against `SYNC_GL_PIXELS`,
whether numba is there and compiled, whether the camera moves, and what the GPU already shows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from splatstudio.render.frame_policy import (
    BUDGET,
    EXACT,
    IMAGE,
    KEEP,
    SPLATS,
    SYNC_GL_PIXELS,
    WAIT,
    FramePolicy,
    FrameStep,
    Shown,
    image_valid,
)

SMALL, LARGE = 1_000, 200_000  # against the default budget of 150,000
SMALL_VIEW, LARGE_VIEW = 160 * 120, 1280 * 720
NOTHING = Shown(current=False, full=False, image_valid=False)
SHOWN_WITH_IMAGE = Shown(current=True, full=True, image_valid=True)
SHOWN_WITHOUT_IMAGE = Shown(current=True, full=True, image_valid=False)


def llvmpipe(**kwargs) -> FramePolicy:
    """Software OpenGL, numba compiled: the GL test tier's machine."""
    return FramePolicy(**{"compositor": "auto", "software_gl": True, "available": True, "ready": True,
                          "pixels": SMALL_VIEW, **kwargs})  # fmt: skip


def gpu(**kwargs) -> FramePolicy:
    """A hardware renderer with numba compiled."""
    return FramePolicy(**{"compositor": "auto", "software_gl": False, "available": True, "ready": True,
                          "pixels": LARGE_VIEW, **kwargs})  # fmt: skip


def test_an_unknown_compositor_is_refused():
    with pytest.raises(ValueError, match="compositor must be"):
        FramePolicy(compositor="vulkan")


# ------------------------------------------------------------------------------ hardware OpenGL


def test_on_a_hardware_renderer_auto_never_composites_on_the_cpu():
    policy = gpu()
    assert not policy.composites(SMALL) and not policy.composites(LARGE)
    assert not policy.still_in_background(LARGE) and not policy.previews_in_background()
    assert not policy.wants_compositor and not policy.warm_up
    assert policy.step(SMALL, NOTHING) == FrameStep(EXACT, composite=False)  # sorted and drawn synchronously
    # a large scene: the budget at once, the full frame from the sort thread (sorted, drawn with OpenGL)
    assert policy.step(LARGE, NOTHING) == FrameStep(BUDGET, request=True)
    assert not policy.request_cpu(LARGE)
    assert policy.placement(LARGE, image_valid=False) == SPLATS


def test_the_full_frame_on_the_gpu_stands_until_the_view_changes():
    policy = gpu()
    assert policy.step(SMALL, SHOWN_WITHOUT_IMAGE) == FrameStep()
    assert policy.step(LARGE, SHOWN_WITHOUT_IMAGE) == FrameStep()
    # the moving budget for this view is up, the camera stopped: the full frame is asked for, the budget stays
    assert policy.step(LARGE, Shown(current=True, full=False, image_valid=False)) == FrameStep(KEEP, request=True)


def test_moving_frames_draw_the_budget_and_ask_nothing_of_the_sort_thread():
    for policy in (gpu(moving=True), llvmpipe(moving=True), llvmpipe(moving=True, compositor="cpu")):
        assert policy.step(SMALL, NOTHING) == FrameStep(BUDGET)
        assert policy.step(LARGE, NOTHING) == FrameStep(BUDGET)
        assert policy.step(LARGE, Shown(current=True, full=False, image_valid=False)) == FrameStep()  # close enough
        assert not policy.still_in_background(LARGE) and not policy.previews_in_background()
        assert policy.placement(LARGE, image_valid=False) == SPLATS


# ------------------------------------------------------------------------------ software OpenGL


def test_on_llvmpipe_a_small_scene_in_a_small_view_is_drawn_with_opengl_at_once():
    policy = llvmpipe()
    assert SMALL_VIEW <= SYNC_GL_PIXELS
    assert not policy.composites(SMALL) and not policy.still_in_background(SMALL)
    assert policy.step(SMALL, NOTHING) == FrameStep(EXACT, composite=False)
    assert policy.placement(SMALL, image_valid=False) == SPLATS


def test_on_llvmpipe_a_still_frame_of_a_large_view_or_scene_is_composited_in_the_sort_thread():
    for count, pixels in ((SMALL, LARGE_VIEW), (LARGE, SMALL_VIEW), (LARGE, LARGE_VIEW)):
        policy = llvmpipe(pixels=pixels)
        assert policy.still_in_background(count)
        assert policy.step(count, NOTHING) == FrameStep(request=True, request_cpu=True)
        assert policy.request_cpu(count, asked=True)
        # until it arrives nothing new is drawn on the GUI thread; then its image is shown
        assert policy.placement(count, image_valid=False) == WAIT
        assert policy.placement(count, image_valid=True) == IMAGE
        assert policy.step(count, SHOWN_WITH_IMAGE) == FrameStep()
        # a frame read back at once (render_image) is drawn whatever it takes
        assert policy.placement(count, image_valid=False, synchronous=True) == SPLATS


def test_on_llvmpipe_scenes_larger_than_the_budget_are_composited_and_small_ones_are_not():
    policy = llvmpipe()
    assert policy.composites(LARGE) and not policy.composites(SMALL)
    assert policy.request_cpu(LARGE) and not policy.request_cpu(SMALL)


def test_previews_reloaded_in_place_go_to_the_sort_thread_on_llvmpipe_only():
    assert llvmpipe().previews_in_background()
    assert llvmpipe(compositor="cpu").previews_in_background() and gpu(compositor="cpu").previews_in_background()
    assert not gpu().previews_in_background()
    assert not llvmpipe(compositor="gl").previews_in_background()
    assert not llvmpipe(moving=True).previews_in_background()


def test_while_the_kernels_compile_opengl_stands_in_and_they_compile_in_the_background():
    policy = llvmpipe(ready=False, pixels=LARGE_VIEW)
    assert policy.warm_up
    assert not policy.still_in_background(SMALL) and not policy.previews_in_background()
    assert policy.step(SMALL, NOTHING) == FrameStep(EXACT, composite=False)  # drawn with OpenGL meanwhile
    assert policy.step(LARGE, NOTHING) == FrameStep(BUDGET, request=True)
    assert not policy.request_cpu(LARGE, asked=True)  # the sort thread's frame is drawn with OpenGL
    # a full frame with OpenGL stands in for the composited one of a large scene until the kernels are ready
    assert policy.step(LARGE, SHOWN_WITHOUT_IMAGE) == FrameStep()
    assert policy.placement(LARGE, image_valid=False) == SPLATS


def test_a_composited_frame_whose_image_went_missing_is_composited_again():
    """After a resize the order still fits the view but the image is of the old viewport."""
    # composited in the sort thread: asked for again
    policy = llvmpipe(pixels=LARGE_VIEW)
    assert policy.step(SMALL, SHOWN_WITHOUT_IMAGE) == FrameStep(request=True, request_cpu=True)
    # composited synchronously ("cpu" while the kernels are not compiled yet: composite() compiles them)
    policy = gpu(compositor="cpu", ready=False)
    assert policy.step(SMALL, SHOWN_WITHOUT_IMAGE) == FrameStep(EXACT, composite=True)
    assert policy.step(LARGE, SHOWN_WITHOUT_IMAGE) == FrameStep()  # too large for that: OpenGL's frame stands


# ---------------------------------------------------------------------------- compositor settings


def test_compositor_gl_never_composites():
    for policy in (llvmpipe(compositor="gl"), gpu(compositor="gl")):
        assert not policy.wants_compositor and not policy.warm_up
        assert not any((policy.composites(LARGE), policy.still_in_background(LARGE), policy.request_cpu(LARGE)))
        assert policy.step(LARGE, NOTHING) == FrameStep(BUDGET, request=True)


def test_compositor_cpu_composites_every_full_frame_wherever_numba_is():
    policy = gpu(compositor="cpu")
    assert policy.wants_compositor and policy.composites(SMALL) and policy.composites(LARGE)
    assert policy.still_in_background(SMALL)
    assert not gpu(compositor="cpu", ready=False).still_in_background(SMALL)
    assert gpu(compositor="cpu", ready=False).warm_up


def test_without_numba_everything_is_drawn_with_opengl():
    for policy in (llvmpipe(available=False, ready=False), gpu(compositor="cpu", available=False, ready=False)):
        assert not policy.wants_compositor and not policy.warm_up
        assert not policy.composites(LARGE) and not policy.still_in_background(LARGE)
        assert not policy.previews_in_background()
        assert policy.step(SMALL, NOTHING) == FrameStep(EXACT)


# ------------------------------------------------------------------------------- image validity


@dataclass
class Image:
    generation: int
    view_key: bytes
    intr: object


@dataclass
class Upload:
    full: bool
    generation: int
    view_key: bytes


def test_an_image_is_valid_for_the_uploaded_full_frame_of_this_generation_and_viewport_only():
    upload = Upload(full=True, generation=3, view_key=b"v")
    assert image_valid(Image(3, b"v", "160x120"), upload, 3, "160x120")
    assert not image_valid(None, upload, 3, "160x120")
    assert not image_valid(Image(3, b"v", "160x120"), upload, 3, "320x240")  # resized
    assert not image_valid(Image(3, b"w", "160x120"), upload, 3, "160x120")  # another view
    assert not image_valid(Image(2, b"v", "160x120"), upload, 3, "160x120")  # older marks or scene
    assert not image_valid(Image(3, b"v", "160x120"), upload, 4, "160x120")  # the scene changed since
    assert not image_valid(Image(3, b"v", "160x120"), Upload(False, 3, b"v"), 3, "160x120")  # the budget is up
