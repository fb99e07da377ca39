"""Datasets in, end to end through the real commands: `splatstudio open` and the stage processes that are
left to run (undistortion with pycolmap, our trainer, filtering, .splat), and the real monstree COLMAP set.
"""

from __future__ import annotations

import pytest
from dataset_builders import render_photos, write_colmap_folder, write_nerfstudio, write_trainer_output
from shared_sets import shared_data

from splatstudio.cli import main as cli
from splatstudio.ingest import dataset_readers, datasets
from splatstudio.io import colmap
from splatstudio.io.formats import load_splats
from splatstudio.model.library import Library
from splatstudio.model.project import DONE, STAGES
from splatstudio.model.settings import Settings
from splatstudio.pipeline.plan import plan_run

pytestmark = pytest.mark.slow

COUNT, WIDTH, HEIGHT = 10, 160, 120
TINY = ["--set", "iterations=200", "--set", "densify_from_iter=50", "--set", "densify_until_iter=150",
        "--set", "densification_interval=50", "--set", "preview_every=100", "--set", "train_resolution=1"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return render_photos(tmp_path_factory.mktemp("sample") / "photos", COUNT, WIDTH, HEIGHT)


def test_nerfstudio_dataset_opens_and_runs_to_a_splat(photos, tmp_path, monkeypatch, capsys):
    """No sparse points in the dataset: training starts from random points and still makes a scene."""
    monkeypatch.setattr(dataset_readers, "RANDOM_POINTS", 3000)  # the reference's 100k take minutes on a CPU
    source = write_nerfstudio(tmp_path / "ns", photos, ply=False)
    lib = str(tmp_path / "lib")
    assert cli(["--library", lib, "open", str(source), "--name", "NS", "--run", *TINY]) == 0
    out = capsys.readouterr().out
    assert "no sparse points" in out and "running train, filter, splat" in out
    project = Library(lib).get("NS")
    records = project.stage_records()
    assert [records[s].status for s in STAGES] == [DONE] * len(STAGES)
    assert records["mapping"].figures["random_points"] is True
    assert records["train"].figures["iterations"] == 200 and records["train"].figures["num_gaussians"] > 100
    splat = project.path("output", "scene.splat")
    remaining = records["filter"].figures["remaining"]
    assert splat.stat().st_size == 32 * remaining and len(load_splats(project.path("output", "point_cloud.ply"))) \
        == remaining
    assert plan_run(project).empty


def test_distorted_colmap_dataset_is_undistorted_by_the_real_stage(photos, tmp_path):
    source = write_colmap_folder(tmp_path / "colmap", photos, binary=False, model="OPENCV", k1=0.01)
    lib = str(tmp_path / "lib")
    assert cli(["--library", lib, "open", str(source), "--name", "Cam"]) == 0
    project = Library(lib).get("Cam")
    assert plan_run(project).stages[0] == "undistort"
    assert cli(["--library", lib, "run", "Cam", "--until", "undistort"]) == 0
    dataset = colmap.read_model(project.path("dataset", "sparse", "0"))
    assert {camera.model for camera in dataset.cameras.values()} == {"PINHOLE"}
    assert len(dataset.images) == COUNT and len(list(project.path("dataset", "images").iterdir())) == COUNT
    assert plan_run(project).stages == ("train", "filter", "splat")


def test_trained_model_alone_is_filtered_and_converted(photos, tmp_path):
    output = write_trainer_output(tmp_path / "output", photos, None, gaussians=2000)
    lib = str(tmp_path / "lib")
    assert cli(["--library", lib, "open", str(output), "--name", "Trained", "--run"]) == 0
    project = Library(lib).get("Trained")
    assert project.status() == (DONE, None) and project.image_names() == []
    remaining = project.stage_record("filter").figures["remaining"]
    assert 0 < remaining <= 2000
    assert project.path("output", "scene.splat").stat().st_size == 32 * remaining
    assert Library(lib).list_projects()[0]["gaussian_count"] == remaining


@pytest.mark.data
def test_monstree_colmap_folder_skips_to_training(tmp_path):
    source = shared_data("monstree/colmap")
    library = Library(tmp_path / "lib")
    project = datasets.import_dataset(library, source, "monstree", Settings())
    assert plan_run(project).stages == ("train", "filter", "splat")
    assert len(project.image_names()) == 23
    mapping = project.stage_record("mapping").figures
    assert mapping["registered"] == 23 and mapping["points"] > 5000
    model = colmap.read_model(project.path("dataset", "sparse", "0"))
    assert {camera.model for camera in model.cameras.values()} <= {"PINHOLE", "SIMPLE_PINHOLE"}
    assert len(list(project.path("dataset", "images").iterdir())) == 23
