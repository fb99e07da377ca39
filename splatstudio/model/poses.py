"""Compare estimated camera poses with ground truth up to a similarity transform.

Poses use the COLMAP convention: ``x_cam = R @ x_world + t`` (world-to-camera),
camera centre ``C = -R^T t``.  Structure-from-motion recovers a scene only up
to scale, rotation and translation, so the estimate is first aligned to the
ground truth with the similarity that best maps the estimated camera centres
onto the true ones (Umeyama 1991), then compared image by image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["PoseErrors", "Pose", "pose_errors", "rotation_angle_deg", "umeyama"]

Pose = tuple[np.ndarray, np.ndarray]
"""A world-to-camera pose ``(R (3x3), t (3,))``."""


def umeyama(src_pts: np.ndarray, dst_pts: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``(s, R, t)`` with ``dst ≈ s * R @ src + t``.

    ``src_pts`` and ``dst_pts`` are corresponding (N, 3) points; ``R`` is a proper
    rotation.  With ``with_scale=False`` the scale is fixed to 1 (rigid motion).
    Raises ``ValueError`` for fewer than three points or (nearly) collinear ones.
    """
    src = np.asarray(src_pts, dtype=float)
    dst = np.asarray(dst_pts, dtype=float)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError("src_pts and dst_pts must both have shape (N, 3)")
    if len(src) < 3:
        raise ValueError("at least three point pairs are needed")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_singular = np.linalg.svd(src_c, compute_uv=False)
    if src_singular[1] <= 1e-9 * max(src_singular[0], 1e-300):
        raise ValueError("the points are collinear; the alignment is not unique")
    u, sigma, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0.0:
        sign[2] = -1.0
    rotation = u @ np.diag(sign) @ vt
    src_variance = np.mean(np.sum(src_c**2, axis=1))
    scale = float(np.dot(sigma, sign) / src_variance) if with_scale else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return scale, rotation, translation


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle in degrees of a rotation matrix (its geodesic distance to the identity).

    Uses ``atan2(sin, cos)`` so that tiny angles keep full precision.
    """
    rotation = np.asarray(rotation, dtype=float)
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]])
    sine = np.linalg.norm(axis) / 2.0
    cosine = (np.trace(rotation) - 1.0) / 2.0
    return float(np.degrees(np.arctan2(sine, cosine)))


def _center(pose: Pose) -> np.ndarray:
    rotation, translation = pose
    return -np.asarray(rotation, dtype=float).T @ np.asarray(translation, dtype=float)


@dataclass(frozen=True)
class PoseErrors:
    """Per-image errors of aligned estimated poses against ground truth.

    ``rotation_errors_deg[i]`` and ``position_errors[i]`` belong to
    ``matched[i]``.  Position errors are relative to the size of the true camera
    set: divided by the mean distance of the true centres from their centroid.
    """

    matched: tuple[str, ...]
    missing: tuple[str, ...]
    rotation_errors_deg: np.ndarray
    position_errors: np.ndarray
    scale: float
    """Scale of the estimate-to-ground-truth similarity."""

    @property
    def median_rotation_deg(self) -> float:
        return float(np.median(self.rotation_errors_deg))

    @property
    def max_rotation_deg(self) -> float:
        return float(np.max(self.rotation_errors_deg))

    @property
    def median_position(self) -> float:
        return float(np.median(self.position_errors))

    @property
    def max_position(self) -> float:
        return float(np.max(self.position_errors))

    def summary(self) -> str:
        """One line for logs and test messages."""
        return (
            f"{len(self.matched)}/{len(self.matched) + len(self.missing)} matched; rotation median "
            f"{self.median_rotation_deg:.3f} max {self.max_rotation_deg:.3f} deg; position median "
            f"{self.median_position:.4f} max {self.max_position:.4f} (relative)"
        )


def pose_errors(est: Mapping[str, Pose], gt: Mapping[str, Pose]) -> PoseErrors:
    """Align ``est`` to ``gt`` by a similarity fitted to camera centres, then measure errors.

    Both map image names to world-to-camera poses ``(R, t)``.  Images present in
    both are compared; ``gt`` images absent from ``est`` are listed in
    ``missing``.  Needs at least three matched, non-collinear camera centres.
    """
    matched = tuple(name for name in gt if name in est)
    missing = tuple(name for name in gt if name not in est)
    est_centers = np.array([_center(est[name]) for name in matched]).reshape(-1, 3)
    gt_centers = np.array([_center(gt[name]) for name in matched]).reshape(-1, 3)
    scale, rotation, translation = umeyama(est_centers, gt_centers)
    aligned_centers = scale * est_centers @ rotation.T + translation
    gt_size = np.mean(np.linalg.norm(gt_centers - gt_centers.mean(axis=0), axis=1))
    position = np.linalg.norm(aligned_centers - gt_centers, axis=1) / gt_size
    angles = np.array(
        [rotation_angle_deg(np.asarray(est[name][0]) @ rotation.T @ np.asarray(gt[name][0]).T) for name in matched]
    )
    return PoseErrors(matched, missing, angles, position, scale)
