"""Viewer frame times on this machine's OpenGL (Mesa llvmpipe under Xvfb on servers).

For random scenes of 10k / 100k / 1M splats at 1280x720 prints the median of:

* GL draw    — drawing all splats with OpenGL (already sorted and uploaded), bounded by glFinish;
* cpu        — the process CPU time of that draw (all llvmpipe threads): on a machine shared with
  other work (a training run) wall times vary with the share of the CPU this process gets;
* composited — the same full-quality frame from the CPU compositor (`splatstudio.render.composite`,
  numba): composite, upload the image, draw it;
* new view   — everything a full-quality frame from a new viewpoint costs, the way the viewer makes
  it (``compositor="auto"``: composited on software GL above the moving budget, else OpenGL): SH
  colours for the new direction, depth sort, composite, uploads, draw; "(GL)" the same drawn with
  OpenGL;
* sort / colours — those parts alone (the 16-bit radix depth sort of all splats; SH degree 3 with
  numpy, and "fast" with the compositor's numba kernel, which the sort thread uses);
* moving     — one interactive frame while orbiting: budget sort + index upload + draw, after the
  budget adapted to the frame time (target 60 ms); "drawn" is its settled size;
* coverage   — total area of the splats' bounding squares / screen area: the rasterisation load;
* load       — the 1-minute load average when the size was measured.

Run: ``xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/viewer_bench.py``
(add ``--sizes 10000,100000`` for a shorter run). Targets: moving <= 100 ms and full <= 1 s at 1M.
``--small`` measures what one live-preview frame of a small scene costs the GUI thread instead
(see `bench_small`). ``--selection`` measures the edit mode's selection preview instead (see
`bench_selection`; target <= 100 ms at 1M splats, issue 23). ``--cleanup`` measures the clean-up's
preview (see `bench_cleanup`; target <= 1 s at 1M splats, issue 23). ``--issue23`` prints every figure issue
23 asks for at 1M splats: the selection and clean-up previews, then decimation to 25 % and SOG's write and
read times and bytes a splat (``formats_bench.py``'s measures), each line with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

from splatstudio.model.splatcloud import SplatCloud, logit  # noqa: E402


def random_scene(n: int, seed: int = 0, splat_size: float = 1.0, elongate: float = 0.0) -> SplatCloud:
    """A trained-scene-like cloud: a blob of radius ~2, small anisotropic splats, SH degree 3.

    `elongate` is added to the log scale of every splat's first axis (1.5: needles 4.5x longer)."""
    rng = np.random.default_rng(seed)
    size_factor = splat_size * (100_000 / n) ** (1 / 3)  # denser scenes have smaller splats, like real ones
    scales = rng.normal(np.log(0.02 * size_factor), 0.5, (n, 3))
    scales[:, 0] += elongate
    return SplatCloud(
        positions=rng.normal(0.0, 1.0, (n, 3)),
        scales=scales,
        rotations=rng.normal(size=(n, 4)),
        opacities=logit(rng.uniform(0.1, 0.99, n)),
        sh_dc=rng.normal(0.0, 0.6, (n, 3)),
        sh_rest=rng.normal(0.0, 0.05, (n, 15, 3)),
    )


def coverage(scene, view: np.ndarray, intr, near: float) -> float:
    """Sum of the on-screen point areas (as the geometry shader sizes them) / screen area."""
    from splatstudio.render.picking import project_conics

    cov6 = np.column_stack([scene.static["a_cov_a"], scene.static["a_cov_b"]]).astype(np.float64)
    centres, conics, _, valid = project_conics(scene.positions, cov6, view, intr, near)
    det = np.where(valid, conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2, 1.0)
    k = np.minimum(3.0, np.sqrt(2.0 * np.log(np.maximum(255.0 * np.minimum(scene.alphas, 0.99), 1.0))))
    side = 2.0 * k * np.sqrt(np.maximum(conics[:, 0], conics[:, 2]) / det)  # 2 k sqrt(max(cov_xx, cov_yy))
    inside = (
        valid & (centres[:, 0] > 0) & (centres[:, 0] < intr.width) & (centres[:, 1] > 0) & (centres[:, 1] < intr.height)
    )
    return float((side[inside] ** 2).sum() / (intr.width * intr.height))


def _median_ms(fn, repeat: int) -> float:
    return _median_wall_cpu(fn, repeat)[0]


def _median_wall_cpu(fn, repeat: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append((time.perf_counter() - start) * 1000.0)
        cpus.append((time.process_time() - cpu) * 1000.0)
    return statistics.median(walls), statistics.median(cpus)


def _hidden_canvas(size: tuple[int, int], visible: bool = False, **kwargs):
    """A canvas in a window that is never mapped on screen (`visible`: a real, mapped window)."""
    from PySide6 import QtCore

    from splatstudio.render.viewer import SplatCanvas

    canvas = SplatCanvas(size=size, **kwargs)
    if not visible:
        canvas.native.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    canvas.show()
    canvas.app.process_events()
    return canvas


def bench(n: int, size: tuple[int, int], repeat: int, splat_size: float = 1.0, elongate: float = 0.0) -> dict:
    from vispy import gloo

    from splatstudio.render import composite
    from splatstudio.render.camera import Pose
    from splatstudio.render.frames import build_frame, composite_frame
    from splatstudio.render.scene import splat_colors
    from splatstudio.render.sorting import sort_back_to_front

    load_before = os.getloadavg()[0]
    canvas = _hidden_canvas(size, compositor="gl")
    try:
        canvas.load(random_scene(n, splat_size=splat_size, elongate=elongate))
        canvas.set_camera(pose=Pose.look_at(np.array([4.5, -3.0, 2.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])))
        scene, view, eye = canvas.scene, canvas.pose.view_matrix(), canvas.pose.center
        canvas.render_image(size)  # upload the full, exact frame

        def full_frame() -> None:
            canvas.set_current()
            canvas.on_draw(None)

        results: dict = {"renderer": gloo.gl.glGetParameter(gloo.gl.GL_RENDERER)}
        results["full"], results["full_cpu"] = _median_wall_cpu(full_frame, repeat)
        results["sort"] = _median_ms(lambda: sort_back_to_front(scene.positions, view, near=canvas.near), repeat)
        results["colors"] = _median_ms(lambda: splat_colors(scene, eye, 3), max(1, repeat // 2))
        results["colors_fast"] = float("nan")
        if composite.warm_up():
            results["colors_fast"] = _median_ms(lambda: splat_colors(scene, eye, 3, fast=True), max(1, repeat // 2))

        def new_view(compositor: str):
            """A full-quality frame from a slightly different viewpoint, all synchronously: SH colours,
            sort, (composite,) upload, draw."""

            def run() -> None:
                canvas.compositor = compositor
                canvas.orbit.orbit(0.05, 0.0)
                canvas._pose = canvas.orbit.pose()
                canvas.set_current()
                new_eye, new_view = canvas.pose.center, canvas.pose.view_matrix()
                cpu = canvas._composites(n) and n > canvas.budget  # what the sort thread does
                colors = splat_colors(scene, new_eye, 3, fast=cpu)
                frame = build_frame(scene, colors, new_view, canvas.near)
                frame.generation = canvas._generation
                if canvas._composites(n):
                    composite_frame(scene, frame, new_view, canvas.intrinsics(), canvas.near)
                canvas._upload_frame(frame)
                canvas.on_draw(None)

            return run

        results["new_view_gl"] = _median_ms(new_view("gl"), max(1, repeat // 2))
        if composite.available():
            canvas.compositor = "cpu"
            here, here_view = canvas.pose.center, canvas.pose.view_matrix()  # moved by new_view
            frame = build_frame(scene, splat_colors(scene, here, 3), here_view, canvas.near)
            frame.generation = canvas._generation

            def composited() -> None:
                composite_frame(scene, frame, here_view, canvas.intrinsics(), canvas.near)
                canvas.set_current()
                canvas._upload_frame(frame)
                canvas.on_draw(None)

            results["composited"] = _median_ms(composited, repeat)
            results["new_view"] = _median_ms(new_view("auto"), max(1, repeat // 2))
        else:
            results["composited"] = float("nan")
            results["new_view"] = results["new_view_gl"]
        canvas.compositor = "auto"

        def moving_frame() -> None:
            canvas.orbit.orbit(0.02, 0.0)
            canvas._interacted()
            canvas.set_current()
            canvas.on_draw(None)

        for _ in range(8):  # let the adaptive budget settle
            moving_frame()
        results["moving"] = _median_ms(moving_frame, repeat)
        results["drawn_moving"] = canvas.stats.splats_drawn
        results["coverage"] = coverage(scene, view, canvas.intrinsics(*size), canvas.near)
        results["load"] = (load_before + os.getloadavg()[0]) / 2
        return results
    finally:
        canvas.close()


def bench_small(n: int, size: tuple[int, int], repeat: int, compositor: str = "auto") -> dict:
    """What a small scene (a live training preview) costs the GUI thread, in a window of `size`.

    * frame   — one repaint through Qt (``update`` + event processing: paintGL, the widget's
      composition and buffer swap), the view unchanged;
    * reload  — a new preview of the same size arriving (`SplatCanvas.load` with the scene already
      prepared in a worker and the camera kept, as the project page does) until its frame is
      painted: the wall time the user waits for it;
    * blocked — the part of a reload the GUI thread spends in the viewer (``load``, taking the
      sort thread's result, drawing), i.e. not processing other events;
    * draw    — the canvas' own measure of the reload's paint (`ViewerStats.frame_ms`).
    """
    from splatstudio.render.camera import Pose
    from splatstudio.render.scene import prepare_scene

    try:
        from splatstudio.render import composite
    except ImportError:  # an older viewer, for before/after figures
        composite = None
    options = {} if compositor == "auto" else {"compositor": compositor}
    canvas = _hidden_canvas(size, visible=True, **options)
    try:
        scenes = [prepare_scene(random_scene(n, seed=seed)) for seed in range(repeat + 2)]
        canvas.load(scenes[0])
        canvas.set_camera(pose=Pose.look_at(np.array([4.5, -3.0, 2.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])))
        app = canvas.app
        frames = [0]
        busy = [0.0]

        def on_stats(stats) -> None:
            frames[0] += 1
            busy[0] += stats.frame_ms / 1000.0

        canvas.signals.sig_stats_changed.connect(on_stats)
        canvas.signals.sig_frame_ready.disconnect(canvas._on_frame_ready)

        def frame_ready(frame) -> None:
            start = time.perf_counter()
            canvas._on_frame_ready(frame)
            busy[0] += time.perf_counter() - start

        canvas.signals.sig_frame_ready.connect(frame_ready)

        def paint() -> None:
            drawn = frames[0]
            canvas.update()
            while frames[0] == drawn:
                app.process_events()

        paint()
        if compositor != "gl" and composite is not None and composite.available():
            composite.warm_up()
        reloads = iter(scenes[1:])

        def reload() -> None:
            drawn = frames[0]
            start = time.perf_counter()
            canvas.load(next(reloads), reset_camera=False)
            busy[0] += time.perf_counter() - start
            while frames[0] == drawn:
                app.process_events()

        reload()  # the first reload after warming up
        results: dict = {}
        results["frame"], _ = _median_wall_cpu(paint, repeat)
        blocked = []

        def timed_reload() -> None:
            busy[0] = 0.0
            reload()
            blocked.append(busy[0] * 1000.0)

        results["reload"], results["reload_cpu"] = _median_wall_cpu(timed_reload, repeat)
        results["blocked"] = statistics.median(blocked)
        results["draw_ms"] = canvas.stats.frame_ms
        results["coverage"] = coverage(canvas.scene, canvas.pose.view_matrix(), canvas.intrinsics(), canvas.near)
        results["load"] = os.getloadavg()[0]
        return results
    finally:
        canvas.close()


def bench_selection(n: int, size: tuple[int, int], repeat: int) -> dict:
    """The edit mode's selection preview (issue 23, item 2), through the real tools, edit panel and viewer
    (compositor "auto"): from the end of a rectangle, a 200-point lasso or a 30-point brush stroke to the
    next frame on screen — centres projected and tested, the selection recorded, the view told (tinted colours
    asked of the sort thread) and a frame drawn with the selected centres as points over the last full frame,
    glFinish included. "tinted" is until the full frame with the selected splats tinted has been composited
    in the background and is shown."""
    import math

    from vispy import gloo

    from splatstudio.render.camera import Pose
    from splatstudio.ui.edit_panel import EditPanel

    load_before = os.getloadavg()[0]
    canvas = _hidden_canvas(size)
    panel = None
    try:
        canvas.load(random_scene(n))
        canvas.set_camera(pose=Pose.look_at(np.array([4.5, -3.0, 2.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])))
        from splatstudio.render import composite

        composite.warm_up()  # compiled (numba's cache) before anything is timed
        canvas.wait_until_idle(300.0)
        canvas.update()
        canvas.wait_until_idle(300.0)  # the first composited full frame shown
        panel = EditPanel()
        panel.set_model(canvas, canvas.scene.cloud)
        panel.set_active(True)
        tools = panel.tools
        w, h = canvas.size
        angles = np.linspace(0, 2 * math.pi, 200, endpoint=False)
        shapes = {
            "rectangle": [(0.35 * w, 0.3 * h), (0.65 * w, 0.7 * h)],
            "lasso": [(w / 2 + 0.2 * w * math.cos(a) * (1 + 0.3 * math.sin(5 * a)), h / 2 + 0.25 * h * math.sin(a))
                      for a in angles],
            "brush": [(0.2 * w + 0.6 * w * t, h / 2 + 0.1 * h * math.sin(6 * t)) for t in np.linspace(0, 1, 30)],
        }
        results: dict = {"load": load_before, "renderer": gloo.gl.glGetParameter(gloo.gl.GL_RENDERER)}
        for tool, shape in shapes.items():
            previews, masks, tinted, counts = [], [], [], []
            for _ in range(repeat):
                panel.action("select_none")
                canvas.wait_until_idle(60.0)
                start = time.perf_counter()
                tools.select_shape(tool, shape, "replace")
                canvas.set_current()
                canvas.on_draw(None)
                gloo.gl.glFinish()
                previews.append((time.perf_counter() - start) * 1000.0)
                masks.append(tools.last_timing["total"])
                canvas.wait_until_idle(60.0)
                tinted.append((time.perf_counter() - start) * 1000.0)
                counts.append(panel.session.selected_count)
            results[tool] = (statistics.median(previews), statistics.median(masks), statistics.median(tinted),
                             counts[-1])
        return results
    finally:
        if panel is not None:
            panel.set_active(False)
            panel.deleteLater()
        canvas.close()


def bench_cleanup(n: int, size: tuple[int, int], repeat: int, cameras: int = 30) -> dict:
    """The guided clean-up's preview (issue 23, item 1) in the real viewer (compositor "auto"), as the
    clean-up panel drives it: "first" is the first move of the strength on a model, from the detectors'
    scores (once per model, in a worker: ``cleanup_scores``) to the frame with the removed splats tinted on
    screen; "preview" each later move, from the mask for the new strength (``cleanup_mask``) through
    ``SplatCanvas.mark`` to the tinted full-quality frame drawn, glFinish included. Strengths cycle through
    0.3, 0.5, 0.7, so every preview changes what is tinted."""
    import sys
    from pathlib import Path

    from vispy import gloo

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from dataset_builders import ring_views

    from splatstudio.model.cleanup import cleanup_mask, cleanup_scores
    from splatstudio.render.camera import Pose

    load_before = os.getloadavg()[0]
    canvas = _hidden_canvas(size)
    try:
        cloud = random_scene(n)
        views = ring_views(cameras)
        canvas.load(cloud)
        canvas.set_camera(pose=Pose.look_at(np.array([4.5, -3.0, 2.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])))
        from splatstudio.render import composite

        composite.warm_up()
        canvas.wait_until_idle(300.0)
        canvas.update()
        canvas.wait_until_idle(300.0)

        def show(mask) -> None:
            canvas.mark(mask)
            canvas.wait_until_idle(120.0)
            canvas.set_current()
            canvas.on_draw(None)
            gloo.gl.glFinish()

        start = time.perf_counter()
        scores = cleanup_scores(cloud, views)
        scored = time.perf_counter()
        mask, _ = cleanup_mask(scores, 0.5)
        show(mask)
        first, first_scores = (time.perf_counter() - start) * 1000.0, (scored - start) * 1000.0
        previews, masks, marked = [], [], []
        strengths = (0.3, 0.5, 0.7)
        for i in range(repeat):
            start = time.perf_counter()
            mask, _ = cleanup_mask(scores, strengths[i % 3])
            masks.append((time.perf_counter() - start) * 1000.0)
            show(mask)
            previews.append((time.perf_counter() - start) * 1000.0)
            marked.append(int(mask.sum()))
        return {"load": load_before, "renderer": gloo.gl.glGetParameter(gloo.gl.GL_RENDERER), "first": first,
                "scores": first_scores, "preview": statistics.median(previews), "mask": statistics.median(masks),
                "marked": marked, "load_after": os.getloadavg()[0]}
    finally:
        canvas.close()


def _print_selection(n: int, r: dict) -> None:
    print(f"renderer: {r['renderer']}, load {r['load']:.2f} (1-minute average, before)")
    print(f"{'splats':>10} {'tool':>10} {'selected':>9} {'preview':>9} {'(mask)':>8} {'tinted':>9}")
    for tool in ("rectangle", "lasso", "brush"):
        preview, mask, tinted, count = r[tool]
        print(f"{n:>10,} {tool:>10} {count:>9,} {preview:>6.0f} ms {mask:>5.0f} ms {tinted:>6.0f} ms")


def _print_cleanup(n: int, r: dict) -> None:
    print(f"renderer: {r['renderer']}, load {r['load']:.2f} before, {r['load_after']:.2f} after (1-minute average)")
    print(f"{n:>10,} splats: clean-up preview {r['preview']:.0f} ms a strength (mask {r['mask']:.0f} ms; "
          f"{min(r['marked']):,}-{max(r['marked']):,} tinted), first {r['first'] / 1000:.2f} s with the "
          f"detectors' scores ({r['scores'] / 1000:.2f} s, once per model)")


def issue23(size: tuple[int, int], repeat: int, runs: int) -> None:
    """Every figure issue 23's "done when" asks for, at 1M splats."""
    import argparse as _argparse
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import formats_bench

    n = 1_000_000
    print(f"issue 23 figures: {n:,} splats, {size[0]}x{size[1]}, {os.cpu_count()} CPUs, median of {repeat} "
          f"(formats: {runs} runs)", flush=True)
    print("-- selection preview (target <= 100 ms)", flush=True)
    _print_selection(n, bench_selection(n, size, repeat))
    print("-- clean-up preview (target <= 1 s)", flush=True)
    _print_cleanup(n, bench_cleanup(n, size, repeat))
    print("-- decimation to 25 % and SOG (formats_bench.py, SH degree 3)", flush=True)
    options = _argparse.Namespace(count=n, sh_degree=3, runs=runs, formats="sog", decimate=0.25)
    with tempfile.TemporaryDirectory() as work:
        formats_bench.bench_formats(options, Path(work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated splat counts")
    parser.add_argument("--resolution", default="1280x720")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--splat-size", type=float, default=1.0, help="scale of the splats (coverage ~ its square)")
    parser.add_argument("--elongate", type=float, default=0.0, help="added to the first axis' log scale (needles)")
    parser.add_argument("--small", action="store_true", help="live-preview frames of small scenes instead (900x600)")
    parser.add_argument("--compositor", default="auto", choices=("auto", "cpu", "gl"), help="with --small")
    parser.add_argument("--selection", action="store_true", help="the edit mode's selection preview instead "
                        "(default: 1M splats)")
    parser.add_argument("--cleanup", action="store_true", help="the clean-up's preview instead (default: 1M splats)")
    parser.add_argument("--issue23", action="store_true", help="issue 23's figures: selection and clean-up "
                        "previews, decimation to 25 %%, SOG write/read and size, at 1M splats")
    parser.add_argument("--format-runs", type=int, default=2, help="with --issue23: runs of each format timing")
    args = parser.parse_args()

    from splatstudio.render.viewer import DEFAULT_BUDGET, use_gl_backend

    use_gl_backend()
    width, height = (int(v) for v in args.resolution.split("x"))
    if args.issue23:
        issue23((width, height), args.repeat, args.format_runs)
        return
    if args.selection or args.cleanup:
        sizes = "1000000" if args.sizes == parser.get_default("sizes") else args.sizes
        what = "selection" if args.selection else "clean-up"
        print(f"{what} preview at {width}x{height}, median of {args.repeat}, {os.cpu_count()} CPUs")
        for n in (int(v) for v in sizes.split(",")):
            if args.selection:
                _print_selection(n, bench_selection(n, (width, height), args.repeat))
            else:
                _print_cleanup(n, bench_cleanup(n, (width, height), args.repeat))
        return
    if args.small:
        sizes = "2000,20000" if args.sizes == parser.get_default("sizes") else args.sizes
        resolution = "900x600" if args.resolution == parser.get_default("resolution") else args.resolution
        width, height = (int(v) for v in resolution.split("x"))
        print(f"live-preview frames at {width}x{height}, median of {args.repeat}, compositor={args.compositor}")
        print(f"{'splats':>10} {'frame':>9} {'reload':>9} {'blocked':>9} {'reload cpu':>11} {'draw':>8} "
              f"{'coverage':>9} {'load':>6}")  # fmt: skip
        for n in (int(v) for v in sizes.split(",")):
            r = bench_small(n, (width, height), args.repeat, args.compositor)
            print(f"{n:>10,} {r['frame']:>6.0f} ms {r['reload']:>6.0f} ms {r['blocked']:>6.0f} ms "
                  f"{r['reload_cpu']:>8.0f} ms {r['draw_ms']:>5.0f} ms {r['coverage']:>8.0f}x {r['load']:>6.2f}")  # fmt: skip
        return
    print(f"viewer benchmark at {width}x{height}, moving budget {DEFAULT_BUDGET:,} splats, median of {args.repeat}"
          + (f", elongate {args.elongate}" if args.elongate else ""))  # fmt: skip
    header = (f"{'splats':>10} {'GL draw':>9} {'cpu':>7} {'composited':>11} {'new view':>9} {'(GL)':>8} "
              f"{'sort':>6} {'colours (fast)':>15} {'moving':>7} {'drawn':>8} {'coverage':>9} {'load':>6}")  # fmt: skip
    renderer_printed = False
    for n in (int(v) for v in args.sizes.split(",")):
        r = bench(n, (width, height), args.repeat, args.splat_size, args.elongate)
        if not renderer_printed:
            print(
                f"renderer: {r['renderer']}, {os.cpu_count()} CPUs, LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', '-')}"
            )
            print(header)
            renderer_printed = True
        print(f"{n:>10,} {r['full']:>6.0f} ms {r['full_cpu']:>4.0f} ms {r['composited']:>8.0f} ms "
              f"{r['new_view']:>6.0f} ms {r['new_view_gl']:>5.0f} ms {r['sort']:>3.0f} ms {r['colors']:>5.0f} ({r['colors_fast']:>3.0f}) ms "
              f"{r['moving']:>4.0f} ms {int(r['drawn_moving']):>8,} {r['coverage']:>8.0f}x {r['load']:>6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
