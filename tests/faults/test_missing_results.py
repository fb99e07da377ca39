"""Findings file (../shared/findings/reliability-2026-12.md), defect 10: results deleted or replaced behind the
app's back went unnoticed — `run` said "nothing to do", `show` said done, `export` silently exported the
unfiltered trainer output instead, and `run --from train` without its dataset wiped the good result and then
failed with a bare "exit status 1". Through the real CLI, on generated scenes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from dataset_builders import render_photos, write_colmap_folder, write_trainer_output

from splatstudio.cli import main as cli
from splatstudio.io.formats import load_splats
from splatstudio.model.library import Library
from splatstudio.model.project import DONE


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return render_photos(tmp_path_factory.mktemp("scene") / "images", count=6, width=160, height=120)


def _library() -> Library:
    return Library(os.environ["SPLATSTUDIO_LIBRARY"])


@pytest.fixture()
def finished(photos, tmp_path, capsys):
    """A project opened from a trainer's output, filtered and converted: every stage done."""
    output = write_trainer_output(tmp_path / "output", photos, None, iterations=(30,), gaussians=400, sh_degree=0)
    assert cli(["open", str(output), "--name", "Done", "--run"]) == 0
    capsys.readouterr()
    project = _library().get("Done")
    assert all(record.status == DONE for record in project.stage_records().values())
    return project


def test_a_deleted_result_is_shown_redone_and_never_replaced_in_an_export(finished, tmp_path, capsys):
    result = finished.path("output", "point_cloud.ply")
    filtered = len(load_splats(result))
    result.unlink()

    assert cli(["show", "Done"]) == 0
    assert "output/point_cloud.ply is missing" in capsys.readouterr().out

    assert cli(["export", "Done", "-o", str(tmp_path / "x.splat")]) == 1
    err = capsys.readouterr().err
    assert "output/point_cloud.ply is missing" in err and "splatstudio run 'Done'" in err
    assert not (tmp_path / "x.splat").exists()  # not the unfiltered trainer output in its place

    assert cli(["run", "Done"]) == 0
    out = capsys.readouterr().out
    assert "running filter, splat" in out and "output/point_cloud.ply is missing" in out
    assert len(load_splats(result)) == filtered
    assert cli(["export", "Done", "-o", str(tmp_path / "x.splat")]) == 0
    assert len(load_splats(tmp_path / "x.splat")) == filtered


def test_a_replaced_result_is_noticed(finished, capsys):
    splat = finished.path("output", "scene.splat")
    splat.write_bytes(splat.read_bytes()[: 32 * 10])  # someone else's, smaller file under the same name
    assert cli(["run", "Done"]) == 0
    out = capsys.readouterr().out
    assert "running splat" in out and "output/scene.splat was changed after .splat conversion made it" in out
    assert splat.stat().st_size == 32 * len(load_splats(finished.path("output", "point_cloud.ply")))


def test_a_copied_library_keeps_its_results(finished, tmp_path, capsys):
    """Copying changes every file's time; that is not a change of the results."""
    copy = tmp_path / "copied-lib"
    shutil.copytree(_library().folder, copy)  # copytree keeps times: touch everything as `cp -r` would
    for item in copy.rglob("*"):
        os.utime(item, None)
    assert cli(["--library", str(copy), "run", "Done"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_a_deleted_dataset_is_made_again_before_training(photos, tmp_path, capsys):
    dataset = write_colmap_folder(tmp_path / "garden", photos)
    settings = ["--set", "iterations=30", "--set", "preview_every=0", "--set", "sh_degree=0"]
    assert cli(["open", str(dataset), "--name", "Garden", *settings]) == 0
    assert cli(["run", "Garden", "--until", "train"]) == 0
    project = _library().get("Garden")
    trained = sorted(project.path("train", "point_cloud").rglob("point_cloud.ply"))
    shutil.rmtree(project.path("dataset"))
    capsys.readouterr()

    assert cli(["run", "Garden", "--from", "train", "--until", "train"]) == 0
    out = capsys.readouterr().out
    assert "running undistort, train" in out and "dataset is missing" in out
    assert sorted(project.path("train", "point_cloud").rglob("point_cloud.ply")) == trained
    assert project.path("dataset", "sparse", "0").is_dir()


def test_a_stage_started_on_its_own_names_the_missing_input(photos, tmp_path):
    """A stage process run directly (as the window and the CLI do) refuses, naming the lost result, rather
    than failing inside the trainer."""
    from splatstudio.pipeline.entry import run_stage

    dataset = write_colmap_folder(tmp_path / "garden", photos)
    assert cli(["open", str(dataset), "--name", "Alone", "--set", "iterations=30"]) == 0
    project = _library().get("Alone")
    shutil.rmtree(project.path("dataset"))
    assert run_stage("train", project.folder, None) == 1
    record = project.stage_record("train")
    assert "the result of Undistortion cannot be used: dataset is missing" in record.message
    assert Path(project.folder).exists()
