"""Screenshots without a visible window, and the ``splatstudio view`` command.

`render_screenshot` loads a splat file, renders one full-quality frame (all splats, final
sort, exact SH colours) with the real GL canvas in a window that is never mapped on screen
(``WA_DontShowOnScreen``) and writes a PNG; thumbnails and ``view --screenshot`` use it.
`view_main` opens the interactive viewer. `cli_view` parses the command line for both.

Qt needs a display with OpenGL: a desktop session, or Xvfb with Mesa (``xvfb-run``) on a
server; the ``xcb`` platform is used when none is set, as ``offscreen`` gives vispy no
OpenGL context.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splatstudio.io.errors import FormatError
from splatstudio.model.splatcloud import SplatCloud, SplatValidationError
from splatstudio.render.camera import (
    CameraSpecError,
    TrainingCamera,
    camera_from_spec,
    load_training_cameras,
    parse_camera_spec,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_SIZE = (1280, 720)


class ViewError(Exception):
    """A problem to report to the user as one line (bad file, bad camera, no display)."""


@dataclass
class ViewOptions:
    """What ``splatstudio view`` was asked to do."""

    path: Path
    screenshot: Path | None = None
    size: tuple[int, int] | None = None
    camera: str | None = None
    cameras: str | None = None
    sh_degree: int = 3


# ------------------------------------------------------------------------------------ helpers


def parse_size(text: str) -> tuple[int, int]:
    """``'1280x720'`` -> (1280, 720); raises ValueError on anything else."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"size must look like 1280x720, got {text!r}")
    width, height = int(parts[0]), int(parts[1])
    if not (1 <= width <= 16384 and 1 <= height <= 16384):
        raise ValueError(f"size {width}x{height} is out of range (1..16384)")
    return width, height


def read_cloud(path: str | os.PathLike[str]) -> SplatCloud:
    """Load a splat file, turning every file problem into a `ViewError` with a clear message."""
    from splatstudio.io.formats import load_splats

    path = Path(path)
    if path.is_dir():
        raise ViewError(f"{path}: is a folder, not a splat file (.ply, .splat, .spz...)")
    if not path.is_file():
        raise ViewError(f"{path}: no such file")
    try:
        cloud = load_splats(path)
        cloud.validate()
    except FormatError as exc:
        raise ViewError(str(exc)) from None
    except SplatValidationError as exc:
        raise ViewError(f"{path.name}: {exc}") from None
    except OSError as exc:
        raise ViewError(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    if len(cloud) == 0:
        raise ViewError(f"{path.name}: the file holds no splats")
    return cloud


def _camera(spec: str) -> TrainingCamera:
    try:
        return camera_from_spec(spec)
    except (CameraSpecError, FormatError) as exc:
        raise ViewError(str(exc)) from None


def _training_cameras(spec: str) -> list[TrainingCamera]:
    path, _ = parse_camera_spec(spec)
    if not path.exists():
        raise ViewError(f"camera file {path} does not exist")
    try:
        return load_training_cameras(path)
    except (CameraSpecError, FormatError) as exc:
        raise ViewError(str(exc)) from None


def cameras_beside(path: Path) -> Path | None:
    """The training cameras that came with a splat file, where our layouts put them: beside it, in a trainer
    output (``MODEL/point_cloud/iteration_N/point_cloud.ply`` -> ``MODEL/cameras.json``) or in a project
    (``PROJECT/output/point_cloud.ply`` -> ``PROJECT/train/cameras.json``); None when there are none."""
    folder = path.resolve().parent
    for candidate in (folder / "cameras.json", folder.parent.parent / "cameras.json",
                      folder.parent / "train" / "cameras.json"):
        if candidate.is_file():
            return candidate
    return None


def _cameras_for(path: Path, spec: str | None) -> list[TrainingCamera]:
    """The cameras ``--cameras`` names, else those beside the file (a damaged file beside it is ignored:
    the scene still opens, framed from its splats)."""
    if spec:
        return _training_cameras(spec)
    found = cameras_beside(path)
    if found is None:
        return []
    try:
        return load_training_cameras(found)
    except (CameraSpecError, FormatError, OSError):
        return []


def _sparse_points(spec: str) -> tuple[np.ndarray, np.ndarray] | None:
    path, _ = parse_camera_spec(spec)
    if not path.is_dir():
        return None
    from splatstudio.io.colmap import read_points3d

    try:
        points = read_points3d(path)
    except (FormatError, FileNotFoundError):
        return None
    return points.xyz.astype(np.float32), points.rgb


def ensure_qt_platform() -> None:
    """Choose the ``xcb`` Qt platform unless one is set; fail clearly without any display."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return
    if os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "xcb"
    elif sys.platform.startswith("linux") and not os.environ.get("WAYLAND_DISPLAY"):
        raise ViewError("no display: the viewer needs OpenGL on X11 or Wayland (on a server, run under xvfb-run)")


def _create_canvas(size: tuple[int, int], sh_degree: int, visible: bool):
    ensure_qt_platform()
    from PySide6 import QtCore

    from splatstudio.render.viewer import SplatCanvas, use_gl_backend

    use_gl_backend()
    try:
        canvas = SplatCanvas(size=size, sh_degree=sh_degree)
    except Exception as exc:  # no GL context, missing libraries...
        raise ViewError(f"cannot create an OpenGL window: {exc}") from None
    if not visible:
        canvas.native.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    canvas.show()
    canvas.app.process_events()
    return canvas


# ------------------------------------------------------------------------------------ screenshots


def render_screenshot(
    path_in: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    camera: str | None = None,
    cameras: str | None = None,
    sh_degree: int = 3,
) -> Path:
    """Render `path_in` (.ply / .splat) to the PNG `out_png` and return its path.

    `camera` is ``'cameras.json:INDEX'`` or ``'COLMAP_MODEL_FOLDER:INDEX'``; without it the
    scene is framed from its home view (`cameras`, else those beside the file: `cameras_beside`). `size`
    (width, height) defaults to the camera's photo size, else 1280x720. Raises `ViewError`.
    """
    cloud = read_cloud(path_in)
    cam = _camera(camera) if camera else None
    training = _cameras_for(Path(path_in), cameras)
    if size is None:
        size = (cam.intrinsics.width, cam.intrinsics.height) if cam else DEFAULT_SIZE
    canvas = _create_canvas(size, sh_degree, visible=False)
    try:
        canvas.load(cloud)
        if training:
            canvas.set_training_cameras(training)
            canvas.reset_view()
        if cam is not None:
            canvas.set_camera(pose=cam.pose, intrinsics=cam.intrinsics)
        out = Path(out_png)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            return canvas.screenshot(out, size=size)
        except OSError as exc:
            raise ViewError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        canvas.dispose()


# ------------------------------------------------------------------------------------ interactive


def view_main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``splatstudio view FILE [...]`` (default: ``sys.argv[1:]``).

    Opens the interactive window, or with ``--screenshot`` writes the PNG; returns the exit code.
    """
    return cli_view(list(sys.argv[1:] if argv is None else argv))


def _run_interactive(options: ViewOptions) -> None:
    cloud = read_cloud(options.path)
    training = _cameras_for(options.path, options.cameras)
    cam = _camera(options.camera) if options.camera else None
    canvas = _create_canvas(options.size or DEFAULT_SIZE, options.sh_degree, visible=True)
    canvas.screenshot_dir = Path.cwd()
    canvas.load(cloud)
    if training:
        canvas.set_training_cameras(training)
        canvas.overlays.frustums = True
        canvas.reset_view()
    if options.cameras:
        sparse = _sparse_points(options.cameras)
        if sparse is not None:
            canvas.set_sparse_points(*sparse)
    if cam is not None:
        canvas.set_camera(pose=cam.pose, intrinsics=cam.intrinsics)
    name = options.path.name

    def show_stats(stats) -> None:
        canvas.title = f"{name} — {stats.text()}"

    canvas.signals.sig_stats_changed.connect(show_stats)
    from splatstudio.services.main_thread_gc import MainThreadCollector

    collector = MainThreadCollector()
    collector.start()
    try:
        canvas.app.run()
    finally:
        collector.stop()
        # closing the window ends the event loop, but vispy sees no close: the sort thread would run on
        # and the garbage collector destroy the GL widget at any later moment
        canvas.dispose()


# ------------------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splatstudio view",
        description="Show a Gaussian-splat scene (.ply, .splat), or save a screenshot of it.",
        epilog="Keys: mouse drag orbit / right-drag pan / wheel zoom, WASD QE fly, R reset, "
        "arrows PageUp PageDown training cameras, F12 screenshot, G X C P overlays, 0-3 SH degree.",
    )
    parser.add_argument("file", type=Path, help="splat file (.ply or .splat)")
    parser.add_argument("--screenshot", type=Path, metavar="OUT.png", help="render one frame to a PNG and exit")
    parser.add_argument("--size", type=parse_size, metavar="WxH", help="image or window size, e.g. 1280x720")
    parser.add_argument(
        "--camera", metavar="SPEC", help="view from a training camera: cameras.json:INDEX or SPARSE_FOLDER:INDEX"
    )
    parser.add_argument(
        "--cameras", metavar="SPEC", help="training cameras to step through: cameras.json or a COLMAP model folder"
    )
    parser.add_argument(
        "--sh-degree", type=int, default=3, choices=range(4), metavar="N", help="SH degree 0..3 (default 3)"
    )
    return parser


def parse_view_args(args: Sequence[str]) -> ViewOptions:
    """Parse ``view`` arguments; raises SystemExit(2) with argparse's message on a usage error."""
    ns = build_parser().parse_args(list(args))
    return ViewOptions(ns.file, ns.screenshot, ns.size, ns.camera, ns.cameras, ns.sh_degree)


def cli_view(args_list: Sequence[str]) -> int:
    """``splatstudio view FILE [--screenshot OUT.png] [--size WxH] [--camera SPEC] [--cameras SPEC]
    [--sh-degree N]``: 0 on success, 1 when the work failed (message on stderr), 2 on a usage error."""
    try:
        options = parse_view_args(args_list)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    try:
        if options.screenshot is not None:
            out = render_screenshot(options.path, options.screenshot, options.size, options.camera,
                                    options.cameras, options.sh_degree)  # fmt: skip
            print(f"wrote {out}")
        else:
            _run_interactive(options)
    except ViewError as exc:
        print(f"splatstudio view: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(cli_view(sys.argv[1:]))
