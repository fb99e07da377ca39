"""Issue 25, item 1: a re-run keeps the previous result — viewable, exportable, counted in the library — until
its own filter stage replaces it, and a re-run that fails or is stopped loses nothing. Through the real CLI
and stage processes, on a generated scene."""

from __future__ import annotations

import os

import pytest
from dataset_builders import render_photos, write_trainer_output

from splatstudio.cli import main as cli
from splatstudio.io.formats import load_splats
from splatstudio.model.library import Library
from splatstudio.model.project import KEPT_RESULT, RESULT_PLY, trained_iterations


@pytest.fixture()
def finished(tmp_path, capsys):
    """A project opened from a trainer's output, filtered and converted: every stage done."""
    photos = render_photos(tmp_path / "images", count=4, width=160, height=120)
    output = write_trainer_output(tmp_path / "output", photos, None, iterations=(30,), gaussians=400, sh_degree=0)
    assert cli(["open", str(output), "--name", "Done", "--run"]) == 0
    capsys.readouterr()
    return Library(os.environ["SPLATSTUDIO_LIBRARY"]).get("Done")


def test_a_rerun_that_fails_keeps_the_previous_result_for_view_and_export(finished, tmp_path, capsys):
    result = finished.path(RESULT_PLY)
    before, count = result.read_bytes(), len(load_splats(result))
    trained = trained_iterations(finished.path("train"))[-1][1]
    trained.write_bytes(b"x" * trained.stat().st_size)  # same size: it passes the stamp, then fails to read

    assert cli(["run", "Done", "--from", "filter"]) != 0
    assert "point_cloud.ply" in capsys.readouterr().err
    assert not result.exists()  # the filter stage cleared it before it failed...
    ply, cameras, kept = finished.shown_result()
    assert kept and ply.read_bytes() == before and cameras is not None  # ...but the result is kept, whole
    assert not (finished.folder / f"{KEPT_RESULT}.part").exists()
    assert finished.summary()["gaussian_count"] == count

    assert cli(["export", "Done", "-o", str(tmp_path / "kept.splat")]) == 0
    assert "previous result" in capsys.readouterr().out
    assert len(load_splats(tmp_path / "kept.splat")) == count


def test_the_new_result_replaces_the_kept_one(finished, capsys):
    first = finished.kept_result()
    assert first is None
    assert cli(["run", "Done", "--from", "filter"]) == 0
    assert finished.path(RESULT_PLY).is_file() and finished.shown_result()[2] is False
    assert finished.kept_result() is None and not (finished.folder / KEPT_RESULT).exists()


def test_keeping_again_replaces_the_kept_result_and_leaves_no_partial_folder(finished):
    assert finished.keep_result()
    (finished.folder / KEPT_RESULT / "stale.txt").write_text("from an older run")
    (finished.folder / f"{KEPT_RESULT}.part").mkdir()  # left by a keep that was killed half-way
    assert finished.keep_result()
    kept = finished.folder / KEPT_RESULT
    assert {"cameras.json", "kept.json", "point_cloud.ply", "scene.splat"} <= {p.name for p in kept.iterdir()}
    assert not (kept / "stale.txt").exists() and not (finished.folder / f"{KEPT_RESULT}.part").exists()
    assert finished.kept_result()["gaussians"] == finished.summary()["gaussian_count"]
