"""Viewer frame times on this machine's OpenGL (Mesa llvmpipe under Xvfb on servers).

For random scenes of 10k / 100k / 1M splats at 1280x720 prints the median of:

* full frame  — drawing all splats (sorted, uploaded) incl. glFinish;
* sort        — the 16-bit radix depth sort of all splats;
* full upd.   — the background refinement: sort + SH colours + gather (worker thread work);
* moving      — one interactive frame while orbiting: budget sort + gather + upload + draw;
                the budget adapts to the frame time (target 60 ms), its settled size is
                printed as "drawn moving";
* coverage    — total area of the splat quads / screen area: the rasterisation load, which
                dominates full frames on llvmpipe (a flat-colour fragment shader is ~85 %
                as slow as the real one).

Run: ``xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/viewer_bench.py``
(add ``--sizes 10000,100000`` for a shorter run). Targets: moving <= 100 ms and full <= 1 s at 1M.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

from splatstudio.model.splatcloud import SplatCloud, logit  # noqa: E402


def random_scene(n: int, seed: int = 0, splat_size: float = 1.0) -> SplatCloud:
    """A trained-scene-like cloud: a blob of radius ~2, small anisotropic splats, SH degree 3."""
    rng = np.random.default_rng(seed)
    size_factor = splat_size * (100_000 / n) ** (1 / 3)  # denser scenes have smaller splats, like real ones
    return SplatCloud(
        positions=rng.normal(0.0, 1.0, (n, 3)),
        scales=rng.normal(np.log(0.02 * size_factor), 0.5, (n, 3)),
        rotations=rng.normal(size=(n, 4)),
        opacities=logit(rng.uniform(0.1, 0.99, n)),
        sh_dc=rng.normal(0.0, 0.6, (n, 3)),
        sh_rest=rng.normal(0.0, 0.05, (n, 15, 3)),
    )


def coverage(scene, view: np.ndarray, intr, near: float) -> float:
    """Sum of the on-screen splat quad areas (as the vertex shader sizes them) / screen area."""
    from splatstudio.render.viewer import project_conics

    cov6 = np.column_stack([scene.static["a_cov_a"], scene.static["a_cov_b"]]).astype(np.float64)
    centres, conics, _, valid = project_conics(scene.positions, cov6, view, intr, near)
    det = conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2
    k = np.minimum(3.0, np.sqrt(2.0 * np.log(np.maximum(255.0 * np.minimum(scene.alphas, 0.99), 1.0))))
    area = 4.0 * k**2 / np.sqrt(np.where(valid, det, 1.0))
    inside = (
        valid & (centres[:, 0] > 0) & (centres[:, 0] < intr.width) & (centres[:, 1] > 0) & (centres[:, 1] < intr.height)
    )
    return float(area[inside].sum() / (intr.width * intr.height))


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def bench(n: int, size: tuple[int, int], repeat: int, splat_size: float = 1.0) -> dict:
    from PySide6 import QtCore
    from vispy import gloo

    from splatstudio.render.camera import Pose
    from splatstudio.render.sorting import sort_back_to_front
    from splatstudio.render.viewer import SplatCanvas, build_frame, splat_colors

    canvas = SplatCanvas(size=size)
    canvas.native.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    canvas.show()
    canvas.app.process_events()
    try:
        canvas.load(random_scene(n, splat_size=splat_size))
        canvas.set_camera(pose=Pose.look_at(np.array([4.5, -3.0, 2.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])))
        scene, view, eye = canvas.scene, canvas.pose.view_matrix(), canvas.pose.center
        canvas.render_image(size)  # upload the full, exact frame

        def full_frame() -> None:
            canvas.set_current()
            canvas.on_draw(None)

        results = {"full": _median_ms(full_frame, repeat)}
        results["sort"] = _median_ms(lambda: sort_back_to_front(scene.positions, view, near=canvas.near), repeat)
        results["refine"] = _median_ms(
            lambda: build_frame(scene, splat_colors(scene, eye, 3), view, canvas.near), max(1, repeat // 2)
        )

        def moving_frame() -> None:
            canvas.orbit.orbit(0.02, 0.0)
            canvas._interacted()
            canvas.set_current()
            canvas.on_draw(None)

        for _ in range(6):  # let the adaptive budget settle
            moving_frame()
        results["moving"] = _median_ms(moving_frame, repeat)
        results["drawn_moving"] = canvas.stats.splats_drawn
        results["renderer"] = gloo.gl.glGetParameter(gloo.gl.GL_RENDERER)
        results["coverage"] = coverage(scene, view, canvas.intrinsics(*size), canvas.near)
        return results
    finally:
        canvas.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated splat counts")
    parser.add_argument("--resolution", default="1280x720")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--splat-size", type=float, default=1.0, help="scale of the splats (coverage ~ its square)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.resolution.split("x"))

    from splatstudio.render.viewer import DEFAULT_BUDGET, use_gl_backend

    use_gl_backend()
    print(f"viewer benchmark at {width}x{height}, moving budget {DEFAULT_BUDGET:,} splats, median of {args.repeat}")
    header = f"{'splats':>10} {'full frame':>11} {'sort':>8} {'refine':>8} {'moving':>8} {'drawn moving':>13} {'coverage':>9}"
    renderer_printed = False
    for n in (int(v) for v in args.sizes.split(",")):
        r = bench(n, (width, height), args.repeat, args.splat_size)
        if not renderer_printed:
            print(f"renderer: {r['renderer']}")
            print(header)
            renderer_printed = True
        print(f"{n:>10,} {r['full']:>8.0f} ms {r['sort']:>5.0f} ms {r['refine']:>5.0f} ms {r['moving']:>5.0f} ms "
              f"{int(r['drawn_moving']):>13,} {r['coverage']:>8.0f}x")  # fmt: skip


if __name__ == "__main__":
    main()
