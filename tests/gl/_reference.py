"""A slow, pure-numpy EWA splat rasteriser: the reference the GL viewer is compared with.

Written independently of the viewer, after the reference 3DGS forward pass:

* project the means with the pinhole camera (OpenCV axes: x right, y down, z forward);
* 3D covariance ``R S Sᵀ Rᵀ`` from log scales and w-first quaternions; 2D covariance
  ``J W Σ Wᵀ Jᵀ`` with the Jacobian clamped at 1.3x the field of view, plus 0.3 px
  on the diagonal (low-pass); its inverse is the conic;
* per pixel centre, ``alpha = min(0.99, opacity * exp(-1/2 dᵀ Σ⁻¹ d))``, skipped when
  below 1/255 or outside the 3-sigma ellipse (``dᵀ Σ⁻¹ d > 9``);
* front-to-back compositing in view-depth order over a background colour;
* colour from SH degree 0..3 with the 3DGS constants, ``max(SH + 0.5, 0)``.
"""

from __future__ import annotations

import numpy as np

from splatstudio.model.splatcloud import SplatCloud

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396]
C3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435]  # fmt: skip


def sh_color(sh: np.ndarray, direction: np.ndarray, degree: int) -> np.ndarray:
    """One splat's colour from its (16, 3) coefficients seen along the unit `direction`."""
    x, y, z = direction
    result = C0 * sh[0]
    if degree > 0:
        result = result - C1 * y * sh[1] + C1 * z * sh[2] - C1 * x * sh[3]
    if degree > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        result = (result + C2[0] * xy * sh[4] + C2[1] * yz * sh[5] + C2[2] * (2 * zz - xx - yy) * sh[6]
                  + C2[3] * xz * sh[7] + C2[4] * (xx - yy) * sh[8])  # fmt: skip
    if degree > 2:
        result = (result + C3[0] * y * (3 * xx - yy) * sh[9] + C3[1] * xy * z * sh[10]
                  + C3[2] * y * (4 * zz - xx - yy) * sh[11] + C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[12]
                  + C3[4] * x * (4 * zz - xx - yy) * sh[13] + C3[5] * z * (xx - yy) * sh[14]
                  + C3[6] * x * (xx - 3 * yy) * sh[15])  # fmt: skip
    return np.maximum(result + 0.5, 0.0)


def quat_to_rot(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def render_reference(
    cloud: SplatCloud,
    R: np.ndarray,
    t: np.ndarray,
    width: int,
    height: int,
    fx: float,
    fy: float,
    cx: float | None = None,
    cy: float | None = None,
    sh_degree: int = 3,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    near: float = 0.01,
) -> np.ndarray:
    """Render `cloud` seen by world-to-camera (`R`, `t`): (H, W, 3) float64 in [0, 1]."""
    cx = width / 2.0 if cx is None else cx
    cy = height / 2.0 if cy is None else cy
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    eye = -R.T @ t
    degree = min(sh_degree, cloud.sh_degree)
    tanx, tany = width / (2 * fx), height / (2 * fy)
    ys, xs = np.mgrid[0:height, 0:width]
    px, py = xs + 0.5, ys + 0.5  # pixel centres
    color = np.zeros((height, width, 3))
    transmittance = np.ones((height, width))
    splats = []
    for i in range(len(cloud)):
        p = cloud.positions[i].astype(np.float64)
        cam = R @ p + t
        if cam[2] <= near:
            continue
        splats.append((cam[2], i, cam))
    splats.sort(key=lambda s: s[0])  # front to back
    for _, i, cam in splats:
        s = np.exp(cloud.scales[i].astype(np.float64))
        m = quat_to_rot(cloud.rotations[i].astype(np.float64)) @ np.diag(s)
        sigma = m @ m.T
        z = cam[2]
        txtz = np.clip(cam[0] / z, -1.3 * tanx, 1.3 * tanx)
        tytz = np.clip(cam[1] / z, -1.3 * tany, 1.3 * tany)
        J = np.array([[fx / z, 0, -fx * txtz / z], [0, fy / z, -fy * tytz / z]])
        cov2 = J @ R @ sigma @ R.T @ J.T + 0.3 * np.eye(2)
        conic = np.linalg.inv(cov2)
        u = fx * cam[0] / z + cx
        v = fy * cam[1] / z + cy
        dx, dy = px - u, py - v
        maha = conic[0, 0] * dx * dx + 2 * conic[0, 1] * dx * dy + conic[1, 1] * dy * dy
        opacity = 1.0 / (1.0 + np.exp(-float(cloud.opacities[i])))
        alpha = np.minimum(0.99, opacity * np.exp(-0.5 * maha))
        alpha[(maha > 9.0) | (alpha < 1.0 / 255.0)] = 0.0
        sh = np.concatenate([cloud.sh_dc[i][None], cloud.sh_rest[i]], axis=0).astype(np.float64)
        direction = (cloud.positions[i] - eye) / np.linalg.norm(cloud.positions[i] - eye)
        rgb = sh_color(sh, direction, degree)
        weight = alpha * transmittance
        color += weight[..., None] * rgb
        transmittance *= 1.0 - alpha
    color += transmittance[..., None] * np.asarray(background, dtype=np.float64)
    return np.clip(color, 0.0, 1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1] (uint8 images are scaled by 1/255)."""
    a = a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else 1.0)
    b = b.astype(np.float64) / (255.0 if b.dtype == np.uint8 else 1.0)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
