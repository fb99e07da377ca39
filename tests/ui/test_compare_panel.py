"""The compare panel's pictures (issue 23, item 4): the photo, the trainer's render, the two blended by a
slider, and their difference, for the photo whose viewpoint the view is at. Measured views are given here as
``render.py`` leaves them (a render and the photo it was compared with); the full run that measures them is
in ``test_runs.py``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from splatstudio.pipeline.train import ViewMeasure
from splatstudio.ui.compare_panel import BLEND_DEFAULT, ComparePanel
from splatstudio.ui.workers import Workers


@dataclass
class Camera:
    name: str


class FakeViewer:
    """What the panel reads of the 3D view: its training cameras and which one the view is at."""

    def __init__(self, names: list[str]) -> None:
        self.training_cameras = [Camera(name) for name in names]
        self.photo_index = 0


def _shown(panel: ComparePanel) -> np.ndarray:
    """The picture the panel shows, as the worker made it (the pixmap itself holds the X server's colour
    depth: 16 bits under pytest-xvfb)."""
    width, height, data = panel.shown_rgb
    return np.frombuffer(data, np.uint8).reshape(height, width, 3).astype(int)


def test_blended_mixes_photo_and_render_by_the_slider(qtbot, tmp_path: Path, artifacts) -> None:
    folder = tmp_path / "project"
    (folder / "images").mkdir(parents=True)
    photo = np.zeros((60, 80, 3), np.uint8)
    photo[:, :, 0] = 200  # a red photo with a white square
    photo[20:40, 30:50] = 255
    render = np.zeros((60, 80, 3), np.uint8)
    render[:, :, 2] = 160  # a blue render
    Image.fromarray(photo).save(folder / "images" / "IMG_0001.png")
    Image.fromarray(photo).save(tmp_path / "gt.png")
    Image.fromarray(render).save(tmp_path / "render.png")

    workers = Workers()
    panel = ComparePanel(workers)
    qtbot.addWidget(panel)
    panel.resize(400, 300)
    panel.show()
    panel.viewer = FakeViewer(["IMG_0001"])
    panel.folder = str(folder)
    panel.held_out = 1
    panel.measures = {"IMG_0001": ViewMeasure("IMG_0001", 21.0, 0.7, True, tmp_path / "render.png",
                                              tmp_path / "gt.png")}
    show = panel._show_picture

    def record(folder, index, mode, name, picture, mix=None):
        panel.shown_rgb = picture
        show(folder, index, mode, name, picture, mix)

    panel.shown_rgb = None
    panel._show_picture = record
    modes = [panel.mode.itemData(i) for i in range(panel.mode.count())]
    assert modes == ["photo", "render", "blended", "difference"]

    panel.update_view()
    assert not panel.blend_row.isVisible()
    assert "21.00 dB, SSIM 0.700 — " in panel.caption.text() and "exposure" not in panel.caption.text()
    panel.measures["IMG_0001"] = replace(panel.measures["IMG_0001"], gain=1.0834)  # compared at its recorded exposure
    panel.update_view()
    assert "21.00 dB, SSIM 0.700 at the photo's recorded exposure (render x1.08) — " in panel.caption.text()
    qtbot.waitUntil(lambda: panel.shown_rgb is not None, timeout=5_000)
    assert _shown(panel)[5, 5].tolist() == [200, 0, 0] and not panel.photo_view.photo.isNull()  # the photo

    panel.mode.setCurrentIndex(panel.mode.findData("blended"))
    assert panel.blend_row.isVisible() and panel.blend.value() == BLEND_DEFAULT == 50
    assert panel.blend_label.text() == "50 %"
    half = (photo.astype(float) + render) / 2
    qtbot.waitUntil(lambda: _shown(panel)[5, 5, 0] == 100, timeout=5_000)
    assert np.abs(_shown(panel) - half).max() <= 1  # red and blue half each; the square white and blue
    panel.grab().save(str(artifacts / "compare-blended.png"))

    panel.blend.setValue(25)  # a quarter of the render
    qtbot.waitUntil(lambda: _shown(panel)[5, 5, 2] == 40, timeout=5_000)
    assert np.abs(_shown(panel) - (0.75 * photo + 0.25 * render)).max() <= 1 and panel.blend_label.text() == "25 %"
    panel.blend.setValue(100)  # all render
    qtbot.waitUntil(lambda: _shown(panel)[5, 5, 2] == 160, timeout=5_000)
    assert np.array_equal(_shown(panel), render)

    panel.mode.setCurrentIndex(panel.mode.findData("difference"))
    assert not panel.blend_row.isVisible()
    qtbot.waitUntil(lambda: _shown(panel)[5, 5].tolist() == [255, 0, 255], timeout=5_000)  # x 4, capped
    panel.measures = {}
    panel.mode.setCurrentIndex(panel.mode.findData("blended"))
    assert "blended with the photo" in panel.photo_view.text()  # not measured yet: it says what to do
    workers.pool.waitForDone(5_000)
