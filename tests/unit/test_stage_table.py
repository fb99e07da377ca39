"""The stage table (issue 22, item 4): every stage fact is declared once, in `model/stage_table.py`, and every
other place reads it. Adding a stage is a `StageSpec` plus its run function: the example stage of
`_example_stage.py` (a test's, not the product's) runs through the real plan, runner, stage process, records,
CLI report and cluster transfer list with no other edit."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import _example_stage as example
import pytest

from splatstudio import cli
from splatstudio.cli_common import figure_text
from splatstudio.model import programs
from splatstudio.model.library import Library
from splatstudio.model.project import DONE, STAGE_OUTPUTS, STAGE_RESULTS, STAGE_TITLES, STAGES, StageRecord, now_iso
from splatstudio.model.settings import SPECS, Settings
from splatstudio.model.stage_table import (
    TABLE,
    StageSpec,
    register_stage,
    result_stage,
    shared_results,
    spec,
    stages_in_group,
    unregister_stage,
)
from splatstudio.pipeline.entry import stage_function
from splatstudio.pipeline.events import Progress, Result
from splatstudio.pipeline.plan import PlanError, plan_run, stage_weights
from splatstudio.pipeline.runner import StageRunner
from splatstudio.pipeline.transfer import input_paths

BUILT_IN = ("features", "matching", "mapping", "undistort", "train", "filter", "splat")


@pytest.fixture
def example_stage():
    example.register()
    yield example.SPEC
    unregister_stage(example.NAME)


@pytest.fixture
def finished(tmp_path):
    """A project whose seven stages finished (their results exist and are stamped), without photos."""
    library = Library(tmp_path / "lib")
    project = library.create_project("P", Settings())
    for stage in BUILT_IN:
        for rel in spec(stage).results:
            path = project.path(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix:
                path.write_bytes(stage.encode() * 10)
            else:
                path.mkdir(exist_ok=True)
                (path / "part").write_text(stage)
        project.write_stage_record(StageRecord(stage, DONE, started=now_iso(), ended=now_iso(), duration=1.0,
                                               fingerprint=project.settings.fingerprint(stage),
                                               results=project.result_stamps(stage)))
    return library, project


def test_the_table_holds_the_built_in_stages_and_what_was_scattered():
    assert tuple(STAGES) == BUILT_IN and STAGES == BUILT_IN and STAGES[-1] == "splat"
    assert STAGE_TITLES["train"] == "Gaussian Splatting training" and STAGE_TITLES["import"] == "Import photos"
    assert STAGE_OUTPUTS["filter"] == ("output/point_cloud.ply", "output/filter.json", "output/thumbnail.png")
    assert STAGE_RESULTS["train"] == ("train/point_cloud",)
    assert [s for s in STAGES if spec(s).reads_photos] == ["features", "matching", "mapping", "undistort", "train"]
    assert [s for s in STAGES if spec(s).resumes] == ["train"]
    assert [s for s in STAGES if "pycolmap" in spec(s).preload] == ["features", "matching", "mapping", "undistort"]
    assert [s for s in STAGES if "colmap_path" in spec(s).programs] == ["features", "matching", "mapping", "undistort"]
    assert stages_in_group("Structure from motion") == ("features", "matching", "mapping", "undistort")
    assert {s.key for s in SPECS if "filter" in s.stages} == {
        "outlier_k_neighbors", "outlier_std_threshold", "outlier_min_cluster_ratio"}
    assert not any("splat" in s.stages for s in SPECS) and sum("train" in s.stages for s in SPECS) > 10
    assert shared_results() == {"sfm/database.db"} and result_stage("output/point_cloud.ply") == "filter"
    assert [s for s in STAGES if spec(s).gpu] == ["train"]
    weights = stage_weights(tuple(STAGES), 46, 4000)  # twice the measured photos and iterations
    assert weights["matching"] == pytest.approx(49.0 * 4) and weights["features"] == pytest.approx(31.0 * 2)
    assert weights["train"] == pytest.approx(608.0 * 2) and weights["splat"] == pytest.approx(0.3)


def test_every_stage_names_a_run_function_that_exists_and_results_it_writes():
    for item in TABLE:
        assert callable(stage_function(item.name)), item.name
        for rel in item.results:  # a result is one of its outputs or inside one (or one it adds to: the database)
            assert rel in shared_results() or any(rel == out or rel.startswith(out + "/") for out in item.outputs), \
                (item.name, rel)
    known = {s.group for s in SPECS}
    assert all(item.group in known for item in TABLE if item.group)


def test_bad_names_and_duplicates_are_refused_clearly():
    with pytest.raises(KeyError, match="unknown stage 'nope'; stages are: features, matching"):
        spec("nope")
    with pytest.raises(ValueError, match="a stage called 'train' exists already"):
        register_stage(StageSpec("train", "Another", "x:y"))
    with pytest.raises(ValueError, match="is another stage's"):
        register_stage(StageSpec("other", "Undistortion", "x:y"))
    broken = StageSpec("broken", "Broken", "splatstudio.pipeline.post:no_such_function")
    register_stage(broken)
    try:
        with pytest.raises(LookupError, match="stage 'broken': its run function .* cannot be found"):
            stage_function("broken")
    finally:
        unregister_stage("broken")
    assert STAGES == BUILT_IN


def test_a_registered_stage_appears_everywhere_the_stages_are_read(example_stage):
    assert STAGES[-1] == "measure" and "measure" in STAGES and len(STAGES) == 8
    assert STAGE_TITLES["measure"] == "Example measurement" and STAGE_OUTPUTS["measure"] == ("output/measure.json",)
    assert cli.build_parser().parse_args(["run", "P", "--until", "measure"]).until == "measure"
    programs.check(Settings(), "measure", Settings())  # runs no program
    assert Settings().fingerprint("measure")  # no setting changes it: a fixed fingerprint


def test_an_example_stage_runs_through_plan_runner_stage_process_and_report(example_stage, finished, tmp_path):
    library, project = finished
    assert project.status() == ("incomplete", "measure")
    plan = plan_run(project)
    assert plan.stages == ("measure",) and plan.reason == "Example measurement is not run yet"
    assert input_paths(project, "measure", resume=False)[-2:] == ["output/point_cloud.ply", "output/scene.splat"]

    events = []
    runner = StageRunner(project, lambda stage, event: events.append((stage, event)),
                         python=example.python_with_example_stage(tmp_path))
    outcome = runner.run(plan)

    assert outcome.status == DONE, outcome.message
    assert any(stage == "measure" and isinstance(e, Progress) and e.message == "Example measurement started"
               for stage, e in events)
    result = outcome.results["measure"]
    assert isinstance(result, Result) and result.figures == {"measured_bytes": 50} and result.message == "measured"
    record = project.stage_record("measure")
    assert record.status == DONE and record.results and project.result_problem("measure") is None
    assert json.loads(project.path("output", "measure.json").read_text()) == {"bytes": 50}
    assert "=== Example measurement (measure) started" in project.log_path("measure").read_text()
    assert project.status() == (DONE, None) and plan_run(project).empty

    assert figure_text("measure", record.figures) == "measured bytes 50"
    shown = io.StringIO()
    with redirect_stdout(shown):
        assert cli.main(["--library", str(library.folder), "show", "P"]) == 0
    line = next(text for text in shown.getvalue().splitlines() if "Example measurement" in text)
    assert "done" in line and "measured bytes 50" in line

    project.clear_stage("measure")  # its outputs are the table's
    assert not project.path("output", "measure.json").exists() and project.stage_record("measure") is None


def test_a_stage_that_reads_photos_is_not_planned_without_them(finished):
    _library, project = finished
    register_stage(StageSpec("rephoto", "Photo pass", "x:y", reads_photos=True))
    try:
        with pytest.raises(PlanError, match="has no photos yet"):
            plan_run(project)
    finally:
        unregister_stage("rephoto")
