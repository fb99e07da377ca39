"""Stages on a real Ray cluster (issue 24): a head and one worker node on this machine, each with its own
temporary folders; the real CLI runs a generated scene through it and the project must end as a local
run's does."""

from __future__ import annotations

import re
import shutil
import signal
from pathlib import Path

import pytest
from _cluster_helpers import COUNT, NO_RAY, cli, cli_process, tiny_sets
from ray_cluster import LocalRayCluster

from splatstudio.model.project import CANCELLED, DONE, RUNNING, STAGES, Project
from splatstudio.pipeline.remote import probe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_run(sample, tmp_path_factory):
    """The reference: the same photos and settings run here, as today."""
    library = tmp_path_factory.mktemp("local-lib")
    assert cli(library, "new", "Toy", str(sample.directory), *tiny_sets()).returncode == 0
    done = cli(library, "run", "Toy")
    assert done.returncode == 0, done.stderr
    return Project(library / "Toy")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("ray", reason=NO_RAY)
    with LocalRayCluster(tmp_path_factory.mktemp("ray")) as started:
        yield started


def _files(project: Project) -> set[str]:
    """The project's files, less the run history (named by run ids), the lock and the logs of earlier attempts
    (any re-run keeps the previous log beside the new one)."""
    return {path.relative_to(project.folder).as_posix() for path in project.folder.rglob("*")
            if path.is_file() and path.parts[len(project.folder.parts)] != "runs" and path.name != ".lock"
            and not path.name.endswith(".previous.log")}


def _copy(project: Project, library: Path, name: str) -> Project:
    shutil.copytree(project.folder, library / name, ignore=shutil.ignore_patterns(".lock"))
    copy = Project(library / name)
    copy.rename(name)
    return copy


def _assert_like_local(project: Project, local: Project, stopped_at: int | None = None) -> None:
    """``stopped_at``: the iteration a training was stopped at and resumed from, whose checkpoint and model
    stay in train/ (as after a local stop and resume)."""
    records, reference = project.stage_records(), local.stage_records()
    assert [records[stage].status for stage in STAGES] == [DONE] * len(STAGES)
    resumed = {f"train/chkpnt{stopped_at}.pth", f"train/point_cloud/iteration_{stopped_at}/point_cloud.ply"}
    assert _files(project) == _files(local) | (resumed if stopped_at is not None else set())
    mapping = records["mapping"].figures
    assert mapping["registered"] == reference["mapping"].figures["registered"] == COUNT
    train, expected = records["train"].figures, reference["train"].figures
    assert train["iterations"] == expected["iterations"]
    assert abs(train["num_gaussians"] - expected["num_gaussians"]) <= 0.25 * expected["num_gaussians"]
    assert abs(train["test_psnr"] - expected["test_psnr"]) < 1.5
    assert records["filter"].figures["remaining"] > 0.5 * train["num_gaussians"]


def test_a_project_runs_on_the_cluster_as_it_runs_here(cluster, local_run, sample, tmp_path):
    library = tmp_path / "lib"
    assert cli(library, "new", "Toy", str(sample.directory), *tiny_sets()).returncode == 0
    done = cli(library, "run", "Toy", "--executor", cluster.address)
    assert done.returncode == 0, done.stderr
    assert f"stages run on the Ray cluster at {cluster.address} (2 nodes, 2 CPUs, no GPU" in done.stdout
    for title in ("Feature extraction", "Feature matching", "Sparse reconstruction", "Undistortion",
                  "Gaussian Splatting training", "Outlier filtering", ".splat conversion"):
        assert re.search(rf"^{re.escape(title)}: +\d+% ", done.stdout, re.M), title  # the same progress lines
        assert re.search(rf"^{re.escape(title)}: done in ", done.stdout, re.M), title
    assert "Traceback" not in done.stderr
    assert probe(cluster.address) == f"{cluster.address}: 2 nodes, 2 CPUs, no GPU, " + \
        done.stdout.split(", no GPU, ", 1)[1].split(")", 1)[0]  # Preferences' line: what the cluster offers

    project = Project(library / "Toy")
    _assert_like_local(project, local_run)
    # every stage ran in a copy in a worker's own temporary folder, removed afterwards
    nodes = {name: cluster.node_tmp(name) for name in ("head", "worker")}
    for stage in STAGES:
        first = project.log_path(stage).read_text().splitlines()[0]
        where = re.search(r" in (\S+) ===$", first).group(1)
        assert any(Path(where).is_relative_to(tmp) for tmp in nodes.values()), first
        assert "splatstudio-stage-" in where and not Path(where).exists()
    # the results are as a local stage leaves them: stamps intact, nothing left to do
    again = cli(library, "run", "Toy")
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_training_streams_live_and_a_cancel_leaves_it_resumable(cluster, local_run, tmp_path):
    library = tmp_path / "lib"
    library.mkdir()
    project = _copy(local_run, library, "Stopped")
    process = cli_process(library, "run", "Stopped", "--from", "train", "--executor", cluster.address)
    assert process.stdout is not None
    seen_running = None
    for line in process.stdout:
        match = re.match(r"Gaussian Splatting training: +(\d+)% iteration", line)
        if match and 0 < int(match.group(1)) < 100:
            # a progress line of the stage arrived while the stage still runs on the worker
            seen_running = Project(project.folder).stage_record("train").status
            process.send_signal(signal.SIGINT)
            break
    rest, errors = process.communicate(timeout=300)
    assert seen_running == RUNNING
    assert process.returncode == 1, errors
    assert "cancelled at Gaussian Splatting training" in errors and "Traceback" not in errors
    record = project.stage_record("train")
    assert record.status == CANCELLED
    assert list(project.path("train").glob("chkpnt*.pth"))  # the checkpoint came back from the worker
    assert project.status() == (CANCELLED, "train")

    resumed = cli(project.folder.parent, "run", "Stopped", "--executor", cluster.address)
    assert resumed.returncode == 0, resumed.stderr
    stopped_at = int(re.search(r"resuming from chkpnt(\d+)\.pth", project.log_path("train").read_text()).group(1))
    _assert_like_local(project, local_run, stopped_at)
