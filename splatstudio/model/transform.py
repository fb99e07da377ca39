"""Orientation and scale of a scene: a similarity transform ``x' = s R x + t`` (uniform scale ``s > 0``, a
proper rotation ``R``) and what it does to a `SplatCloud`.

A splat's centre moves, its rotation turns (``q' = q_R ⊗ q``: the covariance becomes ``s² R Σ Rᵀ``), its log
scales grow by ``log s``, and its view-dependent colour turns with it: each SH band of degree 1..3 is mixed
by that band's rotation matrix (fitted on the reference 3DGS basis, :func:`sh_basis`: the one `render.sh`
evaluates, repeated here because the model floor imports no renderer; a unit test holds them equal), so the
exported splat looks the same from the transformed camera as the original from the original camera.

The constructors give the transforms a person asks for (issue 23, item 3): level the scene from an up
direction or a ground plane through three points, put the origin at a point, make the distance between two
points a typed length. "Up" is the 3DGS/COLMAP frame's: −y (the frame every reader here gives, and the one
other tools of that family show upright). Pure numpy: the viewer, the window, exports and the CLI share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from splatstudio.model.geometry import matrix_to_quaternion, quaternion_multiply
from splatstudio.model.splatcloud import SplatCloud

UP = np.array([0.0, -1.0, 0.0])
"""The up direction of a levelled scene: −y, as in the 3DGS/COLMAP frame (x right, y down, z forward)."""

UNITS = ("m", "cm", "mm", "km", "in", "ft", "yd", "units")
"""Units a typed distance may be in; a scale keeps its unit for measurements."""

MIN_SEPARATION = 1e-9
"""Two picked points closer than this (relative to their distance from the origin, or absolutely) are one."""


class TransformError(ValueError):
    """A transform cannot be made from what was given (collinear points, a zero distance...): the message
    says what to do instead."""


@dataclass(frozen=True)
class Similarity:
    """``x' = scale * rotation @ x + translation``."""

    scale: float = 1.0
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        t = np.asarray(self.translation, dtype=np.float64).reshape(3)
        s = float(self.scale)
        if not (math.isfinite(s) and s > 0.0):
            raise TransformError(f"a scale must be a positive number, got {self.scale}")
        if not (np.isfinite(r).all() and np.isfinite(t).all()):
            raise TransformError("a transform must hold finite numbers")
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise TransformError("a transform's rotation must be a rotation matrix (orthonormal, determinant +1)")
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "translation", t)
        object.__setattr__(self, "scale", s)

    @classmethod
    def identity(cls) -> Similarity:
        return cls()

    @classmethod
    def from_matrix(cls, matrix) -> Similarity:
        """From a 4x4 matrix ``[[sR, t], [0, 0, 0, 1]]`` (a `TransformError` when it is not one)."""
        try:
            m = np.asarray(matrix, dtype=np.float64)
        except (TypeError, ValueError):
            raise TransformError("a transform must be a 4x4 matrix of numbers") from None
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise TransformError("a transform must be a 4x4 matrix of finite numbers")
        if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
            raise TransformError("a transform's last row must be 0, 0, 0, 1")
        linear = m[:3, :3]
        det = np.linalg.det(linear)
        if not det > 0:
            raise TransformError("a transform must keep handedness and size (its determinant is not positive)")
        s = float(np.cbrt(det))
        return cls(s, linear / s, m[:3, 3])

    @property
    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.scale * self.rotation
        m[:3, 3] = self.translation
        return m

    def is_identity(self, tolerance: float = 1e-12) -> bool:
        return bool(np.allclose(self.matrix, np.eye(4), atol=tolerance, rtol=0.0))

    def then(self, other: Similarity) -> Similarity:
        """This transform followed by ``other`` (``other ∘ self``)."""
        return Similarity(other.scale * self.scale, _orthonormal(other.rotation @ self.rotation),
                          other.scale * other.rotation @ self.translation + other.translation)

    def inverse(self) -> Similarity:
        r_t = self.rotation.T
        return Similarity(1.0 / self.scale, r_t, -(r_t @ self.translation) / self.scale)

    def apply(self, points) -> np.ndarray:
        """Points (N, 3) or one point (3,), transformed (float64)."""
        p = np.asarray(points, dtype=np.float64)
        return self.scale * (p @ self.rotation.T) + self.translation

    def apply_direction(self, directions) -> np.ndarray:
        """Directions rotated only (no scale, no translation)."""
        return np.asarray(directions, dtype=np.float64) @ self.rotation.T

    def describe(self) -> str:
        """In words: what this transform does (for lists and the CLI)."""
        if self.is_identity(1e-9):
            return "none"
        words = []
        angle = math.degrees(math.acos(float(np.clip((np.trace(self.rotation) - 1.0) / 2.0, -1.0, 1.0))))
        if angle > 1e-6:
            words.append(f"turned {angle:.2f}°")
        if abs(self.scale - 1.0) > 1e-12:
            words.append(f"scaled x{self.scale:.6g}")
        if np.linalg.norm(self.translation) > 1e-12:
            words.append("moved by (" + ", ".join(f"{v:.4g}" for v in self.translation) + ")")
        return ", ".join(words) or "none"


def _orthonormal(r: np.ndarray) -> np.ndarray:
    """The nearest rotation to ``r`` (products of many rotations drift from orthonormal in the last bits)."""
    u, _s, vt = np.linalg.svd(r)
    out = u @ vt
    if np.linalg.det(out) < 0:
        u[:, -1] = -u[:, -1]
        out = u @ vt
    return out


def _unit(v, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(v))
    if not (math.isfinite(n) and n > 1e-12):
        raise TransformError(f"{what} has no direction (a zero vector)")
    return v / n


def rotation_between(a, b) -> np.ndarray:
    """The smallest rotation taking direction ``a`` to direction ``b`` (3x3)."""
    a, b = _unit(a, "the first direction"), _unit(b, "the second direction")
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-12:  # opposite: half a turn about any axis perpendicular to a
        axis = np.cross(a, np.eye(3)[int(np.argmin(np.abs(a)))])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return _orthonormal(np.eye(3) + k + k @ k / (1.0 + c))


# ------------------------------------------------------------------------------------ constructors


def level_from_up(up) -> Similarity:
    """Turn the scene (about the origin) so that ``up`` points along `UP`."""
    return Similarity(1.0, rotation_between(up, UP), np.zeros(3))


def level_from_ground(p1, p2, p3, up_hint=UP) -> Similarity:
    """Level the scene on the plane through three points and put that plane at height 0: its normal (the side
    ``up_hint`` points to) becomes `UP`, and the points end at y = 0."""
    a, b, c = (np.asarray(p, dtype=np.float64).reshape(3) for p in (p1, p2, p3))
    normal = np.cross(b - a, c - a)
    size = max(float(np.linalg.norm(b - a)), float(np.linalg.norm(c - a)), float(np.linalg.norm(c - b)))
    if size <= MIN_SEPARATION or float(np.linalg.norm(normal)) <= 1e-6 * size * size:
        raise TransformError("the three points are on one line (or are the same point): pick three points "
                             "spread over the ground")
    normal /= np.linalg.norm(normal)
    if float(np.dot(normal, np.asarray(up_hint, dtype=np.float64))) < 0:
        normal = -normal
    rotation = rotation_between(normal, UP)
    height = float(np.dot(rotation @ ((a + b + c) / 3.0), UP))
    return Similarity(1.0, rotation, -height * UP)


def origin_at(point) -> Similarity:
    """Move the scene so that ``point`` is the origin."""
    p = np.asarray(point, dtype=np.float64).reshape(3)
    if not np.isfinite(p).all():
        raise TransformError("the origin must be a point of finite coordinates")
    return Similarity(1.0, np.eye(3), -p)


def scale_between(p1, p2, distance: float) -> Similarity:
    """Scale the scene (about the origin) so that points ``p1`` and ``p2`` end ``distance`` apart."""
    try:
        distance = float(distance)
    except (TypeError, ValueError):
        raise TransformError(f"a distance must be a number, got {distance!r}") from None
    if not math.isfinite(distance) or distance <= 0.0:
        raise TransformError(f"a distance must be more than 0, got {distance:g}")
    now = float(np.linalg.norm(np.asarray(p2, dtype=np.float64) - np.asarray(p1, dtype=np.float64)))
    if now <= MIN_SEPARATION:
        raise TransformError("the two points are the same point: pick two points apart, such as the ends of "
                             "something whose length you know")
    return Similarity(distance / now, np.eye(3), np.zeros(3))


def distance_between(p1, p2, transform: Similarity | None = None) -> float:
    """The distance between two points of the model, measured after ``transform`` (in its units)."""
    a, b = np.asarray(p1, dtype=np.float64), np.asarray(p2, dtype=np.float64)
    if transform is not None:
        a, b = transform.apply(a), transform.apply(b)
    return float(np.linalg.norm(b - a))


# ------------------------------------------------------------------------------------- the cloud


_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
       1.445305721320277, -0.5900435899266435)


def sh_basis(directions: np.ndarray) -> np.ndarray:
    """The reference 3DGS real SH basis up to degree 3 for unit ``directions`` (N, 3): (N, 16) float64, its
    signs and order those of ``eval_sh`` (and of ``render.sh.sh_basis``, in float32 there)."""
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    xx, yy, zz = x * x, y * y, z * z
    return np.column_stack([
        np.full(len(d), 0.28209479177387814), -_C1 * y, _C1 * z, -_C1 * x,
        _C2[0] * x * y, _C2[1] * y * z, _C2[2] * (2.0 * zz - xx - yy), _C2[3] * x * z, _C2[4] * (xx - yy),
        _C3[0] * y * (3.0 * xx - yy), _C3[1] * x * y * z, _C3[2] * y * (4.0 * zz - xx - yy),
        _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy), _C3[4] * x * (4.0 * zz - xx - yy), _C3[5] * z * (xx - yy),
        _C3[6] * x * (xx - 3.0 * yy)])


def sh_rotation_matrices(rotation: np.ndarray, degree: int) -> list[np.ndarray]:
    """Per band l = 1..degree, the (2l+1)x(2l+1) matrix ``M`` with ``c' = c @ M`` for a band's coefficients
    ``c`` (rows): the function ``f'(d) = f(Rᵀ d)``, i.e. the colour seen along ``d`` before the rotation is
    seen along ``R d`` after it. Fitted by least squares on sample directions (each band is closed under
    rotation, so the fit is exact to rounding)."""
    if degree <= 0:
        return []
    rng = np.random.default_rng(0)
    d = rng.normal(size=(64, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = np.asarray(rotation, dtype=np.float64)
    basis = sh_basis(d)
    turned = sh_basis(d @ r)  # Y(Rᵀ d) for each row d
    out = []
    for band in range(1, degree + 1):
        cols = slice(band * band, (band + 1) * (band + 1))
        m_t, *_ = np.linalg.lstsq(basis[:, cols], turned[:, cols], rcond=None)  # turned = basis @ Mᵀ
        out.append(m_t.T)
    return out


def transform_cloud(cloud: SplatCloud, transform: Similarity) -> SplatCloud:
    """``cloud`` as seen after ``transform``: centres moved, rotations turned, log scales grown by ``log s``,
    SH bands 1..3 turned (see the module's docstring); opacities and base colours unchanged."""
    if transform.is_identity():
        return cloud
    rotation = transform.rotation
    positions = transform.apply(cloud.positions)
    q = matrix_to_quaternion(rotation)
    rotations = quaternion_multiply(q, np.asarray(cloud.rotations, dtype=np.float64))
    scales = np.asarray(cloud.scales, dtype=np.float64) + math.log(transform.scale)
    sh_rest = cloud.sh_rest
    degree = cloud.sh_degree
    if degree > 0 and len(cloud):
        rest = np.empty(sh_rest.shape, dtype=np.float32)
        for band, m in enumerate(sh_rotation_matrices(rotation, degree), start=1):
            lo, hi = band * band - 1, (band + 1) * (band + 1) - 1  # sh_rest leaves the DC coefficient out
            # (N, 2l+1, 3): mix the coefficients of each colour channel
            rest[:, lo:hi] = np.einsum("nkc,kj->njc", sh_rest[:, lo:hi].astype(np.float64), m).astype(np.float32)
        sh_rest = rest
    normals = None if cloud.normals is None else transform.apply_direction(cloud.normals)
    return SplatCloud(positions=positions, scales=scales, rotations=rotations, opacities=cloud.opacities.copy(),
                      sh_dc=cloud.sh_dc.copy(), sh_rest=sh_rest, normals=normals)
