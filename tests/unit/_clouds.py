"""Random `SplatCloud` factories shared by the unit tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from splatstudio.model.splatcloud import SplatCloud, sh_rest_count


def random_cloud(n: int, sh_degree: int = 3, seed: int = 0, normals: bool = False) -> SplatCloud:
    """A cloud of `n` Gaussians with plausible random values in storage convention."""
    rng = np.random.default_rng(seed)
    k = sh_rest_count(sh_degree)
    return SplatCloud(
        positions=rng.normal(0.0, 3.0, (n, 3)),
        scales=rng.normal(-4.0, 1.0, (n, 3)),
        rotations=rng.normal(0.0, 1.0, (n, 4)),
        opacities=rng.normal(0.0, 2.0, n),
        sh_dc=rng.normal(0.0, 1.0, (n, 3)),
        sh_rest=rng.normal(0.0, 0.2, (n, k, 3)),
        normals=rng.normal(0.0, 1.0, (n, 3)) if normals else None,
    )


def _floats(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def clouds(draw: st.DrawFn, max_size: int = 12, degrees: tuple[int, ...] = (0, 1, 2, 3)) -> SplatCloud:
    """Hypothesis strategy for small clouds with finite float32 values of any SH degree."""
    n = draw(st.integers(0, max_size))
    k = sh_rest_count(draw(st.sampled_from(degrees)))

    def arr(shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
        return draw(hnp.arrays(np.float32, shape, elements=_floats(low, high)))

    return SplatCloud(
        positions=arr((n, 3), -1e4, 1e4),
        scales=arr((n, 3), -12.0, 4.0),
        rotations=arr((n, 4), -1.0, 1.0),
        opacities=arr((n,), -12.0, 12.0),
        sh_dc=arr((n, 3), -3.0, 3.0),
        sh_rest=arr((n, k, 3), -1.0, 1.0),
    )
