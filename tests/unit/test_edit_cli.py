"""``splatstudio edit`` (issue 23, items 2, 3 and 5): the saved hand edits listed, added, undone, redone,
applied from a file and cleared headlessly; ``export`` applies them; stale or damaged edits are refused in
words, with no file written and no traceback."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from _clouds import random_cloud
from dataset_builders import ring_views

from splatstudio.cli import main as cli
from splatstudio.io.formats import load_splats, save_splats
from splatstudio.model.edits import EditSession, model_fingerprint
from splatstudio.model.library import Library
from splatstudio.model.project import RESULT_PLY, TRAIN_CAMERAS
from splatstudio.model.settings import Settings
from splatstudio.model.transform import scale_between


def _project(name: str = "Edited", seed: int = 1):
    project = Library(os.environ["SPLATSTUDIO_LIBRARY"]).create_project(name, Settings())
    cloud = random_cloud(600, sh_degree=1, seed=seed)
    cloud.positions[:] = np.random.default_rng(seed).uniform(-1.0, 1.0, (600, 3))
    save_splats(cloud, project.path(RESULT_PLY))
    views = ring_views()
    cameras = project.path(*TRAIN_CAMERAS.split("/"))
    cameras.parent.mkdir(parents=True, exist_ok=True)
    cameras.write_text(json.dumps([
        {"id": i, "img_name": f"IMG_{i}", "width": int(views.width[i]), "height": int(views.height[i]),
         "position": views.centres[i].tolist(), "rotation": views.rotations[i].tolist(),
         "fx": float(views.fx[i]), "fy": float(views.fy[i])} for i in range(len(views))]))
    return project, load_splats(project.path(RESULT_PLY))


def _key(positions: np.ndarray) -> set:
    return {tuple(p) for p in np.round(positions, 4)}


def test_edit_lists_deletes_undoes_redoes_and_export_applies_it(tmp_path, capsys):
    project, cloud = _project()
    assert cli(["edit", "Edited"]) == 0
    out = capsys.readouterr().out
    assert "edits of Edited (600 splats):\n  none" in out and "0 of 600 splats deleted" in out

    assert cli(["edit", "Edited", "--delete-box=-0.5,-0.5,-0.5,0.5,0.5,0.5"]) == 0
    inside = (np.abs(cloud.positions) <= 0.5).all(axis=1)
    out = capsys.readouterr().out
    assert f"--delete-box: delete a box ({int(inside.sum())} splats)" in out
    assert cli(["export", "Edited", "-o", str(tmp_path / "cut.ply")]) == 0
    assert f"edits: {int(inside.sum())} of 600 splats deleted" in capsys.readouterr().out
    assert _key(load_splats(tmp_path / "cut.ply").positions) == _key(cloud.positions[~inside])
    assert cli(["export", "Edited", "-o", str(tmp_path / "all.ply"), "--no-edits"]) == 0
    assert len(load_splats(tmp_path / "all.ply")) == 600

    assert cli(["edit", "Edited", "--level"]) == 0  # the cameras' up is +z: it becomes -y
    capsys.readouterr()
    assert cli(["export", "Edited", "-o", str(tmp_path / "level.ply")]) == 0
    levelled = load_splats(tmp_path / "level.ply")
    assert np.allclose(np.sort(levelled.positions[:, 1]), np.sort(-cloud.positions[~inside, 2]), atol=1e-5)

    assert cli(["edit", "Edited", "--undo", "2"]) == 0
    out = capsys.readouterr().out
    assert "undone: level from the cameras" in out and "undone: delete a box" in out
    assert "undone (--redo brings back):\n  - delete a box" in out
    assert cli(["export", "Edited", "-o", str(tmp_path / "undone.ply")]) == 0
    assert len(load_splats(tmp_path / "undone.ply")) == 600
    assert cli(["edit", "Edited", "--redo"]) == 0
    assert "redone: delete a box" in capsys.readouterr().out
    saved = json.loads(project.path("edits.json").read_text())["edit_list"]
    assert [e["label"] for e in saved["applied"]] == ["delete a box"]
    assert [e["label"] for e in saved["undone"]] == ["level from the cameras"]

    assert cli(["edit", "Edited", "--clear"]) == 0
    assert "edit_list" not in json.loads(project.path("edits.json").read_text())


def test_an_edit_list_from_a_file_is_applied_when_it_fits(tmp_path, capsys):
    project, cloud = _project()
    session = EditSession(len(cloud), model_fingerprint(cloud))
    session.select(cloud.positions[:, 0] > 0.6)
    session.delete_selection()
    session.apply_transform(scale_between([0, 0, 0], [1, 0, 0], 2.0), "set the scale", unit="m")
    (tmp_path / "edits.json").write_text(json.dumps({"cleanup": 0.0, "edit_list": session.to_json()}))
    assert cli(["edit", "Edited", "--apply", str(tmp_path / "edits.json")]) == 0
    assert "applied 2 edit(s)" in capsys.readouterr().out
    assert cli(["export", "Edited", "-o", str(tmp_path / "out.ply")]) == 0
    out = load_splats(tmp_path / "out.ply")
    assert _key(out.positions) == _key(2.0 * cloud.positions[cloud.positions[:, 0] <= 0.6])
    assert np.allclose(np.sort(out.scales.ravel()),
                       np.sort((cloud.scales[cloud.positions[:, 0] <= 0.6] + np.log(2.0)).ravel()), atol=1e-5)

    other = EditSession(601, "601:x")  # made on another model: refused, nothing changed
    (tmp_path / "other.json").write_text(json.dumps(other.to_json()))
    before = project.path("edits.json").read_text()
    assert cli(["edit", "Edited", "--apply", str(tmp_path / "other.json")]) == 1
    err = capsys.readouterr().err
    assert "other.json: the saved edits were made on a model of 601 splats; this result has 600" in err
    assert project.path("edits.json").read_text() == before


def test_stale_or_damaged_edits_are_refused_in_words(tmp_path, capsys):
    project, cloud = _project()
    assert cli(["edit", "Edited", "--delete-sphere", "0,0,0,0.4"]) == 0
    save_splats(random_cloud(600, seed=7), project.path(RESULT_PLY))  # a new result of as many splats
    capsys.readouterr()
    assert cli(["export", "Edited", "-o", str(tmp_path / "stale.ply")]) == 1
    err = capsys.readouterr().err
    assert "the saved edits cannot be applied: the saved edits were made on another result" in err
    assert "--clear` forgets them, `--no-edits` exports without them" in err and "Traceback" not in err
    assert not (tmp_path / "stale.ply").exists()
    assert cli(["export", "Edited", "-o", str(tmp_path / "fresh.ply"), "--no-edits"]) == 0

    project.path("edits.json").write_text('{"cleanup": 0.2, "edit_list": {')  # a damaged file
    capsys.readouterr()
    assert cli(["edit", "Edited"]) == 1
    err = capsys.readouterr().err
    assert "edits.json is damaged: not valid JSON (line 1" in err and "--clear` starts the edits afresh" in err
    assert cli(["export", "Edited", "-o", str(tmp_path / "damaged.ply")]) == 1
    assert "is damaged" in capsys.readouterr().err and not (tmp_path / "damaged.ply").exists()
    assert cli(["edit", "Edited", "--clear"]) == 0
    assert "is damaged" in capsys.readouterr().out
    assert json.loads(project.path("edits.json").read_text()) == {}


@pytest.mark.parametrize(("option", "message"), [
    (["--delete-sphere", "0,0,0,0"], "a radius must be more than 0"),
    (["--delete-box", "1,2,3"], "--delete-box expects 6 numbers"),
    (["--origin", "a,b,c"], "--origin expects 3 numbers"),
    (["--undo", "-1"], "1 or more"),
])
def test_bad_edit_options_are_usage_errors(option, message, capsys):
    _project()
    assert cli(["edit", "Edited", *option]) == 2
    assert message in capsys.readouterr().err


def test_an_origin_moves_the_export(tmp_path, capsys):
    _project()
    assert cli(["edit", "Edited", "--origin", "1,0,0"]) == 0
    capsys.readouterr()
    assert cli(["export", "Edited", "-o", str(tmp_path / "moved.ply"), "--no-edits"]) == 0
    plain = load_splats(tmp_path / "moved.ply")
    assert cli(["export", "Edited", "-o", str(tmp_path / "moved2.ply")]) == 0
    assert np.allclose(load_splats(tmp_path / "moved2.ply").positions, plain.positions - [1, 0, 0], atol=1e-6)
