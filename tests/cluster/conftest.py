"""Fixtures of the cluster tests (helpers: _cluster_helpers.py; the cluster itself: ray_cluster.py)."""

from __future__ import annotations

import pytest
from _cluster_helpers import COUNT, HEIGHT, WIDTH, cli, tiny_sets

from splatstudio.model.project import Project
from splatstudio.model.sample import generate_sample


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    return generate_sample(tmp_path_factory.mktemp("sample") / "photos", COUNT, WIDTH, HEIGHT, seed=0)


@pytest.fixture(scope="session")
def local_run(sample, tmp_path_factory):
    """The reference: the sample's photos run here with the tiny settings, as today (made once: the cluster
    modules copy it)."""
    library = tmp_path_factory.mktemp("local-lib")
    assert cli(library, "new", "Toy", str(sample.directory), *tiny_sets()).returncode == 0
    done = cli(library, "run", "Toy")
    assert done.returncode == 0, done.stderr
    # and its training again: the first training of a clean checkout compiles the trainer's kernels, and a kernel
    # compiled afresh can give other floats than the same kernel loaded from numba's cache, which 400 iterations
    # grow to a dB (NOTES). The runs compared with this one load them from the cache, so this one must too.
    again = cli(library, "run", "Toy", "--from", "train")
    assert again.returncode == 0, again.stderr
    return Project(library / "Toy")
