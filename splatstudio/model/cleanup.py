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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from splatstudio.model.splatcloud import SplatCloud

DETECTORS = ("faint", "oversized", "unseen", "far", "isolated")
DETECTOR_WORDS = {
    "faint": "nearly transparent",
    "oversized": "oversized",
    "unseen": "outside the photos' views",
    "far": "far from the cameras",
    "isolated": "isolated floaters",
}
NEIGHBOURS = 8
CHUNK = 262_144


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
        from scipy.spatial import cKDTree  # (only here: the viewer imports this module for Views)

        tree = cKDTree(positions)
        order = tree.indices  # queries in the tree's leaf order stay in cache: about twice as fast
        found, _ = tree.query(positions[order], k=NEIGHBOURS + 1, workers=-1)
        mean = np.empty(n)
        mean[order] = found[:, 1:].mean(axis=1)  # column 0 is the point itself
        isolation = (mean / max(float(np.median(mean)), 1e-12)).astype(np.float32)
    return CleanupScores(opacity, size, seen, distance, isolation)


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
