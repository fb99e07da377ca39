"""Guided clean-up (issue 23, item 1): five detectors behind one strength. On a generated scene with every
kind of junk planted, each kind is found, the subject is kept, and stronger removes a superset of weaker."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_builders import junk_scene, ring_views

from splatstudio.model.cleanup import DETECTORS, cleanup_mask, cleanup_scores, describe, thresholds
from splatstudio.model.splatcloud import SplatCloud


def test_each_kind_of_junk_is_found_and_the_subject_kept():
    cloud, spans = junk_scene()
    scores = cleanup_scores(cloud, ring_views())
    mask, counts = cleanup_mask(scores, 0.5)
    for name in ("faint", "oversized", "unseen", "far", "isolated"):
        assert mask[spans[name]].all(), name
    assert mask[spans["subject"]].mean() < 0.01  # the subject stays
    assert counts["faint"] >= 40 and counts["unseen"] >= 15 and counts["far"] >= 30 and counts["oversized"] >= 10
    assert describe(mask, counts).startswith(f"removes {int(mask.sum()):,} of {len(cloud):,} splats")


def test_stronger_removes_a_superset_and_zero_removes_nothing():
    cloud, _ = junk_scene(seed=1)
    scores = cleanup_scores(cloud, ring_views())
    previous = np.zeros(len(cloud), dtype=bool)
    sizes = []
    for strength in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        mask, _ = cleanup_mask(scores, strength)
        assert not (previous & ~mask).any(), strength  # nested
        sizes.append(int(mask.sum()))
        previous = mask
    assert sizes[0] == 0 and sizes[1] < sizes[-1]
    assert describe(*cleanup_mask(scores, 0.0)) == f"removes nothing of {len(cloud):,} splats"


def test_without_cameras_only_the_camera_free_detectors_act():
    cloud, spans = junk_scene()
    scores = cleanup_scores(cloud, None)
    mask, counts = cleanup_mask(scores, 1.0)
    assert counts["unseen"] == 0 and counts["far"] == 0
    assert mask[spans["faint"]].all() and mask[spans["oversized"]].all()


@pytest.mark.parametrize("strength", [-1.0, 0.0, 0.3, 1.0, 7.0])
def test_thresholds_move_one_way(strength):
    weaker, stronger = thresholds(strength), thresholds(strength + 0.05)
    assert stronger.faint >= weaker.faint and stronger.oversized <= weaker.oversized
    assert stronger.unseen >= weaker.unseen and stronger.far <= weaker.far and stronger.isolated <= weaker.isolated
    assert set(DETECTORS) == {"faint", "oversized", "unseen", "far", "isolated"}


def test_an_empty_or_tiny_cloud_is_fine():
    empty = SplatCloud.empty()
    mask, counts = cleanup_mask(cleanup_scores(empty, ring_views()), 1.0)
    assert len(mask) == 0 and sum(counts.values()) == 0
    cloud, _ = junk_scene()
    few = cloud.subset(np.arange(5))  # fewer splats than neighbours asked for: no isolation score
    mask, counts = cleanup_mask(cleanup_scores(few, None), 1.0)
    assert len(mask) == 5 and counts["isolated"] == 0
