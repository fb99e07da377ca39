"""Guided clean-up: which splats a trained scene is better without, at one strength from 0 (nothing) to 1.

Five detectors, each a score per splat computed once (:func:`cleanup_scores`, seconds at a million splats),
so that moving the strength only compares scores with thresholds (:func:`cleanup_mask`, milliseconds):

* **faint** — opacity so low the splat adds almost nothing where it is seen;
* **oversized** — its largest axis many times the scene's typical detail splat (the spikes and sheets
  seen from away from the photos);
* **unseen** — its centre inside the view of too few of the photos' cameras (none: it was never
  constrained by a photo at all);
* **far** — farther from the cameras' centre than the cameras are, by a factor (the background shells);
* **isolated** — its neighbours far away compared with the scene's typical spacing (floaters).

Every threshold moves one way with the strength, so a stronger clean-up removes a superset of a weaker
one. Pure numpy and scipy: the viewer previews the mask, exports apply it, the CLI can too.

The pipeline's filter stage removes junk through this module too (:func:`filter_outliers`), with two more
detectors on the same neighbour statistics (:func:`neighbourhood`) and the stage's settings
(``outlier_k_neighbors``, ``outlier_std_threshold``, ``outlier_min_cluster_ratio``):

* **statistical** — its mean distance to its k nearest neighbours above ``mean + std_ratio * std`` of
  that distance over the whole cloud;
* **detached** — in a small disconnected cluster: each surviving splat is linked to those of its 10 nearest
  neighbours that survived too, over links no longer than ``gap_factor`` times the local spacing (distance
  to the 4th nearest neighbour) of the sparser end, so links follow the local density (a sparse background
  stays attached to a dense object; a clump behind a real gap is a component of its own). Components holding
  fewer than ``min_cluster_ratio`` of the survivors go; the largest always stays.

The stage runs them on the trained model; the guided clean-up's five then work on what the stage kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from splatstudio.model.settings import SPEC_BY_KEY
from splatstudio.model.splatcloud import SplatCloud

DETECTORS = ("faint", "oversized", "unseen", "far", "isolated")
"""The guided clean-up's detectors, behind its one strength."""
STAGE_DETECTORS = ("statistical", "detached")
"""The filter stage's detectors, behind its settings."""
DETECTOR_WORDS = {
    "faint": "nearly transparent",
    "oversized": "oversized",
    "unseen": "outside the photos' views",
    "far": "far from the cameras",
    "isolated": "isolated floaters",
    "statistical": "statistical outliers",
    "detached": "in small detached clusters",
}
NEIGHBOURS = 8
CHUNK = 262_144
SPACING_NEIGHBOUR = 4
"""Which neighbour's distance measures the local spacing for the detached-cluster detector."""
GRAPH_NEIGHBOURS = 10
"""How many nearest neighbours each splat may be linked to by the detached-cluster detector."""
_STAGE_DEFAULT = {key: SPEC_BY_KEY[key].default for key in ("outlier_k_neighbors", "outlier_std_threshold",
                                                           "outlier_min_cluster_ratio")}  # one owner: the settings


@dataclass(frozen=True)
class Views:
    """The photos' cameras, as the detectors need them: centres (V, 3), camera-to-world rotations (V, 3, 3)
    in the 3DGS convention (x right, y down, z forward), focal lengths and image sizes in pixels (V,)."""

    centres: np.ndarray
    rotations: np.ndarray
    fx: np.ndarray
    fy: np.ndarray
    width: np.ndarray
    height: np.ndarray

    def __len__(self) -> int:
        return len(self.centres)


@dataclass(frozen=True)
class CleanupScores:
    """Per-splat scores of each detector (see the module's docstring); ``seen`` is -1 without cameras."""

    opacity: np.ndarray  # (N,) float32, 0..1
    size: np.ndarray  # (N,) float32, largest axis / the median largest axis of the opaque splats
    seen: np.ndarray  # (N,) int32, cameras whose view holds the centre
    distance: np.ndarray  # (N,) float32, distance to the cameras' centre / the cameras' own spread
    isolation: np.ndarray  # (N,) float32, mean distance to NEIGHBOURS others / its median

    def __len__(self) -> int:
        return len(self.opacity)


def cleanup_scores(cloud: SplatCloud, views: Views | None = None) -> CleanupScores:
    """Worker: every detector's score for every splat of ``cloud`` (``views``: the photos' cameras, without
    which ``unseen`` and ``far`` find nothing)."""
    n = len(cloud)
    positions = np.asarray(cloud.positions, dtype=np.float64)
    opacity = cloud.alphas().astype(np.float32)
    largest = np.exp(np.max(np.asarray(cloud.scales, dtype=np.float64), axis=1))
    opaque = opacity >= 0.5
    typical = float(np.median(largest[opaque] if opaque.sum() >= 10 else largest)) if n else 1.0
    size = (largest / max(typical, 1e-12)).astype(np.float32)
    seen = np.full(n, -1, dtype=np.int32)
    distance = np.zeros(n, dtype=np.float32)
    if views is not None and len(views) and n:
        seen = _seen_by(positions, views)
        middle = views.centres.mean(axis=0)
        spread = float(np.median(np.linalg.norm(views.centres - middle, axis=1)))
        spread = spread if spread > 0 else float(np.median(np.linalg.norm(positions - middle, axis=1))) or 1.0
        distance = (np.linalg.norm(positions - middle, axis=1) / spread).astype(np.float32)
    isolation = np.zeros(n, dtype=np.float32)
    if n > NEIGHBOURS:
        mean = neighbourhood(positions, NEIGHBOURS).mean_distance
        isolation = (mean / max(float(np.median(mean)), 1e-12)).astype(np.float32)
    return CleanupScores(opacity, size, seen, distance, isolation)


@dataclass(frozen=True)
class Neighbourhood:
    """k-nearest-neighbour statistics of every splat, itself excluded."""

    mean_distance: np.ndarray  # (N,) mean distance to the k nearest others
    near_distance: np.ndarray  # (N, m) distances to the m nearest (m: ``links``), nearest first
    near_index: np.ndarray  # (N, m) int32, their indices


def neighbourhood(positions: np.ndarray, k: int, links: int = 0) -> Neighbourhood:
    """The statistics every neighbour-based detector reads: each splat's mean distance to its ``k`` nearest
    others, and the distances and indices of its ``min(k, links)`` nearest (none by default). Queries run
    in the tree's leaf order, which keeps consecutive queries in cache (about twice as fast on large clouds);
    results are scattered back."""
    from scipy.spatial import cKDTree  # (only here: the viewer imports this module for Views)

    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n, m = len(positions), min(k, links)
    tree = cKDTree(positions)
    order = tree.indices
    found_d, found_i = tree.query(positions[order], k=k + 1, workers=-1)
    mean_distance = np.empty(n)
    mean_distance[order] = found_d[:, 1:].mean(axis=1)  # column 0 is the point itself
    near_distance = np.empty((n, m))
    near_index = np.empty((n, m), dtype=np.int32)
    if m:
        near_distance[order] = found_d[:, 1:m + 1]
        near_index[order] = found_i[:, 1:m + 1]
    return Neighbourhood(mean_distance, near_distance, near_index)


def _seen_by(positions: np.ndarray, views: Views) -> np.ndarray:
    """How many cameras have each point in front of them and inside their image (float32 maths, chunked:
    a million points and 30 cameras in a few seconds)."""
    count = np.zeros(len(positions), dtype=np.int32)
    for start in range(0, len(positions), CHUNK):
        chunk = positions[start:start + CHUNK].astype(np.float32)
        for v in range(len(views)):
            world_to_camera = views.rotations[v].T.astype(np.float32)
            local = chunk @ world_to_camera.T - (world_to_camera @ views.centres[v]).astype(np.float32)
            z = local[:, 2]
            ahead = z > 1e-6
            inv = np.float32(1.0) / np.where(ahead, z, np.float32(1.0))
            half_w, half_h = np.float32(views.width[v] / 2.0), np.float32(views.height[v] / 2.0)
            u = np.abs(local[:, 0] * inv * np.float32(views.fx[v]))
            w = np.abs(local[:, 1] * inv * np.float32(views.fy[v]))
            count[start:start + CHUNK] += ahead & (u < half_w) & (w < half_h)
    return count


@dataclass(frozen=True)
class Thresholds:
    """What a strength removes: opacity below, size above, seen by fewer than, distance above, isolation
    above (``inf``: nothing)."""

    faint: float
    oversized: float
    unseen: int
    far: float
    isolated: float


def thresholds(strength: float) -> Thresholds:
    """The detectors' thresholds at ``strength`` (0: remove nothing; 1: the most a scene should lose).
    Each moves one way with the strength, so the removed sets nest."""
    s = min(max(float(strength), 0.0), 1.0)
    if s <= 0.0:
        return Thresholds(0.0, math.inf, 0, math.inf, math.inf)
    gentle = (1.0 - s) ** 2  # 1 at the weakest, 0 at the strongest
    return Thresholds(
        faint=0.01 + 0.09 * s,  # 1 % .. 10 % opacity
        oversized=6.0 + 60.0 * gentle,  # 66x .. 6x the typical detail splat
        unseen=1 if s < 0.6 else (2 if s < 0.9 else 3),  # outside every view, then seen by one or two only
        far=2.5 + 30.0 * gentle,  # 32x .. 2.5x the cameras' spread from their centre
        isolated=3.0 + 25.0 * gentle,  # neighbours 28x .. 3x farther than typical
    )


def cleanup_mask(scores: CleanupScores, strength: float) -> tuple[np.ndarray, dict[str, int]]:
    """The splats to remove at ``strength`` (a boolean mask) and how many each detector finds (a splat
    found by several counts for each)."""
    t = thresholds(strength)
    found = {
        "faint": scores.opacity < t.faint,
        "oversized": scores.size > t.oversized,
        "unseen": (scores.seen >= 0) & (scores.seen < t.unseen),
        "far": scores.distance > t.far,
        "isolated": scores.isolation > t.isolated,
    }
    mask = np.zeros(len(scores), dtype=bool)
    for hit in found.values():
        mask |= hit
    return mask, {name: int(hit.sum()) for name, hit in found.items()}


def describe(mask: np.ndarray, counts: dict[str, int]) -> str:
    """``"removes 1,234 of 50,000 splats (2.5 %): 800 nearly transparent, 434 isolated floaters"``."""
    total, removed = len(mask), int(mask.sum())
    if removed == 0:
        return f"removes nothing of {total:,} splats"
    parts = [f"{counts[name]:,} {DETECTOR_WORDS[name]}" for name in DETECTORS if counts.get(name)]
    return f"removes {removed:,} of {total:,} splats ({100.0 * removed / max(total, 1):.1f} %): " + ", ".join(parts)


# ---------------------------------------------------------------------- the filter stage's detectors


@dataclass(frozen=True)
class FilterResult:
    """What the filter stage keeps, with what each of its detectors removed (``total == removed +
    remaining``; a splat both detectors would flag counts once, for ``statistical``, which runs first)."""

    keep_mask: np.ndarray
    total: int
    removed_statistical: int
    removed_clusters: int
    remaining: int

    @property
    def removed(self) -> int:
        return self.removed_statistical + self.removed_clusters


def statistical_outliers(mean_distance: np.ndarray, std_ratio: float) -> np.ndarray:
    """The **statistical** detector: splats whose mean neighbour distance is above ``mean + std_ratio *
    std`` of it over the cloud (a boolean mask of those to remove)."""
    threshold = mean_distance.mean() + std_ratio * mean_distance.std()
    return mean_distance > threshold


def detached_clusters(hood: Neighbourhood, alive: np.ndarray, min_cluster_ratio: float,
                      gap_factor: float) -> np.ndarray:
    """The **detached** detector: the ``alive`` splats in components holding fewer than ``min_cluster_ratio``
    of them (the largest is always kept). ``hood`` needs ``links`` of at least SPACING_NEIGHBOUR."""
    from scipy.sparse.csgraph import connected_components

    graph = _neighbour_graph(hood, alive, gap_factor)
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels[alive], minlength=labels.max() + 1)
    big = sizes >= min_cluster_ratio * int(alive.sum())
    big[np.argmax(sizes)] = True
    return alive & ~big[labels]


def _neighbour_graph(hood: Neighbourhood, alive: np.ndarray, gap_factor: float):
    """Sparse graph linking alive splats to their nearest alive neighbours across no gap."""
    from scipy.sparse import csr_matrix

    near = hood.near_index
    spacing = hood.near_distance[:, SPACING_NEIGHBOUR - 1]
    linked = hood.near_distance <= gap_factor * np.maximum(spacing[:, None], spacing[near])
    linked &= alive[near]
    linked &= alive[:, None]
    indptr = np.zeros(len(alive) + 1, dtype=np.int64)
    np.cumsum(linked.sum(axis=1), out=indptr[1:])
    data = np.ones(int(indptr[-1]), dtype=np.float64)
    return csr_matrix((data, near[linked], indptr), shape=(len(alive), len(alive)))


def filter_outliers(
    positions: np.ndarray,
    k: int = _STAGE_DEFAULT["outlier_k_neighbors"],
    std_ratio: float = _STAGE_DEFAULT["outlier_std_threshold"],
    min_cluster_ratio: float = _STAGE_DEFAULT["outlier_min_cluster_ratio"],
    gap_factor: float = 3.0,
) -> FilterResult:
    """The filter stage's removal: the statistical detector over ``k`` neighbours, then the detached-cluster
    detector on the survivors (``min_cluster_ratio`` 0: off). With N <= k there are too few splats to judge
    and all are kept."""
    _check_stage_settings(k, std_ratio, min_cluster_ratio, gap_factor)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(positions).all():
        raise ValueError("positions must be finite to be filtered")
    n = len(positions)
    if n <= k:
        return FilterResult(np.ones(n, dtype=bool), n, 0, 0, n)
    hood = neighbourhood(positions, k, links=GRAPH_NEIGHBOURS)
    keep = ~statistical_outliers(hood.mean_distance, std_ratio)
    removed_statistical = n - int(keep.sum())
    if min_cluster_ratio > 0:
        keep &= ~detached_clusters(hood, keep, min_cluster_ratio, gap_factor)
    remaining = int(keep.sum())
    return FilterResult(keep, n, removed_statistical, n - removed_statistical - remaining, remaining)


def _check_stage_settings(k: int, std_ratio: float, min_cluster_ratio: float, gap_factor: float) -> None:
    if k < SPACING_NEIGHBOUR:
        raise ValueError(f"k must be at least {SPACING_NEIGHBOUR}, got {k}")
    if not std_ratio > 0:
        raise ValueError(f"std_ratio must be positive, got {std_ratio}")
    if not 0 <= min_cluster_ratio < 1:
        raise ValueError(f"min_cluster_ratio must be in [0, 1), got {min_cluster_ratio}")
    if not gap_factor > 0:
        raise ValueError(f"gap_factor must be positive, got {gap_factor}")


def describe_filter(result: FilterResult) -> str:
    """``"kept 6,000 of 6,031 splats: 6 statistical outliers, 25 in small detached clusters"``."""
    parts = [f"{count:,} {DETECTOR_WORDS[name]}" for name, count in
             (("statistical", result.removed_statistical), ("detached", result.removed_clusters)) if count]
    return f"kept {result.remaining:,} of {result.total:,} splats" + (": " + ", ".join(parts) if parts else "")
