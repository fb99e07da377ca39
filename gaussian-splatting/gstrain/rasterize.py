"""Backend-agnostic rendering entry point.

The preprocessing step (projection, EWA covariance, conic, screen radius, SH -> RGB) is vectorised
PyTorch shared by the `reference` and `cpu` backends (autograd differentiates it); the compositing
step is either the dense pure-PyTorch reference (raster_ref) or the tile-based numba kernels
(raster_cpu).  The `cuda` backend delegates everything to gsplat (raster_cuda).

Pixel convention: pixel (i, j) has its centre at image coordinate (i + 0.5, j + 0.5) as in COLMAP,
so a projected mean u = fx * x / z + cx maps to the pixel-index frame as u - 0.5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .sh import eval_sh

NEAR_PLANE = 0.2
LOWPASS = 0.3
TILE = 16  # the CPU rasteriser's tile side (raster_cpu.TILE)


@dataclass
class RenderCamera:
    viewmat: torch.Tensor  # (4, 4) world -> camera
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def campos(self):
        R = self.viewmat[:3, :3]
        t = self.viewmat[:3, 3]
        return -R.T @ t

    @property
    def frustum_limits(self):
        """The EWA Jacobian's clamp of x/z and y/z (the reference's 1.3x the field of view): (x lo, x hi, y lo,
        y hi)."""
        return (-1.3 * (self.cx / self.fx), 1.3 * ((self.width - self.cx) / self.fx), -1.3 * (self.cy / self.fy),
                1.3 * ((self.height - self.cy) / self.fy))

    def to(self, dtype=None, device=None):
        return RenderCamera(self.viewmat.to(dtype=dtype, device=device), self.fx, self.fy, self.cx, self.cy,
                            self.width, self.height)


def quat_to_rotmat(q):
    """q: (N, 4) (w, x, y, z), normalised inside -> (N, 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    R = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=-1)
    return R.reshape(-1, 3, 3)


def preprocess(means, log_scales, quats, opacity_logits, sh, cam: RenderCamera, sh_degree: int, opacity_scale=None):
    """Project all N Gaussians (vectorised, differentiable).

    sh: (N, K, 3).
    Returns means2d (N, 2) pixel-index coordinates, conics (N, 3) (a, b, c) of the inverse 2D covariance
    (power = -0.5 (a dx^2 + c dy^2) - b dx dy), colors (N, 3), opacities (N,), depths (N,), radii (N,) int32
    (3-sigma, integer pixels; 0 = culled: behind the near plane or off screen) and idx = indices with radii > 0.
    Culled Gaussians get finite placeholder values so that no NaN/inf can leak into gradients.
    """
    W, H = cam.width, cam.height
    R = cam.viewmat[:3, :3]
    t = cam.viewmat[:3, 3]
    p_view = means @ R.T + t
    x, y, z = p_view.unbind(-1)
    with torch.no_grad():
        in_front = z > NEAR_PLANE
    z = torch.where(in_front, z, torch.ones_like(z))
    # EWA Jacobian with the reference's 1.3x frustum clamp
    limx_lo, limx_hi, limy_lo, limy_hi = cam.frustum_limits
    inv_z = 1.0 / z
    txtz = (x * inv_z).clamp(limx_lo, limx_hi)
    tytz = (y * inv_z).clamp(limy_lo, limy_hi)
    zero = torch.zeros_like(z)
    J = torch.stack([
        cam.fx * inv_z, zero, -cam.fx * txtz * inv_z,
        zero, cam.fy * inv_z, -cam.fy * tytz * inv_z], dim=-1).reshape(-1, 2, 3)
    Rq = quat_to_rotmat(quats)
    s = torch.exp(log_scales)
    M = Rq * s[:, None, :]  # R diag(s)
    T = J @ R[None]  # (N, 2, 3)
    TM = T @ M  # (N, 2, 3); cov2d = TM TM^T
    a = (TM[:, 0] * TM[:, 0]).sum(-1) + LOWPASS
    b = (TM[:, 0] * TM[:, 1]).sum(-1)
    c = (TM[:, 1] * TM[:, 1]).sum(-1) + LOWPASS
    det = a * c - b * b
    u = cam.fx * x * inv_z + cam.cx - 0.5
    v = cam.fy * y * inv_z + cam.cy - 0.5
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam1 = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.1))
        radii = torch.ceil(3.0 * torch.sqrt(lam1))
        ok = in_front & (det > 0) & (u + radii >= 0) & (u - radii <= W - 1) & (v + radii >= 0) & (v - radii <= H - 1)
        ok &= torch.isfinite(u) & torch.isfinite(v) & torch.isfinite(radii)
        radii = torch.where(ok, radii, torch.zeros_like(radii)).to(torch.int32)
        idx = torch.nonzero(ok).squeeze(1)
    det = torch.where(ok, det, torch.ones_like(det))
    inv_det = 1.0 / det
    conics = torch.stack([c * inv_det, -b * inv_det, a * inv_det], dim=-1)
    means2d = torch.stack([u, v], dim=-1)
    colors, opac = _colors_opacities(means, opacity_logits, sh, cam, sh_degree, opacity_scale)
    return dict(means2d=means2d, conics=conics, colors=colors, opacities=opac, depths=z.detach(), radii=radii,
                idx=idx)


def _opacities(opacity_logits, scale=None):
    """sigmoid(logits), times a per-Gaussian factor (Gaussian dropout) capped at 0.999 when one is given."""
    opac = torch.sigmoid(opacity_logits).reshape(-1)
    return opac if scale is None else torch.clamp(opac * scale, max=0.999)


def _colors_opacities(means, opacity_logits, sh, cam, sh_degree, opacity_scale=None):
    if sh_degree > 0:
        dirs = means - cam.campos.to(means.dtype)
        dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        colors = eval_sh(sh_degree, sh, dirs)
    else:
        colors = eval_sh(0, sh, None)
    colors = torch.clamp_min(colors + 0.5, 0.0)
    return colors, _opacities(opacity_logits, opacity_scale)


def render(gaussians, cam: RenderCamera, bg, backend="cpu", sh_degree=None, tile_size=16, opacity_scale=None):
    """gaussians: object with means, log_scales, quats, opacity_logits, sh (N, K, 3) tensors.
    opacity_scale: optional (N,) factor on the opacities (capped at 0.999), 0 leaves a Gaussian out.

    Returns dict(image (3,H,W), means2d (N, 2) with retained grad, idx (visible indices), radii (N,) and
    grad_scale (pixel -> NDC factor for the densification statistic))."""
    if sh_degree is None:
        sh_degree = int(round(math.sqrt(gaussians.sh.shape[1]))) - 1
    if backend == "cuda":
        from .raster_cuda import render_gsplat
        return render_gsplat(gaussians, cam, bg, sh_degree, opacity_scale)
    if backend == "cpu":  # one numba pass each way (render_cpu): projection, colour, rasteriser
        from .render_cpu import render_cpu
        if tile_size != TILE:
            raise ValueError(f"the CPU rasteriser works on {TILE}x{TILE} tiles, not {tile_size}")
        if hasattr(gaussians, "f_dc"):  # the model's two SH tensors, read in place
            dc, rest = gaussians.f_dc, gaussians.f_rest
        else:
            dc, rest = gaussians.sh[:, :1], gaussians.sh[:, 1:]
        opac = _opacities(gaussians.opacity_logits, opacity_scale)
        img, means2d, radii = render_cpu(gaussians.means, gaussians.log_scales, gaussians.quats, opac, dc, rest, cam,
                                         sh_degree, bg)
        idx = torch.from_numpy(np.flatnonzero(radii.numpy() > 0))  # faster than torch.nonzero here (NOTES)
        return dict(image=img, means2d=means2d, idx=idx, radii=radii,
                    grad_scale=(cam.width / 2.0, cam.height / 2.0))
    sh = gaussians.sh
    K = (sh_degree + 1) ** 2
    if sh.shape[1] > K:
        sh = sh[:, :K]
    p = preprocess(gaussians.means, gaussians.log_scales, gaussians.quats, gaussians.opacity_logits, sh, cam,
                   sh_degree, opacity_scale=opacity_scale)
    if p["means2d"].requires_grad:
        p["means2d"].retain_grad()
    if backend == "reference":
        from .raster_ref import rasterize_reference
        img = rasterize_reference(p["means2d"], p["conics"], p["colors"], p["opacities"], p["depths"], p["radii"],
                                  cam.width, cam.height, bg)
    else:
        raise ValueError(f"unknown backend {backend}")
    return dict(image=img, means2d=p["means2d"], idx=p["idx"], radii=p["radii"],
                grad_scale=(cam.width / 2.0, cam.height / 2.0))
