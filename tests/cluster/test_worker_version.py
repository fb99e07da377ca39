"""A worker with another SplatStudio version is refused, in words, before anything runs: a cluster whose only
worker node has a copy of SplatStudio that says it is another version (its head offers no CPU)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _cluster_helpers import NO_RAY, cli
from ray_cluster import LocalRayCluster

import splatstudio
from splatstudio import __version__
from splatstudio.model.project import Project

pytestmark = pytest.mark.slow
OTHER = "0.0.9"


@pytest.fixture(scope="module")
def cluster_of_another_version(tmp_path_factory):
    pytest.importorskip("ray", reason=NO_RAY)
    other = tmp_path_factory.mktemp("other-install")
    package = other / "splatstudio"
    shutil.copytree(Path(splatstudio.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    init = package / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{__version__}"', f'__version__ = "{OTHER}"'))
    assert f'"{OTHER}"' in init.read_text()
    with LocalRayCluster(tmp_path_factory.mktemp("ray"), head_cpus=0, worker_env={"PYTHONPATH": str(other)}) as c:
        yield c


def test_a_worker_with_another_version_is_refused(cluster_of_another_version, sample, tmp_path):
    library = tmp_path / "lib"
    assert cli(library, "new", "Toy", str(sample.directory), "--set", "min_image_size=200").returncode == 0
    project = Project(library / "Toy")
    done = cli(library, "run", "Toy", "--executor", cluster_of_another_version.address)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"runs SplatStudio {OTHER}, this computer {__version__}" in done.stderr
    assert f"pip install 'splatstudio[cluster]=={__version__}'" in done.stderr
    assert project.stage_record("features") is None  # nothing ran, nothing changed
    assert not any(cluster_of_another_version.node_tmp("worker").iterdir())
