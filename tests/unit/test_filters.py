"""Tests for the filter stage's detectors in `splatstudio.model.cleanup`: statistical and small-cluster outlier
removal (and its file-level helper, `splatstudio.pipeline.post.filter_ply`), and that the stage and the guided
clean-up share one neighbour query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _clouds import random_cloud

from splatstudio.io.ply import read_splat_ply, write_splat_ply
from splatstudio.model.cleanup import FilterResult, describe_filter, filter_outliers
from splatstudio.pipeline.post import filter_ply


def sphere_surface(n: int, radius: float, centre: tuple[float, float, float], seed: int) -> np.ndarray:
    """Points spread evenly (random) over a sphere: a closed surface, like a splatted object."""
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return np.asarray(centre) + radius * v / np.linalg.norm(v, axis=1, keepdims=True)


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dense object, 6 far lone points and a remote clump of 25: returns points and both index sets."""
    rng = np.random.default_rng(0)
    blob = sphere_surface(6000, 1.0, (0, 0, 0), seed=1)
    lone = np.array([[40.0, 0, 0], [0, -35, 0], [0, 0, 50], [-30, 30, 0], [25, 25, 25], [0, 60, -10]])
    clump = np.array([12.0, -8.0, 5.0]) + rng.normal(0, 0.02, (25, 3))
    points = np.vstack([blob, lone, clump])
    order = rng.permutation(len(points))
    where = np.argsort(order)  # new position of each original point
    lone_idx = where[6000:6006]
    clump_idx = where[6006:]
    return points[order], lone_idx, clump_idx


def test_removes_exactly_the_lone_points_and_the_remote_clump() -> None:
    points, lone, clump = scene()
    result = filter_outliers(points)
    expected = np.ones(len(points), dtype=bool)
    expected[lone] = False
    expected[clump] = False
    np.testing.assert_array_equal(result.keep_mask, expected)
    assert result.total == 6031
    assert result.removed_statistical == 6
    assert result.removed_clusters == 25
    assert result.removed == 31
    assert result.remaining == 6000
    assert describe_filter(result) == "kept 6,000 of 6,031 splats: 6 statistical outliers, 25 in small detached clusters"


def test_cluster_pass_can_be_disabled() -> None:
    points, lone, clump = scene()
    result = filter_outliers(points, min_cluster_ratio=0.0)
    assert result.removed_clusters == 0 and result.remaining == 6025
    assert result.keep_mask[clump].all() and not result.keep_mask[lone].any()


def test_large_separate_parts_are_kept() -> None:
    """Two objects apart from each other, each above the ratio, and a sparse ring around them."""
    dense = sphere_surface(4000, 1.0, (0, 0, 0), seed=2)
    second = sphere_surface(600, 0.5, (6, 0, 0), seed=3)
    angles = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    ring = np.c_[10 * np.cos(angles), 10 * np.sin(angles), np.zeros(500)]  # far sparser than the objects
    result = filter_outliers(np.vstack([dense, second, ring]), std_ratio=1e9)
    assert result.removed == 0 and result.remaining == 5100


def test_largest_component_is_always_kept() -> None:
    a = sphere_surface(300, 1.0, (0, 0, 0), seed=4)
    b = sphere_surface(200, 1.0, (20, 0, 0), seed=5)
    result = filter_outliers(np.vstack([a, b]), std_ratio=1e9, min_cluster_ratio=0.9)
    assert result.keep_mask[:300].all() and not result.keep_mask[300:].any()
    assert result.removed_clusters == 200


@pytest.mark.parametrize("n", [0, 1, 5, 20])
def test_too_few_points_are_all_kept(n: int) -> None:
    result = filter_outliers(np.random.default_rng(0).normal(size=(n, 3)), k=20)
    assert result == FilterResult(result.keep_mask, n, 0, 0, n)
    assert result.keep_mask.shape == (n,) and result.keep_mask.all()


def test_just_above_k_points() -> None:
    result = filter_outliers(np.random.default_rng(0).normal(size=(21, 3)), k=20)
    assert result.total == 21 and result.remaining + result.removed == 21


def test_duplicate_points_are_not_outliers() -> None:
    result = filter_outliers(np.ones((100, 3)))
    assert result.remaining == 100


def test_counts_are_consistent_on_noise() -> None:
    points = np.random.default_rng(9).standard_cauchy(size=(3000, 3))
    result = filter_outliers(points, k=10, std_ratio=1.0, min_cluster_ratio=0.05)
    assert result.total == 3000
    assert result.removed_statistical + result.removed_clusters + result.remaining == 3000
    assert int(result.keep_mask.sum()) == result.remaining
    assert result.remaining > 0


@pytest.mark.parametrize(
    "settings",
    [{"k": 3}, {"std_ratio": 0.0}, {"min_cluster_ratio": 1.0}, {"min_cluster_ratio": -0.1}, {"gap_factor": 0.0}],
)
def test_invalid_settings(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        filter_outliers(np.zeros((50, 3)), **settings)


def test_non_finite_positions_are_refused() -> None:
    points = np.zeros((30, 3))
    points[4, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        filter_outliers(points)


def test_filter_ply_writes_the_kept_subset(tmp_path: Path) -> None:
    points, _, _ = scene()
    cloud = random_cloud(len(points), sh_degree=1)
    cloud.positions = points.astype(np.float32)
    write_splat_ply(tmp_path / "in.ply", cloud)
    result = filter_ply(tmp_path / "in.ply", tmp_path / "out.ply")
    assert (result.removed_statistical, result.removed_clusters, result.remaining) == (6, 25, 6000)
    out = read_splat_ply(tmp_path / "out.ply")
    assert len(out) == 6000 and out.sh_degree == 1
    kept = cloud.subset(result.keep_mask)
    np.testing.assert_array_equal(out.positions, kept.positions)
    np.testing.assert_array_equal(out.sh_rest, kept.sh_rest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ply", "out.ply"]


def test_the_stage_and_the_clean_up_share_the_neighbour_statistics() -> None:
    """One code path measures neighbours: the guided clean-up's isolation score is the stage's neighbourhood
    over NEIGHBOURS, and the stage's statistical detector is a threshold on the same mean distance."""
    from splatstudio.model.cleanup import NEIGHBOURS, cleanup_scores, neighbourhood, statistical_outliers

    points, lone, _clump = scene()
    cloud = random_cloud(len(points), sh_degree=0)
    cloud.positions = points.astype(np.float32)
    mean = neighbourhood(cloud.positions, NEIGHBOURS).mean_distance
    np.testing.assert_allclose(cleanup_scores(cloud).isolation, mean / np.median(mean), rtol=1e-6)
    hood = neighbourhood(points, 20, links=10)
    assert hood.near_index.shape == (len(points), 10) and (np.diff(hood.near_distance, axis=1) >= 0).all()
    flagged = statistical_outliers(hood.mean_distance, 2.0)
    assert set(np.flatnonzero(flagged)) == set(lone.tolist())
