"""Real spherical harmonics up to degree 3 and view-dependent splat colours (pure numpy).

The basis, its constants and the ordering of coefficients are exactly those of the
reference 3D Gaussian Splatting implementation (``utils/sh_utils.py`` there): a colour
is ``max(sum_k c_k * Y_k(d) + 0.5, 0)`` for the unit direction ``d`` from the camera
centre to the Gaussian. Coefficient 0 is the DC term (``SplatCloud.sh_dc``), 1..15 are
``SplatCloud.sh_rest[:, 0..14]``.
"""

from __future__ import annotations

import numpy as np

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)

MAX_DEGREE = 3

CHUNK = 131_072
"""Splats per step of `sh_to_rgb`."""


def coefficient_count(degree: int) -> int:
    """Number of SH coefficients per channel up to `degree`, ``(degree + 1)²``."""
    if not 0 <= degree <= MAX_DEGREE:
        raise ValueError(f"SH degree must be 0..{MAX_DEGREE}, got {degree}")
    return (degree + 1) ** 2


def sh_basis(directions: np.ndarray, degree: int) -> np.ndarray:
    """Basis values ``Y_k(d)`` for unit `directions` (N, 3): returns (N, (degree + 1)²).

    The signs and ordering follow the reference 3DGS ``eval_sh``.
    """
    d = np.asarray(directions, dtype=np.float32).reshape(-1, 3)
    out = np.empty((len(d), coefficient_count(degree)), dtype=np.float32)
    out[:, 0] = SH_C0
    if degree == 0:
        return out
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    out[:, 1] = -SH_C1 * y
    out[:, 2] = SH_C1 * z
    out[:, 3] = -SH_C1 * x
    if degree == 1:
        return out
    xx, yy, zz = x * x, y * y, z * z
    xy, yz, xz = x * y, y * z, x * z
    out[:, 4] = SH_C2[0] * xy
    out[:, 5] = SH_C2[1] * yz
    out[:, 6] = SH_C2[2] * (2.0 * zz - xx - yy)
    out[:, 7] = SH_C2[3] * xz
    out[:, 8] = SH_C2[4] * (xx - yy)
    if degree == 2:
        return out
    out[:, 9] = SH_C3[0] * y * (3.0 * xx - yy)
    out[:, 10] = SH_C3[1] * xy * z
    out[:, 11] = SH_C3[2] * y * (4.0 * zz - xx - yy)
    out[:, 12] = SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
    out[:, 13] = SH_C3[4] * x * (4.0 * zz - xx - yy)
    out[:, 14] = SH_C3[5] * z * (xx - yy)
    out[:, 15] = SH_C3[6] * x * (xx - 3.0 * yy)
    return out


def view_directions(positions: np.ndarray, camera_center: np.ndarray) -> np.ndarray:
    """Unit vectors from `camera_center` to each position (zero-length ones become +z)."""
    d = np.asarray(positions, dtype=np.float32) - np.asarray(camera_center, dtype=np.float32)
    norm = np.sqrt(np.einsum("ij,ij->i", d, d))
    small = norm < 1e-12
    norm[small] = 1.0
    d /= norm[:, None]
    d[small] = (0.0, 0.0, 1.0)
    return d


def eval_sh(
    sh_dc: np.ndarray,
    sh_rest: np.ndarray,
    directions: np.ndarray,
    degree: int | None = None,
) -> np.ndarray:
    """Raw SH value per channel (before the +0.5 offset): (N, 3) float32.

    `degree` defaults to the highest the coefficients allow and is clipped to it.
    """
    sh_dc = np.asarray(sh_dc, dtype=np.float32).reshape(-1, 3)
    sh_rest = np.asarray(sh_rest, dtype=np.float32).reshape(len(sh_dc), -1, 3)
    available = {0: 0, 3: 1, 8: 2, 15: 3}[sh_rest.shape[1]]
    degree = available if degree is None else max(0, min(int(degree), available))
    result = SH_C0 * sh_dc
    if degree == 0:
        return result.astype(np.float32)
    basis = sh_basis(directions, degree)
    k = coefficient_count(degree) - 1
    if k >= 8:  # batched (1, k) @ (k, 3) products: faster than einsum for degrees 2 and 3
        result += np.matmul(basis[:, None, 1:], sh_rest[:, :k])[:, 0]
    else:
        result += np.einsum("nk,nkc->nc", basis[:, 1:], sh_rest[:, :k], optimize=False)
    return result.astype(np.float32)


def sh_to_rgb(
    sh_dc: np.ndarray,
    sh_rest: np.ndarray,
    positions: np.ndarray,
    camera_center: np.ndarray,
    degree: int | None = None,
    clamp_max: float | None = 1.0,
    chunk: int = CHUNK,
) -> np.ndarray:
    """View-dependent colours ``max(SH(d) + 0.5, 0)`` seen from `camera_center`: (N, 3) float32.

    `clamp_max` (1.0 by default, as an 8-bit framebuffer does anyway) caps the colours;
    pass None for the reference behaviour that only clamps at 0. Evaluated `chunk` splats at a
    time, so that the temporaries stay in the CPU caches (twice as fast at 1M splats).
    """
    n = len(positions)
    out = np.empty((n, 3), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        dirs = view_directions(positions[start:stop], camera_center)
        rgb = eval_sh(sh_dc[start:stop], sh_rest[start:stop], dirs, degree)
        rgb += np.float32(0.5)
        np.maximum(rgb, 0.0, out=rgb)
        if clamp_max is not None:
            np.minimum(rgb, clamp_max, out=rgb)
        out[start:stop] = rgb
    return out


def direction_change_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two (not necessarily unit) direction vectors."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 180.0
    cos = float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
    return float(np.degrees(np.arccos(cos)))
