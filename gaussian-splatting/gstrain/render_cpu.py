"""The CPU renderer as one autograd Function: Gaussian parameters -> image, and back to their gradients.

    forward:  project_cpu._prepare (per Gaussian: projection, conic, colour, pixel box, in one pass)
              -> depth sort of the visible -> _gather_rows -> binning._bin -> raster_cpu._forward
    backward: raster_cpu._backward (per tile entry) -> project_cpu._param_grads (per Gaussian: its entries
              summed, then through the conic, projection and SH colour to its parameters, in one pass)

Autograd sees one node between the parameters (and the opacities, which stay a torch expression: sigmoid,
Gaussian dropout) and the image, so no (N, k) intermediate is built, converted or accumulated between the
stages.  The 2D means' gradient, which densification reads as `out["means2d"].grad` as with the other
backends, is written by the backward into the `means2d` tensor the render returns (values: the projected
means in pixel-index coordinates).
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from .binning import _bin
from .project_cpu import ROW, _entry_sums, _gather_rows, _param_grads, _prepare
from .raster_cpu import TILE, TILE_CHUNK, _argsort_depth, _backward, _forward, _tile_perm, parallel_chunks


def _f32(t):
    """The tensor's data as a C-contiguous float32 numpy array, without a copy when it already is one."""
    a = t.detach()
    if a.device.type != "cpu" or a.dtype != torch.float32:
        a = a.to(device="cpu", dtype=torch.float32)
    return np.ascontiguousarray(a.numpy())


class RenderCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, log_scales, quats, opacities, dc, rest, cam, deg, bg, m2d_out):
        m, ls, q, d, r = _f32(means), _f32(log_scales), _f32(quats), _f32(dc), _f32(rest)
        op = np.ascontiguousarray(_f32(opacities).reshape(-1))
        W, H = int(cam.width), int(cam.height)
        V = np.ascontiguousarray(cam.viewmat.detach().double().cpu().numpy()[:3].reshape(12))
        campos = cam.campos.detach().double().cpu().numpy()
        lim = np.array(cam.frustum_limits)
        fx, fy = float(cam.fx), float(cam.fy)
        n = m.shape[0]
        pre = np.empty((n, ROW), np.float32)  # NF features, padded to whole vectors
        box = np.empty((n, 4), np.int32)
        depth = np.empty(n, np.float32)
        radii = np.empty(n, np.int32)
        visible = np.empty(n, np.bool_)
        # the 2D means straight into the tensor the render returns when it is float32 (no copy)
        direct = m2d_out.dtype == torch.float32 and m2d_out.is_contiguous()
        m2d = m2d_out.numpy() if direct else np.empty((n, 2), np.float32)
        _prepare(m, ls, q, op, d, r, deg, V, fx, fy, float(cam.cx), float(cam.cy), W, H, lim, campos, pre, box,
                 depth, radii, visible, m2d)
        order = _argsort_depth(np.flatnonzero(visible).astype(np.int32), depth, numba.get_num_threads())
        gp, gb = _gather_rows(order, pre, box)
        tiles_x = (W + TILE - 1) // TILE
        tiles_y = (H + TILE - 1) // TILE
        # numba's static shares: handing the chunks out one at a time (dynamic scheduling) made binning 1.3-3.7x
        # slower (NOTES)
        offsets, lists, smask, koff, where = _bin(gp, gb, tiles_x, tiles_y, numba.get_num_threads())
        bgn = np.ascontiguousarray(_f32(bg).reshape(3))
        img = np.empty((3, H, W), np.float32)
        final_T = np.empty((H, W), np.float32)
        n_contrib = np.empty((H, W), np.int32)
        perm = _tile_perm(tiles_x * tiles_y)
        with parallel_chunks(TILE_CHUNK):
            _forward(gp, lists, smask, offsets, perm, W, H, tiles_x, bgn, img, final_T, n_contrib)
        if not direct:
            m2d_out.copy_(torch.from_numpy(m2d))
        ctx.state = (m, ls, q, r, deg, V, fx, fy, lim, campos, gp, lists, smask, offsets, koff, where, order, perm,
                     W, H, tiles_x, bgn, final_T, n_contrib, visible)
        ctx.m2d = m2d_out
        ctx.dtypes = (means.dtype, log_scales.dtype, quats.dtype, opacities.dtype, dc.dtype, rest.dtype)
        ctx.shape_op = opacities.shape
        rad = torch.from_numpy(radii)
        ctx.mark_non_differentiable(rad)
        return torch.from_numpy(img).to(means.dtype), rad

    @staticmethod
    def backward(ctx, grad_img, _grad_radii):
        (m, ls, q, r, deg, V, fx, fy, lim, campos, gp, lists, smask, offsets, koff, where, order, perm, W, H,
         tiles_x, bgn, final_T, n_contrib, visible) = ctx.state
        ctx.state = None
        g = np.ascontiguousarray(_f32(grad_img))
        # every entry's 9 gradients are written by its tile; rows of 16 floats, one cache line each: _entry_sums reads
        # them in another order, and a 36-byte row straddled two lines every other time
        egrad = np.empty((lists.shape[0], 16), np.float32)
        with parallel_chunks(TILE_CHUNK):
            _backward(gp, lists, smask, offsets, perm, W, H, tiles_x, bgn, final_T, n_contrib, g, egrad)
        n = m.shape[0]
        sums = _entry_sums(koff, where, egrad, order, gp, n)
        gm = np.empty((n, 3), np.float32)
        gl = np.empty((n, 3), np.float32)
        gq = np.empty((n, 4), np.float32)
        gop = np.empty(n, np.float32)
        gdc = np.empty((n, 1, 3), np.float32)
        gr = np.empty(r.shape, np.float32) if (deg + 1) ** 2 - 1 == r.shape[1] else np.zeros(r.shape, np.float32)
        g2d = np.empty((n, 2), np.float32)
        _param_grads(visible, sums, m, ls, q, r, deg, V, fx, fy, lim, campos, gm, gl, gq, gop, gdc, gr, g2d)
        ctx.m2d.grad = torch.from_numpy(g2d).to(ctx.m2d.dtype)
        dm, dl, dq, dop, ddc, dr = ctx.dtypes
        return (torch.from_numpy(gm).to(dm), torch.from_numpy(gl).to(dl), torch.from_numpy(gq).to(dq),
                torch.from_numpy(gop).reshape(ctx.shape_op).to(dop), torch.from_numpy(gdc).to(ddc),
                torch.from_numpy(gr).to(dr), None, None, None, None)


def render_cpu(means, log_scales, quats, opacities, dc, rest, cam, sh_degree, bg):
    """Image (3, H, W) of the Gaussians, the 2D means (N, 2) (their .grad is set by the backward) and the
    radii (N,) int32 (0: culled)."""
    if rest.shape[1] < (sh_degree + 1) ** 2 - 1:
        raise ValueError(f"SH degree {sh_degree} needs {(sh_degree + 1) ** 2} coefficients, got {rest.shape[1] + 1}")
    m2d = torch.empty((means.shape[0], 2), dtype=means.dtype)
    img, radii = RenderCPU.apply(means, log_scales, quats, opacities, dc, rest, cam, int(sh_degree), bg, m2d)
    return img, m2d, radii
