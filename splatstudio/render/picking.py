"""Picking on the CPU (pure numpy): the splat seen under a pixel (`pick_splat`), with the vertex shader's
projection of each splat to a pixel centre and a conic (`project_conics`; the parity tests use it too).

The compositor keeps no depth buffer, so a pick composites the splats whose ellipse holds the pixel front to
back, as the renderer does, and takes the one contributing most (alpha x transmittance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from splatstudio.model.geometry import Intrinsics
from splatstudio.render.scene import PreparedScene


@dataclass(frozen=True)
class PickResult:
    """The splat seen under a pixel: its index and attributes (activated where it helps)."""

    index: int
    position: np.ndarray
    depth: float
    weight: float  # its share of the pixel colour, alpha x transmittance
    opacity: float
    scale: np.ndarray  # standard deviations, exp(log scale)
    rotation: np.ndarray  # unit quaternion w, x, y, z
    color: np.ndarray  # rgb as seen from the camera


def project_conics(
    positions: np.ndarray, cov6: np.ndarray, view: np.ndarray, intr: Intrinsics, near: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CPU twin of the vertex shader: (pixel centres (N,2), conics (N,3), depths (N,), valid (N,))."""
    r, t = view[:3, :3].astype(np.float64), view[:3, 3].astype(np.float64)
    cam = positions.astype(np.float64) @ r.T + t
    z = cam[:, 2]
    valid = z > near
    zs = np.where(valid, z, 1.0)
    tanx, tany = intr.tan_half_fov
    txtz = np.clip(cam[:, 0] / zs, -1.3 * tanx, 1.3 * tanx)
    tytz = np.clip(cam[:, 1] / zs, -1.3 * tany, 1.3 * tany)
    j = np.zeros((len(cam), 2, 3))
    j[:, 0, 0] = intr.fx / zs
    j[:, 0, 2] = -intr.fx * txtz / zs
    j[:, 1, 1] = intr.fy / zs
    j[:, 1, 2] = -intr.fy * tytz / zs
    sigma = np.empty((len(cam), 3, 3))
    idx = [(0, 0, 0), (1, 0, 1), (2, 0, 2), (3, 1, 1), (4, 1, 2), (5, 2, 2)]
    for k, a, b in idx:
        sigma[:, a, b] = sigma[:, b, a] = cov6[:, k]
    tm = j @ r
    cov2 = tm @ sigma @ tm.transpose(0, 2, 1)
    a = cov2[:, 0, 0] + 0.3
    b = cov2[:, 0, 1]
    c = cov2[:, 1, 1] + 0.3
    det = a * c - b * b
    valid &= det > 0
    det = np.where(valid, det, 1.0)
    conics = np.stack([c / det, -b / det, a / det], axis=1)
    centres = np.stack([intr.fx * cam[:, 0] / zs + intr.cx, intr.fy * cam[:, 1] / zs + intr.cy], axis=1)
    return centres, conics, z, valid


def pick_splat(
    scene: PreparedScene, colors: np.ndarray, view: np.ndarray, intr: Intrinsics, near: float, x: float, y: float
) -> PickResult | None:
    """The splat contributing most to pixel coordinate (`x`, `y`) (top-left origin), or None.

    Splats whose 3-sigma ellipse contains the point are composited front to back exactly
    as the renderer does; the one with the largest ``alpha x transmittance`` wins.
    """
    centres, conics, depths, valid = project_conics(scene.positions, _cov6(scene), view, intr, near)
    d = np.array([x, y]) - centres
    m = conics[:, 0] * d[:, 0] ** 2 + 2 * conics[:, 1] * d[:, 0] * d[:, 1] + conics[:, 2] * d[:, 1] ** 2
    alphas = scene.alphas if scene.hidden is None else np.where(scene.hidden, np.float32(0.0), scene.alphas)
    alpha = np.minimum(0.99, alphas * np.exp(-0.5 * np.maximum(m, 0.0)))
    hit = np.flatnonzero(valid & (m <= 9.0) & (alpha >= 1.0 / 255.0))
    if len(hit) == 0:
        return None
    hit = hit[np.argsort(depths[hit], kind="stable")]
    a = alpha[hit]
    transmittance = np.concatenate([[1.0], np.cumprod(1.0 - a)[:-1]])
    best = int(hit[int(np.argmax(a * transmittance))])
    weight = float((a * transmittance).max())
    cloud = scene.cloud
    return PickResult(
        index=best,
        position=cloud.positions[best].copy(),
        depth=float(depths[best]),
        weight=weight,
        opacity=float(scene.alphas[best]),
        scale=np.exp(cloud.scales[best]),
        rotation=cloud.subset(np.array([best])).normalized_rotations()[0],
        color=colors[best, :3].copy(),
    )


def _cov6(scene: PreparedScene) -> np.ndarray:
    out = np.empty((len(scene), 6), dtype=np.float64)
    out[:, :3] = scene.static["a_cov_a"]
    out[:, 3:] = scene.static["a_cov_b"]
    return out
