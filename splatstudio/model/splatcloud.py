"""In-memory container for a 3D Gaussian Splatting scene.

`SplatCloud` holds the per-Gaussian parameters as float32 numpy arrays in the
storage convention of the reference 3DGS implementation (the values that go
into a ``point_cloud.ply``), i.e. *before* the activation functions:

* ``positions``  (N, 3) world-space centres
* ``scales``     (N, 3) natural-log scales (activate with ``exp``)
* ``rotations``  (N, 4) quaternions w, x, y, z as stored (may be unnormalised)
* ``opacities``  (N,)   logits (activate with the sigmoid)
* ``sh_dc``      (N, 3) degree-0 spherical-harmonics coefficients per channel
* ``sh_rest``    (N, K, 3) higher-order SH coefficients, K = (deg + 1)^2 - 1
* ``normals``    (N, 3) optional, usually zero in trained scenes

The module is pure numpy so it can be used from worker processes and tests
without any GUI dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SH_C0 = 0.28209479177387814
"""Zeroth-order real spherical-harmonics constant, 1 / (2 * sqrt(pi))."""

SH_REST_COUNTS = {0: 0, 1: 3, 2: 8, 3: 15}
"""Number of non-DC SH coefficients per colour channel for each degree."""


class SplatValidationError(ValueError):
    """A `SplatCloud` has inconsistent shapes or non-finite values."""


def sh_rest_count(degree: int) -> int:
    """Return K, the number of non-DC SH coefficients per channel for `degree`."""
    if degree not in SH_REST_COUNTS:
        raise ValueError(f"SH degree must be 0..3, got {degree}")
    return SH_REST_COUNTS[degree]


def degree_for_rest_count(count: int) -> int:
    """Return the SH degree whose per-channel rest-coefficient count is `count`."""
    for degree, k in SH_REST_COUNTS.items():
        if k == count:
            return degree
    raise ValueError(f"{count} SH rest coefficients per channel match no degree 0..3")


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, preserving float32."""
    x = np.asarray(x, dtype=np.float32)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Inverse of `sigmoid`, clamping `p` to [eps, 1 - eps] to stay finite."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p / (1.0 - p)).astype(np.float32)


def rgb_to_sh_dc(rgb: np.ndarray) -> np.ndarray:
    """Convert colours in [0, 1] to degree-0 SH coefficients."""
    return ((np.asarray(rgb, dtype=np.float32) - 0.5) / SH_C0).astype(np.float32)


def sh_dc_to_rgb(sh_dc: np.ndarray) -> np.ndarray:
    """Convert degree-0 SH coefficients to colours clipped to [0, 1]."""
    return np.clip(0.5 + SH_C0 * np.asarray(sh_dc, dtype=np.float32), 0.0, 1.0)


def all_finite(array: np.ndarray) -> bool:
    """True if no element is NaN or infinite (one pass, no temporary mask).

    NaN and infinities propagate through a float64 sum, which cannot overflow
    for float32 inputs, so only a non-finite sum needs a closer look.
    """
    array = np.asarray(array)
    if array.size == 0 or array.dtype.kind not in "fc":
        return True
    if array.dtype.itemsize <= 4:
        with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf is NaN: still caught
            return bool(np.isfinite(np.sum(array, dtype=np.float64)))
    return bool(np.isfinite(array).all())


def normalize_quaternions(rotations: np.ndarray) -> np.ndarray:
    """Unit quaternions (float32) of an (N, 4) array, normalised in float64; zero ones become identity."""
    rotations = np.asarray(rotations, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", rotations, rotations))[:, None]
    out = np.zeros_like(rotations)
    out[:, 0] = 1.0
    np.divide(rotations, norms, out=out, where=norms > 0)
    return out.astype(np.float32)


def _f32(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


@dataclass
class SplatCloud:
    """A set of N Gaussians in 3DGS storage convention (see module docstring)."""

    positions: np.ndarray
    scales: np.ndarray
    rotations: np.ndarray
    opacities: np.ndarray
    sh_dc: np.ndarray
    sh_rest: np.ndarray = None  # type: ignore[assignment]  # None -> (N, 0, 3)
    normals: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.positions = _f32(self.positions)
        self.scales = _f32(self.scales)
        self.rotations = _f32(self.rotations)
        self.opacities = _f32(self.opacities).reshape(-1)
        self.sh_dc = _f32(self.sh_dc)
        if self.sh_rest is None:
            self.sh_rest = np.zeros((len(self.positions), 0, 3), dtype=np.float32)
        self.sh_rest = _f32(self.sh_rest)
        if self.normals is not None:
            self.normals = _f32(self.normals)

    @classmethod
    def empty(cls, sh_degree: int = 0) -> SplatCloud:
        """Return a cloud with no Gaussians and the given SH degree."""
        k = sh_rest_count(sh_degree)
        return cls(
            positions=np.zeros((0, 3)),
            scales=np.zeros((0, 3)),
            rotations=np.zeros((0, 4)),
            opacities=np.zeros(0),
            sh_dc=np.zeros((0, 3)),
            sh_rest=np.zeros((0, k, 3)),
        )

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @property
    def sh_degree(self) -> int:
        """SH degree (0..3) implied by the number of rest coefficients."""
        return degree_for_rest_count(int(self.sh_rest.shape[1]))

    def activated_scales(self) -> np.ndarray:
        """Per-axis standard deviations, ``exp(scales)``."""
        return np.exp(self.scales)

    def alphas(self) -> np.ndarray:
        """Opacities in [0, 1], ``sigmoid(opacities)``."""
        return sigmoid(self.opacities)

    def normalized_rotations(self) -> np.ndarray:
        """Unit quaternions (w, x, y, z); zero quaternions become identity.

        Normalised in float64 so that tiny (even subnormal) quaternions stay accurate.
        """
        return normalize_quaternions(self.rotations)

    def colors_rgb(self) -> np.ndarray:
        """View-independent base colour in [0, 1], ``0.5 + SH_C0 * sh_dc``."""
        return sh_dc_to_rgb(self.sh_dc)

    def subset(self, selector: np.ndarray) -> SplatCloud:
        """Return a new cloud with the Gaussians picked by a boolean mask or index array."""
        selector = np.asarray(selector)
        if selector.dtype == bool and selector.shape != (len(self),):
            raise ValueError(f"mask has shape {selector.shape}, expected ({len(self)},)")
        return SplatCloud(
            positions=self.positions[selector],
            scales=self.scales[selector],
            rotations=self.rotations[selector],
            opacities=self.opacities[selector],
            sh_dc=self.sh_dc[selector],
            sh_rest=self.sh_rest[selector],
            normals=None if self.normals is None else self.normals[selector],
        )

    def with_sh_degree(self, degree: int) -> SplatCloud:
        """Return a copy truncated (or zero-padded) to SH `degree`."""
        k = sh_rest_count(degree)
        have = self.sh_rest.shape[1]
        rest = np.zeros((len(self), k, 3), dtype=np.float32)
        rest[:, : min(k, have)] = self.sh_rest[:, : min(k, have)]
        return SplatCloud(
            positions=self.positions.copy(),
            scales=self.scales.copy(),
            rotations=self.rotations.copy(),
            opacities=self.opacities.copy(),
            sh_dc=self.sh_dc.copy(),
            sh_rest=rest,
            normals=None if self.normals is None else self.normals.copy(),
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned (min, max) corners of the positions; raises on an empty cloud."""
        if len(self) == 0:
            raise ValueError("an empty SplatCloud has no bounds")
        return self.positions.min(axis=0), self.positions.max(axis=0)

    def validate(self) -> None:
        """Check shapes and finiteness; raise `SplatValidationError` describing the first problem."""
        n = len(self)
        self._check_shape("positions", self.positions, (n, 3))
        self._check_shape("scales", self.scales, (n, 3))
        self._check_shape("rotations", self.rotations, (n, 4))
        self._check_shape("opacities", self.opacities, (n,))
        self._check_shape("sh_dc", self.sh_dc, (n, 3))
        if self.sh_rest.ndim != 3 or self.sh_rest.shape[0] != n or self.sh_rest.shape[2] != 3:
            raise SplatValidationError(f"sh_rest has shape {self.sh_rest.shape}, expected ({n}, K, 3)")
        if self.sh_rest.shape[1] not in SH_REST_COUNTS.values():
            raise SplatValidationError(
                f"sh_rest has {self.sh_rest.shape[1]} coefficients per channel; expected 0, 3, 8 or 15 (SH degree 0..3)"
            )
        if self.normals is not None:
            self._check_shape("normals", self.normals, (n, 3))
        for name in ("positions", "scales", "rotations", "opacities", "sh_dc", "sh_rest", "normals"):
            self._check_finite(name, getattr(self, name))

    @staticmethod
    def _check_shape(name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
        if array.shape != expected:
            raise SplatValidationError(f"{name} has shape {array.shape}, expected {expected}")

    @staticmethod
    def _check_finite(name: str, array: np.ndarray | None) -> None:
        if array is None or all_finite(array):
            return
        finite = np.isfinite(array)
        bad = np.argwhere(~finite)[0]
        raise SplatValidationError(
            f"{name} holds {int((~finite).sum())} non-finite value(s), first at Gaussian {int(bad[0])}"
        )
