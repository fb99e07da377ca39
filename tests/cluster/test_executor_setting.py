"""The executor setting without a cluster: a bad value, Ray missing, a cluster that cannot be reached. Each is
said in one plain line, and the project is left as it was."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _cluster_helpers import NO_RAY, cli, cli_env
from ray_cluster import free_port

from splatstudio import __version__
from splatstudio.model.project import DONE, Project
from splatstudio.pipeline.cluster import probe

WITHOUT_RAY = ("import sys; sys.modules['ray'] = None  # as if Ray were not installed\n"
               "from splatstudio.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.fixture
def project(sample, tmp_path):
    library = tmp_path / "lib"
    assert cli(library, "new", "Toy", str(sample.directory), "--set", "min_image_size=200",
               "--set", "max_features=1024").returncode == 0
    return Project(library / "Toy")


def _untouched(project: Project) -> bool:
    return not project.stage_records() and not list(project.path("runs").glob("*.json"))


def test_a_bad_executor_is_a_usage_error(project):
    done = cli(project.folder.parent, "run", "Toy", "--executor", "cluster-please")
    assert done.returncode == 2
    assert "setting executor: 'cluster-please' is not local, auto or ray://HOST:PORT" in done.stderr
    done = cli(project.folder.parent, "run", "Toy", "--set", "executor=ray://nowhere")  # no port
    assert done.returncode == 2 and "setting executor" in done.stderr
    assert _untouched(project)


def test_without_ray_local_runs_and_a_cluster_says_how_to_install(project):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", WITHOUT_RAY, "--library", str(project.folder.parent), *args],
                              capture_output=True, text=True, env=cli_env(project.folder.parent), timeout=600)

    refused = run("run", "Toy", "--executor", "ray://127.0.0.1:10001")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert (f"error: running stages on a Ray cluster needs Ray, which is not installed here: "
            f"pip install 'splatstudio[cluster]=={__version__}'") in refused.stderr
    assert _untouched(project)
    local = run("run", "Toy", "--until", "features")  # the default, today's path, never imports Ray
    assert local.returncode == 0, local.stderr
    assert project.stage_record("features").status == DONE


def test_a_cluster_that_cannot_be_reached_is_said_plainly(project, monkeypatch):
    pytest.importorskip("ray", reason=NO_RAY)
    # Ray Client's own waits, shortened (30 s by default): the message is what is tested
    monkeypatch.setenv("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "1")
    monkeypatch.setenv("RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S", "2")
    address = f"ray://127.0.0.1:{free_port()}"
    done = cli(project.folder.parent, "run", "Toy", "--executor", address)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"error: cannot reach {address}" in done.stderr and "executor=local" in done.stderr
    assert _untouched(project)
    # Preferences' line (cluster.probe) says the same
    assert probe(address).startswith(f"{address}: cannot reach {address}")
    assert probe("local") == "stages run on this computer"
    assert "is not local, auto or ray://HOST:PORT" in probe("nowhere")
