"""Scene preparation (pure numpy): a `SplatCloud` turned into what the viewer draws (`PreparedScene`:
centres and 3D covariances, opacities, an importance ranking for the moving budget, the framing box), and the
splats' colours seen from an eye (`splat_colors`: the SH colours, the clean-up's marks, the hand edits'
selection and hidden splats).

Used by the viewer (`viewer.SplatCanvas`) and its workers; imports neither Qt nor vispy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from splatstudio.model.geometry import quaternions_to_matrices
from splatstudio.model.splatcloud import SplatCloud
from splatstudio.render import composite
from splatstudio.render.camera import box_frame, scene_box
from splatstudio.render.sh import sh_to_rgb

STATIC_DTYPE = np.dtype([("a_position", "<f4", 3), ("a_cov_a", "<f4", 3), ("a_cov_b", "<f4", 3)])
"""Per-splat static vertex data: centre and the 6 unique entries of the 3D covariance."""


def covariances_3d(log_scales: np.ndarray, quats: np.ndarray, chunk: int = 262_144) -> np.ndarray:
    """Unique entries (xx, xy, xz, yy, yz, zz) of ``Σ = R S Sᵀ Rᵀ``: (N, 6) float32."""
    n = len(log_scales)
    out = np.empty((n, 6), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        m = quaternions_to_matrices(quats[start:stop]) * np.exp(log_scales[start:stop].astype(np.float64))[:, None, :]
        cov = m @ m.transpose(0, 2, 1)
        out[start:stop] = cov[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    return out


def importance(alphas: np.ndarray, log_scales: np.ndarray) -> np.ndarray:
    """View-independent importance for the moving budget: opacity x area of the two largest axes."""
    s = np.sort(log_scales.astype(np.float32), axis=1)
    return alphas * np.exp(s[:, 1] + s[:, 2])


@dataclass
class PreparedScene:
    """A `SplatCloud` turned into what the viewer draws (computed once, off the GUI thread if wished)."""

    cloud: SplatCloud
    static: np.ndarray  # (N,) STATIC_DTYPE
    alphas: np.ndarray  # (N,) float32
    budget_order: np.ndarray  # indices, most important first
    box: tuple[np.ndarray, np.ndarray]  # the robust (low, high) corners of its subject (`camera.scene_box`)
    marked: np.ndarray | None = None  # (N,) bool: splats an edit would remove, shown tinted or hidden
    hide_marked: bool = False
    hidden: np.ndarray | None = None  # (N,) bool: splats the hand edits deleted or hid (not drawn, not picked)
    selected: np.ndarray | None = None  # (N,) bool: the hand edits' selection, tinted (`SELECT_TINT`)

    def __len__(self) -> int:
        return len(self.static)

    @property
    def center(self) -> np.ndarray:
        return box_frame(*self.box)[0]

    @property
    def radius(self) -> float:
        return box_frame(*self.box)[1]

    @property
    def half_extent(self) -> np.ndarray:
        return (self.box[1] - self.box[0]) / 2.0

    @property
    def positions(self) -> np.ndarray:
        return self.cloud.positions


def prepare_scene(cloud: SplatCloud) -> PreparedScene:
    """Covariances, opacities, importance ranking and framing of `cloud` (pure numpy)."""
    static = np.empty(len(cloud), dtype=STATIC_DTYPE)
    static["a_position"] = cloud.positions
    cov = covariances_3d(cloud.scales, cloud.rotations)
    static["a_cov_a"] = cov[:, :3]
    static["a_cov_b"] = cov[:, 3:]
    alphas = cloud.alphas().astype(np.float32)
    order = np.argsort(-importance(alphas, cloud.scales), kind="stable")
    return PreparedScene(cloud, static, alphas, order, scene_box(cloud.positions, cloud.opacities, cloud.scales))


def splat_colors(scene: PreparedScene, eye: np.ndarray, degree: int, fast: bool = False) -> np.ndarray:
    """(N, 4) float32 RGBA: SH colours seen from `eye` (clamped to [0, 1]) and opacities.

    `fast`: with the CPU compositor's kernels when they are compiled (off the GUI thread: they
    share the compositor's lock).
    """
    cloud = scene.cloud
    if fast and composite.ready():
        colors = composite.sh_colors(cloud.positions, cloud.sh_dc, cloud.sh_rest, eye, degree, scene.alphas)
    else:
        colors = np.empty((len(cloud), 4), dtype=np.float32)
        colors[:, :3] = sh_to_rgb(cloud.sh_dc, cloud.sh_rest, cloud.positions, eye, degree=degree)
        colors[:, 3] = scene.alphas
    if scene.marked is not None:
        _mark(colors, scene.marked, scene.hide_marked)
    if scene.selected is not None:
        colors[scene.selected, :3] = 0.35 * colors[scene.selected, :3] + 0.65 * SELECT_TINT
        colors[scene.selected, 3] = np.maximum(colors[scene.selected, 3], MARK_MIN_ALPHA)
    if scene.hidden is not None:
        colors[scene.hidden, 3] = 0.0
    return colors


MARK_TINT = np.array([1.0, 0.1, 0.75], np.float32)
"""The colour of splats an edit would remove (a magenta no photo of a scene is likely to be)."""
MARK_MIN_ALPHA = np.float32(0.5)
SELECT_TINT = np.array([1.0, 0.78, 0.0], np.float32)
"""The colour of selected splats (SuperSplat's yellow; the clean-up's preview is magenta)."""


def _mark(colors: np.ndarray, marked: np.ndarray, hide: bool) -> None:
    """Splats an edit would remove: hidden (the result) or tinted and made at least half opaque (so the
    faint floaters among them show where they are)."""
    if hide:
        colors[marked, 3] = 0.0
        return
    colors[marked, :3] = 0.25 * colors[marked, :3] + 0.75 * MARK_TINT
    colors[marked, 3] = np.maximum(colors[marked, 3], MARK_MIN_ALPHA)



@dataclass
class ColorState:
    """Colours evaluated for the whole scene, and the eye and SH degree they were evaluated for."""

    colors: np.ndarray
    eye: np.ndarray
    degree: int


def colors_stale(state: ColorState, eye: np.ndarray, scene: PreparedScene, degree: int, exact: bool = False) -> bool:
    """Whether SH colours evaluated from ``state.eye`` should be recomputed for `eye`.

    Degree-0 colours never change. Otherwise they are refreshed when the direction from the
    scene centre to the eye turned by more than 0.5 degree or the eye moved by more than 1 %
    of the scene radius (any move with `exact`).
    """
    if state.degree != degree:
        return True
    if degree == 0 or scene.cloud.sh_degree == 0:
        return False
    eye = np.asarray(eye, dtype=np.float64)
    moved = float(np.linalg.norm(eye - state.eye))
    if exact:
        return moved > 0.0
    a, b = state.eye - scene.center, eye - scene.center
    cos = float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))
    return cos < math.cos(math.radians(0.5)) or moved > 0.01 * scene.radius


