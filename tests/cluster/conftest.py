"""Fixtures of the cluster tests (helpers: _cluster_helpers.py; the cluster itself: ray_cluster.py)."""

from __future__ import annotations

import pytest
from _cluster_helpers import COUNT, HEIGHT, WIDTH

from splatstudio.model.sample import generate_sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_sample(tmp_path_factory.mktemp("sample") / "photos", COUNT, WIDTH, HEIGHT, seed=0)
