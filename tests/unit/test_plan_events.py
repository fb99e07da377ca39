"""The run plan (what to run / resume / skip) and the parser of stage output lines."""

from __future__ import annotations

import json

import pytest

from splatstudio.model.library import Library
from splatstudio.model.project import DONE, FAILED, STAGE_RESULTS, STAGES, StageRecord, now_iso
from splatstudio.model.settings import Settings
from splatstudio.pipeline.events import Eval, LogLine, Preview, Progress, Result, encode, parse_line
from splatstudio.pipeline.plan import PlanError, plan_run, stage_argv


@pytest.fixture
def project(tmp_path):
    project = Library(tmp_path / "lib").create_project("P", Settings())
    (project.folder / "import.json").write_text(json.dumps({"accepted": [{"name": "a.jpg"}]}))
    return project


def _done(project, *stages, status=DONE):
    """Stage records as the stages leave them; a finished stage's results exist and are stamped."""
    for stage in stages:
        if status == DONE:
            for rel in STAGE_RESULTS[stage]:
                path = project.path(rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.suffix:
                    path.write_bytes(stage.encode())
                else:
                    path.mkdir(exist_ok=True)
        project.write_stage_record(StageRecord(stage, status, started=now_iso(), ended=now_iso(),
                                               fingerprint=project.settings.fingerprint(stage),
                                               results=project.result_stamps(stage) if status == DONE else None))


def test_fresh_project_runs_everything(project):
    plan = plan_run(project)
    assert plan.stages == STAGES and "not run yet" in plan.reason


def test_resume_from_first_unfinished_stage(project):
    _done(project, "features", "matching")
    _done(project, "mapping", status=FAILED)
    assert plan_run(project).stages == STAGES[2:]
    assert plan_run(project, until="undistort").stages == ("mapping", "undistort")


def test_changed_settings_rerun_from_the_affected_stage(project):
    _done(project, *STAGES)
    assert plan_run(project).empty
    project.set_settings(project.settings.updated({"outlier_std_threshold": 3.0}))
    assert plan_run(project).stages == ("filter", "splat")
    project.set_settings(project.settings.updated({"max_features": 1000}))
    assert plan_run(project).stages == STAGES


def test_explicit_from_and_bad_names(project):
    _done(project, *STAGES)
    assert plan_run(project, from_stage="train").stages == ("train", "filter", "splat")
    with pytest.raises(PlanError, match="unknown stage"):
        plan_run(project, from_stage="dance")


def test_no_photos_is_a_plan_error(tmp_path):
    empty = Library(tmp_path / "lib2").create_project("E", Settings())
    with pytest.raises(PlanError, match="no photos"):
        plan_run(empty)


def test_argv_is_a_list_running_the_stage_module(project):
    argv = stage_argv("features", project.folder, "run1", python="/usr/bin/python3")
    assert argv == ["/usr/bin/python3", "-m", "splatstudio.stages", "features", "--project", str(project.folder),
                    "--run-id", "run1"]


def test_parse_lines():
    progress = parse_line(encode("train", 0.25, "iteration 250/1000", loss=0.1, psnr=20.5) + "\n")
    assert progress == Progress("train", 0.25, "iteration 250/1000", {"loss": 0.1, "psnr": 20.5})
    assert parse_line('{"stage":"train","event":"eval","iteration":7,"psnr":25.1,"ssim":0.8}') == Eval(
        "train", 7, 25.1, 0.8)
    assert parse_line('{"stage":"train","event":"preview","iteration":5,"path":"/p.ply"}') == Preview(
        "train", 5, "/p.ply")
    result = parse_line('{"stage":"mapping","event":"result","status":"failed","figures":{},"message":"m",'
                        '"hint":"h"}')
    assert result == Result("mapping", "failed", {}, "m", "h")
    assert parse_line("{not json") == LogLine("{not json", "info")
    assert parse_line('{"fraction": 2}').fraction == 1.0  # clamped
    assert parse_line("W20261124 12:00:00 warning thing").level == "warning"
    assert parse_line("error: the trainer crashed").level == "error"
    assert parse_line("Traceback (most recent call last):").level == "error"
    assert parse_line("I20261124 12:00:00 fine").level == "info"


def test_auto_training_resolution_on_cpu(tmp_path):
    from PIL import Image

    from splatstudio.pipeline.train import training_resolution

    (tmp_path / "images").mkdir()
    Image.new("RGB", (1594, 1195)).save(tmp_path / "images" / "a.jpg")
    cpu = Settings({"trainer_backend": "cpu"})
    assert training_resolution(cpu, tmp_path) == 2
    assert training_resolution(cpu.updated({"train_resolution": 1}), tmp_path) == 1
    assert training_resolution(Settings({"trainer_backend": "cuda"}), tmp_path) == -1
    Image.new("RGB", (640, 480)).save(tmp_path / "images" / "a.jpg")
    assert training_resolution(cpu, tmp_path) == 1


def test_quality_in_words():
    """Issue 25, item 3: a held-out PSNR alone meant nothing to a person."""
    from splatstudio.model.humanize import quality_words

    assert quality_words(27.0)[0] == "good"
    assert quality_words(21.0)[0] == "fair"
    rating, advice = quality_words(17.5)
    assert rating == "poor for new viewpoints" and "more photos" in advice


def test_stage_weights_follow_the_time_each_stage_takes():
    """Issue 25, item 2: with a share per stage, the title said 58 % as a 21-minute training began."""
    from splatstudio.pipeline.plan import stage_weights

    weights = stage_weights(STAGES, photos=23, iterations=2000)
    share = {stage: w / sum(weights.values()) for stage, w in weights.items()}
    before_training = sum(share[s] for s in STAGES[:STAGES.index("train")])
    assert 0.1 < before_training < 0.2 and share["train"] > 0.8
    longer = stage_weights(STAGES, photos=23, iterations=7000)
    assert longer["train"] == 3.5 * weights["train"] and longer["matching"] == weights["matching"]
    more_photos = stage_weights(STAGES, photos=46, iterations=2000)
    assert more_photos["matching"] == 4 * weights["matching"] and more_photos["features"] == 2 * weights["features"]
