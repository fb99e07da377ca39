"""Rotations and pinhole cameras, written once (pure numpy): the app's formats, viewer, sample scenes and
hand edits all use these.

Conventions (those of COLMAP and the reference 3DGS trainer):

* a quaternion is (w, x, y, z), Hamilton product, and stands for the rotation of its normalised self;
  ``quaternion_to_matrix(q) @ v`` rotates ``v``;
* `Intrinsics` are pinhole pixels with the origin at the top-left corner of the image, pixel ``(i, j)``
  covering ``[i, i + 1] x [j, j + 1]``; camera space is x right, y down, z forward (depth).

(The trainer, a separate program, has its own copies; `tests/gl/_reference.py` keeps an independent one
on purpose.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# ------------------------------------------------------------------------------------------ rotations


def quaternions_to_matrices(quats: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices of (N, 4) quaternions (normalised here; a zero quaternion -> identity)."""
    q = np.asarray(quats, dtype=np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), np.array([1.0, 0, 0, 0]))
    w, x, y, z = q.T
    return _rotation(w, x, y, z, np.empty((len(q), 3, 3), dtype=np.float64))


def quaternion_to_matrix(q) -> np.ndarray:
    """The 3x3 rotation matrix of one quaternion (normalised here); `ValueError` for a zero or non-finite one
    (one quaternion is a camera's or a box's: there is no rotation to guess)."""
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q) if q.shape == (4,) else 0.0
    if not (math.isfinite(norm) and norm > 0):
        raise ValueError(f"not a rotation quaternion (w, x, y, z): {q.tolist()}")
    w, x, y, z = q / norm
    return _rotation(w, x, y, z, np.empty((3, 3), dtype=np.float64))


def _rotation(w, x, y, z, r: np.ndarray) -> np.ndarray:
    """Fill `r` (..., 3, 3) with the rotation of the unit quaternion(s) (w, x, y, z)."""
    r[..., 0, 0] = 1 - 2 * (y * y + z * z)
    r[..., 0, 1] = 2 * (x * y - w * z)
    r[..., 0, 2] = 2 * (x * z + w * y)
    r[..., 1, 0] = 2 * (x * y + w * z)
    r[..., 1, 1] = 1 - 2 * (x * x + z * z)
    r[..., 1, 2] = 2 * (y * z - w * x)
    r[..., 2, 0] = 2 * (x * z - w * y)
    r[..., 2, 1] = 2 * (y * z + w * x)
    r[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return r


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w >= 0 of a rotation matrix, the inverse of `quaternion_to_matrix`.

    Takes the eigenvector of the largest eigenvalue of Bar-Itzhack's symmetric 4x4 matrix, which is
    exact for a rotation and gives the nearest quaternion for a slightly non-orthogonal matrix.
    """
    r = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    xx, xy, xz, yx, yy, yz, zx, zy, zz = r.flat
    k = np.array(
        [
            [xx - yy - zz, yx + xy, zx + xz, zy - yz],
            [yx + xy, yy - xx - zz, zy + yz, xz - zx],
            [zx + xz, zy + yz, zz - xx - yy, yx - xy],
            [zy - yz, xz - zx, yx - xy, xx + yy + zz],
        ]
    ) / 3.0
    values, vectors = np.linalg.eigh(k)
    x, y, z, w = vectors[:, int(np.argmax(values))]
    q = np.array([w, x, y, z])
    return -q if w < 0 else q


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` of (w, x, y, z) quaternions; ``a`` (4,) or (N, 4), ``b`` (N, 4)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = (a[..., i] for i in range(4))
    bw, bx, by, bz = (b[..., i] for i in range(4))
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


# ------------------------------------------------------------------------------------- pinhole camera


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels (no distortion) for an image of `width` x `height`."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov_y(cls, width: int, height: int, fov_y_deg: float) -> Intrinsics:
        """Square pixels, centred principal point, vertical field of view `fov_y_deg` (the viewer's)."""
        fy = height / (2.0 * math.tan(math.radians(fov_y_deg) / 2.0))
        return cls(int(width), int(height), fy, fy, width / 2.0, height / 2.0)

    @classmethod
    def from_fov_x(cls, width: int, height: int, fov_x_deg: float) -> Intrinsics:
        """Square pixels, centred principal point, horizontal field of view `fov_x_deg` (a photo's)."""
        focal = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2.0)
        return cls(int(width), int(height), focal, focal, width / 2.0, height / 2.0)

    @property
    def fov_y_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.height / (2.0 * self.fy)))

    @property
    def tan_half_fov(self) -> tuple[float, float]:
        """``tan`` of the half field of view in x and y (as the 3DGS rasteriser defines it)."""
        return self.width / (2.0 * self.fx), self.height / (2.0 * self.fy)

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 calibration matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera for a viewport of another size, its whole picture in view: scaled by the smaller
        of the two size ratios (a viewport narrower than the photo shows more above and below it, as one
        beside the photo in the compare view), the principal point kept relative to the centre; x focal
        follows the pixel aspect ratio fx/fy."""
        s = min(height / self.height, width / self.width)
        fy = self.fy * s
        return Intrinsics(
            int(width), int(height), fy * self.fx / self.fy, fy,
            width / 2.0 + (self.cx - self.width / 2.0) * s, height / 2.0 + (self.cy - self.height / 2.0) * s,
        )  # fmt: skip

    def to_dict(self) -> dict:
        """JSON-friendly description (COLMAP ``PINHOLE`` model)."""
        return {"model": "PINHOLE", "width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy,
                "cx": self.cx, "cy": self.cy}
