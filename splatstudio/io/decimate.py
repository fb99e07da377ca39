"""Fewer splats for delivery: keep the most visible ones, to a splat count or to a file size.

Importance is how much a splat can cover of any view: its opacity times the area of its largest cross
section, ``sigmoid(opacity) * s1 * s2`` with ``s1 >= s2`` the two largest of its three scales (computed in
log space, so no scale overflows). A large, opaque splat scores high; a faint speck, low. Ties keep the
file's order, so the same cloud and target always keep the same splats, and the kept splats stay in their
original order.

A size target picks the count from the format's bytes per splat: for ``.ply`` and ``.splat`` that is exact
(fixed-size records), for the compressed formats it is measured by writing the most important splats (a
sample first, then the candidate itself), shrinking the count in proportion until the file fits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from splatstudio.io.errors import FormatError
from splatstudio.model.splatcloud import SplatCloud

SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
              "kib": 2**10, "mib": 2**20, "gib": 2**30}
SAMPLE_SPLATS = 16384
MAX_WRITES = 6


def log_importance(cloud: SplatCloud) -> np.ndarray:
    """log of ``sigmoid(opacity) * s1 * s2`` per splat (float64)."""
    opacity = cloud.opacities.astype(np.float64)
    log_alpha = -np.logaddexp(0.0, -opacity)  # log sigmoid, stable at both ends
    scales = np.sort(cloud.scales.astype(np.float64), axis=1)
    return log_alpha + scales[:, 2] + scales[:, 1]


def ranking(cloud: SplatCloud) -> np.ndarray:
    """Splat indexes from the most to the least important (ties in file order)."""
    return np.argsort(-log_importance(cloud), kind="stable")


def keep_most_important(cloud: SplatCloud, count: int, order: np.ndarray | None = None) -> SplatCloud:
    """The `count` most important splats of `cloud`, in their original order (the cloud itself when it has
    no more than `count`)."""
    if count < 1:
        raise ValueError(f"a target splat count must be at least 1, got {count}")
    if count >= len(cloud):
        return cloud
    order = ranking(cloud) if order is None else order
    return cloud.subset(np.sort(order[:count]))


def parse_size(text: str) -> int:
    """``"20MB"``, ``"1.5 GB"``, ``"800k"``, ``"30MiB"``, ``"123456"`` -> bytes (kB/MB/GB decimal, as the app
    shows sizes; KiB/MiB/GiB binary). `ValueError` for anything else."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in SIZE_UNITS:
        raise ValueError(f"expected a size such as 20MB, 500kB or 1.5GB, got {text!r}")
    size = int(float(match.group(1)) * SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(f"a target size must be at least one byte, got {text!r}")
    return size


def fit_to_size(
    cloud: SplatCloud, target_bytes: int, write: Callable[[SplatCloud, Path], None], folder: Path, extension: str,
    name: str | Path = "export",
) -> tuple[SplatCloud, Path]:
    """The most important splats of `cloud` whose file, written by ``write(cloud, path)`` into `folder`, is at
    most `target_bytes`, as many as fit (to within half a per cent of the target, or all of them), and that
    file. Attempts that are not kept are deleted. `FormatError` naming `name` when not even one splat fits.

    A search over the count between one known to fit and one known not to, starting from one splat and
    the most important `SAMPLE_SPLATS`: each next count interpolates the sizes of the two (exact for
    fixed-size records in one step), halving the interval instead when interpolation has twice moved the
    same end; at most `MAX_WRITES` attempts after those two."""
    order = ranking(cloud)
    attempts = 0

    def attempt(count: int) -> tuple[int, int, Path, SplatCloud]:
        nonlocal attempts
        attempts += 1
        kept = keep_most_important(cloud, count, order)
        path = folder / f"attempt-{attempts}{extension}"
        write(kept, path)
        return count, path.stat().st_size, path, kept

    n = len(cloud)
    low = attempt(1)
    first_size = low[1]
    if low[1] > target_bytes:
        low[2].unlink(missing_ok=True)
        raise FormatError(name, f"the target size, {target_bytes:,} bytes, is less than a {extension} file of a "
                                f"single splat ({low[1]:,} bytes)")
    high: tuple[int, int, Path, SplatCloud] | None = None  # the smallest count known not to fit

    def settle(candidate: tuple[int, int, Path, SplatCloud]) -> str:
        nonlocal low, high
        if candidate[1] <= target_bytes:
            low[2].unlink(missing_ok=True)
            low = candidate
            return "low"
        if high is not None:
            high[2].unlink(missing_ok=True)
        high = candidate
        return "high"

    moved: list[str] = []
    if n > 1:
        moved.append(settle(attempt(min(n, SAMPLE_SPLATS))))
    for _ in range(MAX_WRITES):
        if low[0] == n or (high is not None and high[0] == low[0] + 1) or low[1] >= 0.995 * target_bytes:
            break
        if high is None:  # all that was tried fits: extrapolate from the last two sizes that fit
            per_splat = max(1e-3, (low[1] - first_size) / max(1, low[0] - 1)) if low[0] > 1 else 1.0
            count = min(n, low[0] + max(1, int((target_bytes - low[1]) / per_splat)))
        elif len(moved) >= 2 and moved[-1] == moved[-2]:
            count = (low[0] + high[0]) // 2
        else:
            fraction = (target_bytes - low[1]) / max(1, high[1] - low[1])
            count = low[0] + int(fraction * (high[0] - low[0]))
        upper = n if high is None else high[0] - 1
        count = min(max(count, low[0] + 1), upper)
        moved.append(settle(attempt(count)))
    if high is not None:
        high[2].unlink(missing_ok=True)
    return low[3], low[2]
