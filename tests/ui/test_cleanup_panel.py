"""The guided clean-up on the project page (issue 23, item 1), in the real window: the strength previews
in the 3D view exactly what the clean-up removes, and is kept with the project."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _ui_helpers import write_cameras
from dataset_builders import junk_scene, ring_views
from PIL import Image

from splatstudio.io.formats import load_splats, save_splats
from splatstudio.model.cleanup import cleanup_mask, cleanup_scores
from splatstudio.model.project import RESULT_PLY, TRAIN_CAMERAS


def test_the_strength_previews_what_goes_and_is_kept_with_the_project(window, qtbot, make_project, artifacts):
    folder = Path(make_project("Junk"))
    cloud, parts = junk_scene()
    views = ring_views()
    save_splats(cloud, folder / RESULT_PLY)
    write_cameras(folder / TRAIN_CAMERAS, views)
    window.open_project(str(folder))
    page = window.project_page
    panel = page.cleanup
    qtbot.waitUntil(lambda: page._viewer.scene is not None and len(page._viewer.scene) == len(cloud), timeout=20_000)
    assert panel.isEnabled() and panel.slider.value() == 0 and not panel.isVisible()
    page.cleanup_button.click()  # Clean up…
    assert panel.isVisible()

    panel.slider.setValue(50)
    qtbot.waitUntil(lambda: panel.summary.text().startswith("Removes "), timeout=20_000)
    expected, _counts = cleanup_mask(cleanup_scores(cloud, views), 0.5)
    qtbot.waitUntil(lambda: page._viewer.scene.marked is not None, timeout=5_000)
    assert np.array_equal(page._viewer.scene.marked, expected) and not page._viewer.scene.hide_marked
    for name in ("faint", "oversized", "unseen", "far", "isolated"):
        assert expected[parts[name]].all(), name
    assert f"{int(expected.sum()):,} of {len(cloud):,} splats" in panel.summary.text()
    assert json.loads((folder / "edits.json").read_text()) == {"cleanup": 0.5}
    page._viewer.reset_view()
    assert page._viewer.wait_until_idle(30.0)
    qtbot.wait(200)
    window.grab().save(str(artifacts / "cleanup-preview.png"))
    Image.fromarray(page._viewer.render_image()).save(str(artifacts / "cleanup-preview-view.png"))  # the view
    panel.hide_box.setChecked(True)
    assert page._viewer.scene.hide_marked

    # applied when exported: exactly the previewed splats are missing from the file
    dialog = page.open_export_dialog()
    assert dialog.cleanup[2][folder / RESULT_PLY] is panel.mask  # the preview's mask, not scored again
    qtbot.waitUntil(lambda: "after the clean-up removed" in dialog.summary.text(), timeout=30_000)
    assert f"{len(cloud) - int(expected.sum()):,} of {len(cloud):,} splats" in dialog.summary.text()
    target = folder.parent / "cleaned.ply"
    with qtbot.waitSignal(dialog.sig_exported, timeout=30_000):
        dialog.export_to(str(target))
    written = load_splats(target)
    assert np.array_equal(written.positions, cloud.positions[~expected])

    before = page._viewer.scene
    window.open_project(str(folder))  # the strength comes back with the project, and its preview
    qtbot.waitUntil(lambda: page._viewer.scene is not before and page._viewer.scene.marked is not None,
                    timeout=20_000)
    assert panel.slider.value() == 50 and np.array_equal(page._viewer.scene.marked, expected)
    assert panel.isVisible()  # a kept clean-up shows itself

    panel.reset_button.click()
    qtbot.waitUntil(lambda: page._viewer.scene.marked is None, timeout=5_000)
    qtbot.waitUntil(lambda: json.loads((folder / "edits.json").read_text()) == {"cleanup": 0.0}, timeout=5_000)
