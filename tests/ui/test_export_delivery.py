"""The export dialog's splat targets and web / mobile preset (issue 23, Delivery): the count and the size
shown before writing are those of the file that is then written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from splatstudio.io.decimate import keep_most_important
from splatstudio.io.formats import load_splats, save_splats
from splatstudio.model import humanize
from splatstudio.model.splatcloud import SplatCloud
from splatstudio.ui.export_dialog import WEB_FORMAT, ExportDialog
from splatstudio.ui.workers import Workers


def random_cloud(n: int, seed: int) -> SplatCloud:
    rng = np.random.default_rng(seed)
    return SplatCloud(positions=rng.normal(0, 3, (n, 3)), scales=rng.normal(-4, 1, (n, 3)),
                      rotations=rng.normal(size=(n, 4)), opacities=rng.normal(0, 2, n),
                      sh_dc=rng.normal(size=(n, 3)), sh_rest=rng.normal(0, 0.2, (n, 15, 3)))


def test_web_preset_and_targets_preview_exactly_what_is_written(qtbot, tmp_path: Path) -> None:
    cloud = random_cloud(3000, seed=11)
    source = tmp_path / "point_cloud.ply"
    save_splats(cloud, source)
    workers = Workers()
    dialog = ExportDialog(source, None, "Scene", workers, extension=".ply")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled(), timeout=20_000)
    assert dialog.summary.text().startswith("3,000 of 3,000 splats · ")

    dialog.amount.setCurrentIndex(dialog.amount.findData("web"))
    assert dialog.extension == WEB_FORMAT and not dialog.target_count.isEnabled()
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled(), timeout=20_000)
    # a small scene fits the preset whole
    assert dialog.summary.text() == f"3,000 of 3,000 splats · {humanize.format_size(dialog.preview.size)} as .sog"

    dialog.amount.setCurrentIndex(dialog.amount.findData("count"))
    assert dialog.target_count.isEnabled() and dialog.extension == WEB_FORMAT
    dialog.target_count.setValue(700)
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled() and dialog.preview.count == 700, timeout=20_000)
    assert dialog.summary.text().startswith("700 of 3,000 splats (the most visible) · ")

    dialog.amount.setCurrentIndex(dialog.amount.findData("size"))
    dialog.target_mb.setValue(0.02)
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled() and dialog.preview.size <= 20_000, timeout=30_000)
    preview = dialog.preview
    assert 0 < preview.count < 3000 and preview.size > 0.9 * 20_000
    shown = f"{preview.count:,} of 3,000 splats (the most visible) · {humanize.format_size(preview.size)} as .sog"
    assert dialog.summary.text() == shown

    dialog.export_to(str(tmp_path / "web"))
    qtbot.waitUntil(lambda: (tmp_path / "web.sog").exists() and not dialog.isVisible(), timeout=20_000)
    written = tmp_path / "web.sog"
    assert written.stat().st_size == preview.size  # the size shown before writing, to the byte
    back = load_splats(written)
    assert len(back) == preview.count
    expected = keep_most_important(cloud, preview.count).positions
    assert abs(back.positions.mean(axis=0) - expected.mean(axis=0)).max() < 1e-2
