"""The guided clean-up kept with a project is applied by `splatstudio export` (issue 23, item 1), exactly
the splats the window previews; `--cleanup` overrides it."""

from __future__ import annotations

import json
import os

import numpy as np
from dataset_builders import junk_scene, ring_views

from splatstudio.cli import main as cli
from splatstudio.io.formats import load_splats, save_splats
from splatstudio.model.cleanup import cleanup_mask, cleanup_scores
from splatstudio.model.library import Library
from splatstudio.model.project import RESULT_PLY, TRAIN_CAMERAS
from splatstudio.model.settings import Settings


def test_export_applies_the_kept_clean_up_and_cleanup_overrides_it(tmp_path, capsys):
    project = Library(os.environ["SPLATSTUDIO_LIBRARY"]).create_project("Junk", Settings())
    cloud, parts = junk_scene()
    views = ring_views()
    save_splats(cloud, project.path(RESULT_PLY))
    project.path(*TRAIN_CAMERAS.split("/")).parent.mkdir(parents=True, exist_ok=True)
    project.path(*TRAIN_CAMERAS.split("/")).write_text(json.dumps([
        {"id": i, "img_name": f"IMG_{i}", "width": int(views.width[i]), "height": int(views.height[i]),
         "position": views.centres[i].tolist(), "rotation": views.rotations[i].tolist(),
         "fx": float(views.fx[i]), "fy": float(views.fy[i])} for i in range(len(views))]))
    project.set_edits({"cleanup": 0.5})
    expected, _counts = cleanup_mask(cleanup_scores(cloud, views), 0.5)
    assert expected[parts["unseen"]].all() and expected[parts["far"]].all()  # the cameras were used

    assert cli(["export", "Junk", "-o", str(tmp_path / "clean.ply")]) == 0
    out = capsys.readouterr().out
    assert f"clean-up at strength 0.5: removes {int(expected.sum()):,} of {len(cloud):,} splats" in out
    assert np.array_equal(load_splats(tmp_path / "clean.ply").positions, cloud.positions[~expected])

    assert cli(["export", "Junk", "-o", str(tmp_path / "all.ply"), "--cleanup", "0"]) == 0
    assert len(load_splats(tmp_path / "all.ply")) == len(cloud)
    assert cli(["export", "Junk", "-o", str(tmp_path / "bad.ply"), "--cleanup", "2"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err and not (tmp_path / "bad.ply").exists()
