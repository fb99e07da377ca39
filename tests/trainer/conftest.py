"""Fixtures for the Gaussian Splatting trainer tests: tiny generated COLMAP datasets.

gs_testlib (imported here) puts gaussian-splatting/ on sys.path so tests can import gstrain.
"""
import os
import sys

import pytest

GS_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "gaussian-splatting"))
if GS_DIR not in sys.path:
    sys.path.insert(0, GS_DIR)

from gs_testlib import make_dataset  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return make_dataset(str(tmp_path_factory.mktemp("tiny_scene")))


@pytest.fixture(scope="session")
def dataset_factory(tmp_path_factory):
    def make(**kw):
        return make_dataset(str(tmp_path_factory.mktemp("scene")), **kw)
    return make
