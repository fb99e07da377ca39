"""The spine end to end, through the real commands: `splatstudio new/run/projects/show`, the stage
processes, pycolmap on a generated scene with known poses, kill -9 and SIGTERM in the middle of a stage.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import exposure_exif
from PIL import Image

from splatstudio.cli import main as cli
from splatstudio.io.colmap import read_model
from splatstudio.model.library import Library
from splatstudio.model.poses import pose_errors
from splatstudio.model.project import CANCELLED, DONE, INTERRUPTED, Project
from splatstudio.model.sample import generate_sample
from splatstudio.pipeline.plan import stage_argv

pytestmark = pytest.mark.slow

COUNT, WIDTH, HEIGHT = 16, 320, 240


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_sample(tmp_path_factory.mktemp("sample") / "photos", COUNT, WIDTH, HEIGHT, seed=0)


EXPOSURES = [(1 / 125 if i % 2 else 1 / 60, 100, 2.0) for i in range(COUNT)]  # time, ISO, f-number in EXIF


@pytest.fixture(scope="module")
def sfm_project(sample, tmp_path_factory):
    """A project taken through the SfM stages once by the real CLI; tests copy it. Its photos record an
    exposure in their EXIF, as a camera's do."""
    photos = tmp_path_factory.mktemp("camera")
    for path, exposure in zip(sample.image_paths, EXPOSURES, strict=True):
        with Image.open(path) as image:
            image.save(photos / path.name, quality=95, exif=exposure_exif(*exposure))
    library = tmp_path_factory.mktemp("lib")
    os.environ["SPLATSTUDIO_LIBRARY"] = str(library)
    try:
        assert cli(["new", "Toy", str(photos), "--set", "max_features=4096", "--set", "min_image_size=200"]) == 0
        assert cli(["run", "Toy", "--until", "undistort"]) == 0
    finally:
        del os.environ["SPLATSTUDIO_LIBRARY"]
    return Library(library).get("Toy")


def _copy_project(project: Project, library: Path, name: str) -> Project:
    target = library / name
    shutil.copytree(project.folder, target, ignore=shutil.ignore_patterns(".lock"))
    copy = Project(target)
    copy.rename(name)
    return copy


def _recorded_exposure(path: Path) -> float:
    with Image.open(path) as image:
        sub = image.getexif().get_ifd(0x8769)
    return float(sub[0x829A]) * float(sub[0x8827]) / float(sub[0x829D]) ** 2


def test_sfm_stages_register_every_view_with_accurate_poses(sfm_project, sample, capsys):
    records = sfm_project.stage_records()
    assert [records[s].status for s in ("features", "matching", "mapping", "undistort")] == [DONE] * 4
    mapping = records["mapping"].figures
    assert mapping["registered"] == mapping["total"] == COUNT and mapping["dropped"] == []
    assert mapping["mean_reprojection_error"] < 1.0 and mapping["points"] > 500

    model = read_model(sfm_project.path("sfm", "sparse", "0"))
    estimated = {img.name: (img.rotation_matrix(), np.asarray(img.tvec, float)) for img in model.images.values()}
    errors = pose_errors(estimated, sample.poses())
    assert errors.missing == ()
    assert errors.median_rotation_deg < 1.0 and errors.median_position < 0.02

    dataset = sfm_project.path("dataset")
    undistorted = read_model(dataset / "sparse" / "0")
    assert {cam.model for cam in undistorted.cameras.values()} == {"PINHOLE"}
    assert len(list((dataset / "images").iterdir())) == COUNT
    # import and undistortion keep each photo's EXIF exposure, which the trainer reads from the training photos
    recorded = {path.name: _recorded_exposure(path) for path in (dataset / "images").iterdir()}
    assert recorded == {path.name: pytest.approx(t * iso / f ** 2, rel=1e-3)  # stored as rationals
                        for path, (t, iso, f) in zip(sample.image_paths, EXPOSURES, strict=True)}
    assert sfm_project.path("output", "sparse_points.ply").stat().st_size > 1000
    assert sfm_project.log_path("mapping").read_text().count("placed") >= 1

    lib = str(sfm_project.folder.parent)
    capsys.readouterr()
    assert cli(["--library", lib, "projects", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["image_count"] == COUNT and rows[0]["status"] == "incomplete"
    assert cli(["--library", lib, "show", "Toy"]) == 0
    assert "Sparse reconstruction" in capsys.readouterr().out


def test_stage_killed_with_sigkill_is_interrupted_and_resumes(sfm_project, tmp_path):
    library = Library(tmp_path / "lib")
    project = _copy_project(sfm_project, library.folder, "Killed")
    for stage in ("features", "matching", "mapping", "undistort"):
        project.clear_stage(stage)
    process = subprocess.Popen(stage_argv("features", project.folder), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    for line in process.stdout:  # wait until it is really working
        if json.loads(line).get("fraction", 0) > 0:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()

    assert project.status() == (INTERRUPTED, "features")
    assert project.describe_status() == "interrupted at Feature extraction"
    assert not project.path("sfm", "database.db").exists()  # only the finished database is ever in place

    assert cli(["--library", str(library.folder), "run", "Killed", "--until", "matching"]) == 0
    assert project.stage_record("features").status == DONE
    assert project.stage_record("matching").status == DONE
    attempts = [a for run in project.runs() for a in run["attempts"] if a["stage"] == "features"]
    assert [a["status"] for a in attempts].count(INTERRUPTED) == 1  # the dead attempt is in the history


def test_sigterm_cancels_and_leaves_the_project_resumable(sfm_project, tmp_path):
    library = Library(tmp_path / "lib")
    project = _copy_project(sfm_project, library.folder, "Cancelled")
    database_before = project.path("sfm", "database.db").read_bytes()
    process = subprocess.Popen(stage_argv("matching", project.folder), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()  # "started"
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert '"status": "cancelled"' in out
    assert project.stage_record("matching").status == CANCELLED
    assert project.stage_record("mapping") is None  # downstream results were invalidated
    assert project.path("sfm", "database.db").read_bytes() == database_before  # features kept intact
    assert cli(["--library", str(library.folder), "run", "Cancelled", "--until", "mapping"]) == 0
    assert project.stage_record("mapping").figures["registered"] == COUNT


def test_mapping_failure_explains_itself(tmp_path, capsys):
    rng = np.random.default_rng(3)
    photos = tmp_path / "noise"
    photos.mkdir()
    from PIL import Image

    for i in range(4):  # unrelated random images: nothing can match
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(photos / f"n{i}.png")
    lib = tmp_path / "lib"
    assert cli(["--library", str(lib), "new", "Noise", str(photos), "--set", "min_image_size=200"]) == 0
    code = cli(["--library", str(lib), "run", "Noise", "--until", "mapping"])
    assert code == 1
    err = capsys.readouterr().err
    assert "failed" in err and "what to try" in err
    project = Library(lib).get("Noise")
    state, stage = project.status()
    assert state == "failed" and stage in ("matching", "mapping")
    errors = Library(lib).errors(project)
    assert errors and errors[-1]["stage"] == stage and errors[-1]["message"]


def test_stage_process_contract_on_usage_and_busy(tmp_path, sfm_project):
    bad = subprocess.run([sys.executable, "-m", "splatstudio.stages", "dance", "--project", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    missing = subprocess.run(stage_argv("features", tmp_path / "nothing"), capture_output=True, text=True)
    assert missing.returncode == 1 and missing.stderr.startswith("error:") and "project" in missing.stderr
    library = Library(tmp_path / "lib")
    project = _copy_project(sfm_project, library.folder, "Busy")
    fd = project.acquire_lock()
    try:
        busy = subprocess.run(stage_argv("filter", project.folder), capture_output=True, text=True)
    finally:
        os.close(fd)
    assert busy.returncode == 1 and "busy" in busy.stderr


def test_external_colmap_executable_replaces_pycolmap(sample, tmp_path):
    colmap = shutil.which("colmap")
    if colmap is None:
        pytest.skip("no external `colmap` executable on PATH (optional; Debian: apt install colmap)")
    lib = str(tmp_path / "lib")
    assert cli(["--library", lib, "new", "Ext", str(sample.directory), "--set", f"colmap_path={colmap}",
                "--set", "min_image_size=200"]) == 0
    assert cli(["--library", lib, "run", "Ext", "--until", "undistort"]) == 0
    project = Library(lib).get("Ext")
    assert project.stage_record("mapping").figures["registered"] == COUNT
    assert "$ " + colmap + " mapper" in project.log_path("mapping").read_text()
    model = read_model(project.path("dataset", "sparse", "0"))
    assert {cam.model for cam in model.cameras.values()} == {"PINHOLE"}


def test_training_and_post_processing_finish_the_project(sfm_project, tmp_path, capsys):
    """train → filter → splat with our trainer on the SfM result, then export/convert by the CLI."""
    from splatstudio.io.formats import load_splats

    library = Library(tmp_path / "lib")
    project = _copy_project(sfm_project, library.folder, "Trained")
    lib = str(library.folder)
    assert cli(["--library", lib, "run", "Trained", "--set", "iterations=200", "--set", "densify_from_iter=50",
                "--set", "densify_until_iter=150", "--set", "densification_interval=50",
                "--set", "preview_every=100", "--set", "train_resolution=1"]) == 0
    records = project.stage_records()
    assert all(r.status == DONE for r in records.values()) and len(records) == 7
    train = records["train"].figures
    assert train["iterations"] == 200 and train["num_gaussians"] > 100
    assert train["test_psnr"] is not None and train["test_psnr"] > 12
    assert "Exposure recorded (EXIF) for 16 of 16 photos" in project.log_path("train").read_text()
    assert (project.path("train", "point_cloud", "iteration_200", "point_cloud.ply")).is_file()
    assert (project.path("train", "cameras.json")).is_file() and (project.path("train", "cfg_args")).is_file()
    filtered = load_splats(project.path("output", "point_cloud.ply"))
    assert len(filtered) == records["filter"].figures["remaining"] <= train["num_gaussians"]
    splat = project.path("output", "scene.splat")
    assert splat.stat().st_size == 32 * len(filtered)

    capsys.readouterr()
    assert cli(["--library", lib, "projects", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["status"] == DONE and row["gaussian_count"] == len(filtered)
    assert row["file_size"] == splat.stat().st_size and row["processing_seconds"] > 0

    out = tmp_path / "exported.splat"
    assert cli(["--library", lib, "export", "Trained", "--format", "splat", "-o", str(out)]) == 0
    assert out.read_bytes() == splat.read_bytes()
    raw = tmp_path / "raw.ply"
    assert cli(["--library", lib, "export", "Trained", "-o", str(raw), "--raw"]) == 0
    assert len(load_splats(raw)) == train["num_gaussians"]
    opaque = tmp_path / "opaque.ply"
    assert cli(["--library", lib, "export", "Trained", "-o", str(opaque), "--min-opacity", "0.5",
                "--sh-degree", "0"]) == 0
    kept = load_splats(opaque)
    assert kept.sh_degree == 0 and 0 < len(kept) == int((filtered.alphas() >= 0.5).sum()) < len(filtered)
    converted = tmp_path / "again.splat"
    assert cli(["convert", str(raw), str(converted)]) == 0
    assert converted.stat().st_size == 32 * train["num_gaussians"]
    assert cli(["convert", str(raw), str(tmp_path / "x.obj")]) == 1
    assert cli(["--library", lib, "run", "Trained"]) == 0  # nothing left to do
    assert "nothing to do" in capsys.readouterr().out


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert cli(["run"]) == 2
    assert cli(["--library", str(tmp_path), "new", "X", "--set", "iterations=-1"]) == 2
    assert "iterations" in capsys.readouterr().err
    assert cli(["sample", str(tmp_path / "s"), "--size", "big"]) == 2
    assert cli(["--library", str(tmp_path), "run", "Nope"]) == 1
    assert "no project named" in capsys.readouterr().err
