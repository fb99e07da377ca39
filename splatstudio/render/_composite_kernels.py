"""numba kernels of `splatstudio.render.composite` (imported only when numba is installed).

Cached to ``__pycache__`` next to this file (``cache=True``); a frozen build without writable
sources compiles them on first use instead. All kernels release the GIL.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

TILE = 16
ALPHA_MIN = np.float32(1.0 / 255.0)
ALPHA_MAX = np.float32(0.99)
T_MIN = np.float32(1e-4)
NF = 10  # per splat: centre x, y, conic a, b, c, opacity, r, g, b, cut k^2


@njit(parallel=True, fastmath=True, nogil=True, cache=True)
def project(positions, cov6, colors, view, fx, fy, cx, cy, limx, limy, near, width, height, data, box):
    """Per splat g: data[g] = projected centre (pixels, y down), conic, opacity, colour, k^2;
    box[g] = inclusive pixel range x0, x1, y0, y1 of the pixel centres it can reach (x0 > x1: none).

    Same maths as splat.vert.glsl: EWA Jacobian clamped at 1.3x the field of view, 0.3 px low-pass,
    kept region d^T conic d <= k^2 = min(9, 2 ln(255 min(opacity, 0.99))).

    Long on purpose: the loop body is the shader's straight-line scalar maths (Jacobian, T = J W,
    Σ' = T Σ Tᵀ, conic, bounds) kept in one piece, so it reads beside splat.vert.glsl line for line
    and numba keeps every intermediate in registers; helpers returning tuples of scalars would only
    scatter it.
    """
    n = positions.shape[0]
    for g in prange(n):
        box[g, 0] = 1
        box[g, 1] = 0
        o = colors[g, 3]
        if o < 1.0 / 255.0:
            continue
        px = positions[g, 0]
        py = positions[g, 1]
        pz = positions[g, 2]
        tx = view[0, 0] * px + view[0, 1] * py + view[0, 2] * pz + view[0, 3]
        ty = view[1, 0] * px + view[1, 1] * py + view[1, 2] * pz + view[1, 3]
        tz = view[2, 0] * px + view[2, 1] * py + view[2, 2] * pz + view[2, 3]
        if tz <= near:
            continue
        txtz = min(max(tx / tz, -limx), limx)
        tytz = min(max(ty / tz, -limy), limy)
        j00 = fx / tz
        j02 = -fx * txtz / tz
        j11 = fy / tz
        j12 = -fy * tytz / tz
        t00 = j00 * view[0, 0] + j02 * view[2, 0]
        t01 = j00 * view[0, 1] + j02 * view[2, 1]
        t02 = j00 * view[0, 2] + j02 * view[2, 2]
        t10 = j11 * view[1, 0] + j12 * view[2, 0]
        t11 = j11 * view[1, 1] + j12 * view[2, 1]
        t12 = j11 * view[1, 2] + j12 * view[2, 2]
        sxx = cov6[g, 0]
        sxy = cov6[g, 1]
        sxz = cov6[g, 2]
        syy = cov6[g, 3]
        syz = cov6[g, 4]
        szz = cov6[g, 5]
        u0 = sxx * t00 + sxy * t01 + sxz * t02
        u1 = sxy * t00 + syy * t01 + syz * t02
        u2 = sxz * t00 + syz * t01 + szz * t02
        v0 = sxx * t10 + sxy * t11 + sxz * t12
        v1 = sxy * t10 + syy * t11 + syz * t12
        v2 = sxz * t10 + syz * t11 + szz * t12
        a = t00 * u0 + t01 * u1 + t02 * u2 + 0.3
        b = t00 * v0 + t01 * v1 + t02 * v2
        c = t10 * v0 + t11 * v1 + t12 * v2 + 0.3
        det = a * c - b * b
        if det <= 0.0:
            continue
        kk = min(9.0, 2.0 * math.log(255.0 * min(o, 0.99)))
        if kk <= 0.0:
            continue
        ux = fx * tx / tz + cx
        uy = fy * ty / tz + cy
        hx = math.sqrt(kk * a) * 1.0001 + 1e-3
        hy = math.sqrt(kk * c) * 1.0001 + 1e-3
        if not (abs(ux) < 1e7 and abs(uy) < 1e7):
            continue
        x0 = max(0, int(math.ceil(ux - hx - 0.5)))
        x1 = min(width - 1, int(math.floor(ux + hx - 0.5)))
        y0 = max(0, int(math.ceil(uy - hy - 0.5)))
        y1 = min(height - 1, int(math.floor(uy + hy - 0.5)))
        if x0 > x1 or y0 > y1:
            continue
        box[g, 0] = x0
        box[g, 1] = x1
        box[g, 2] = y0
        box[g, 3] = y1
        data[g, 0] = ux
        data[g, 1] = uy
        data[g, 2] = c / det
        data[g, 3] = -b / det
        data[g, 4] = a / det
        data[g, 5] = o
        data[g, 6] = colors[g, 0]
        data[g, 7] = colors[g, 1]
        data[g, 8] = colors[g, 2]
        data[g, 9] = kk


@njit(parallel=True, nogil=True, cache=True)
def gather(data, box, order, data_out, box_out):
    """Rows of `data` and `box` in draw order (front to back), for streaming access later."""
    for i in prange(order.shape[0]):
        g = order[i]
        for j in range(NF):
            data_out[i, j] = data[g, j]
        for j in range(4):
            box_out[i, j] = box[g, j]


@njit(nogil=True, cache=True)
def bin_tiles(box, tiles_x, tiles_y):
    """Per TILE x TILE tile, the splats (rows of `box`, already front to back) touching it:
    a counting sort, so each tile's list keeps the depth order."""
    n = box.shape[0]
    ntiles = tiles_x * tiles_y
    offsets = np.zeros(ntiles + 1, np.int64)
    for k in range(n):
        if box[k, 0] > box[k, 1]:
            continue
        for ty in range(box[k, 2] // TILE, box[k, 3] // TILE + 1):
            for tx in range(box[k, 0] // TILE, box[k, 1] // TILE + 1):
                offsets[ty * tiles_x + tx + 1] += 1
    for t in range(ntiles):
        offsets[t + 1] += offsets[t]
    fill = offsets[:-1].copy()
    lists = np.empty(offsets[ntiles], np.int32)
    for k in range(n):
        if box[k, 0] > box[k, 1]:
            continue
        for ty in range(box[k, 2] // TILE, box[k, 3] // TILE + 1):
            for tx in range(box[k, 0] // TILE, box[k, 1] // TILE + 1):
                t = ty * tiles_x + tx
                lists[fill[t]] = k
                fill[t] += 1
    return offsets, lists


@njit(inline="always", fastmath=True)
def _exp(x):
    """exp(x) for x in [-8, 0]: Taylor series of x/16, then 4 squarings (relative error < 2e-6)."""
    y = x * np.float32(0.0625)
    p = np.float32(1.0 / 40320.0)
    p = p * y + np.float32(1.0 / 5040.0)
    p = p * y + np.float32(1.0 / 720.0)
    p = p * y + np.float32(1.0 / 120.0)
    p = p * y + np.float32(1.0 / 24.0)
    p = p * y + np.float32(1.0 / 6.0)
    p = p * y + np.float32(0.5)
    p = p * y + np.float32(1.0)
    p = p * y + np.float32(1.0)
    p = p * p
    p = p * p
    p = p * p
    return p * p


@njit(parallel=True, fastmath=True, nogil=True, cache=True)
def composite(data, box, offsets, lists, tiles_x, width, height, image):
    """Front-to-back compositing per tile (prange), into premultiplied RGBA `image` (H, W, 4) uint8.

    Per pixel centre: alpha = min(0.99, opacity exp(-1/2 d^T conic d)), skipped beyond the cut
    (3 sigma, or where alpha < 1/255); colour += alpha T c, T *= 1 - alpha, stopping before T would
    fall below 1e-4 (as the reference rasteriser). Equals back-to-front blending of the same
    splats, in float instead of 8-bit steps.

    Long on purpose: the tile's transmittance and colour buffers, the early stop once every pixel
    is done and the row-span and vectorised alpha loops share their locals within one prange
    iteration; split into functions they would pass (TILE, TILE) arrays and a dozen scalars around
    per splat in the hottest loop of the viewer.
    """
    ntiles = offsets.shape[0] - 1
    for t in prange(ntiles):
        ty = t // tiles_x
        tx = t - ty * tiles_x
        X0 = tx * TILE
        Y0 = ty * TILE
        X1 = min(width, X0 + TILE) - 1
        Y1 = min(height, Y0 + TILE) - 1
        trans = np.ones((TILE, TILE), np.float32)
        color = np.zeros((TILE, TILE, 3), np.float32)
        abuf = np.empty(TILE, np.float32)
        npx = (X1 - X0 + 1) * (Y1 - Y0 + 1)
        ndone = 0
        for e in range(offsets[t], offsets[t + 1]):
            k = lists[e]
            x0 = max(box[k, 0], X0)
            x1 = min(box[k, 1], X1)
            y0 = max(box[k, 2], Y0)
            y1 = min(box[k, 3], Y1)
            ux = data[k, 0]
            uy = data[k, 1]
            ca = data[k, 2]
            cb = data[k, 3]
            cc = data[k, 4]
            o = data[k, 5]
            r = data[k, 6]
            g = data[k, 7]
            bl = data[k, 8]
            kk = data[k, 9]
            pmin = np.float32(-0.5) * kk
            for py in range(y0, y1 + 1):
                dy = np.float32(py) + np.float32(0.5) - uy
                # columns where ca dx^2 + 2 cb dx dy + cc dy^2 <= kk
                bdy = cb * dy
                disc = bdy * bdy - ca * (cc * dy * dy - kk)
                if disc < 0:
                    continue
                sq = math.sqrt(disc)
                xa = max(x0, int(math.ceil(ux + (-bdy - sq) / ca - np.float32(0.5) - np.float32(1e-3))))
                xb = min(x1, int(math.floor(ux + (-bdy + sq) / ca - np.float32(0.5) + np.float32(1e-3))))
                n = xb - xa + 1
                if n <= 0:
                    continue
                cdy = np.float32(-0.5) * cc * dy * dy
                dx0 = np.float32(xa) + np.float32(0.5) - ux
                for q in range(n):  # branch-free: vectorised
                    dx = dx0 + np.float32(q)
                    p = np.float32(-0.5) * ca * dx * dx - bdy * dx + cdy
                    al = min(ALPHA_MAX, o * _exp(max(p, np.float32(-8.0))))
                    abuf[q] = al if (p >= pmin and al >= ALPHA_MIN) else np.float32(0.0)
                ly = py - Y0
                for q in range(n):
                    al = abuf[q]
                    if al == np.float32(0.0):
                        continue
                    lx = xa - X0 + q
                    tj = trans[ly, lx]
                    if tj <= np.float32(0.0):  # done (its transmittance kept, negated)
                        continue
                    test = tj * (np.float32(1.0) - al)
                    if test < T_MIN:
                        trans[ly, lx] = -tj
                        ndone += 1
                        continue
                    w = al * tj
                    color[ly, lx, 0] += r * w
                    color[ly, lx, 1] += g * w
                    color[ly, lx, 2] += bl * w
                    trans[ly, lx] = test
            if ndone >= npx:
                break
        for py in range(Y0, Y1 + 1):
            for px in range(X0, X1 + 1):
                ly = py - Y0
                lx = px - X0
                image[py, px, 0] = np.uint8(
                    min(np.float32(255.0), color[ly, lx, 0] * np.float32(255.0) + np.float32(0.5))
                )
                image[py, px, 1] = np.uint8(
                    min(np.float32(255.0), color[ly, lx, 1] * np.float32(255.0) + np.float32(0.5))
                )
                image[py, px, 2] = np.uint8(
                    min(np.float32(255.0), color[ly, lx, 2] * np.float32(255.0) + np.float32(0.5))
                )
                alpha = np.float32(1.0) - abs(trans[ly, lx])
                image[py, px, 3] = np.uint8(min(np.float32(255.0), alpha * np.float32(255.0) + np.float32(0.5)))


@njit(parallel=True, fastmath=True, nogil=True, cache=True)
def sh_colors(positions, sh_dc, sh_rest, eye, degree, alphas, out):
    """out[g] = (clamp(SH(d) + 0.5, 0, 1) per channel, alpha) for the unit direction d from `eye`
    to splat g: `splatstudio.render.sh.sh_to_rgb` (the reference basis and order), fused."""
    n = positions.shape[0]
    c0 = np.float32(0.28209479177387814)
    c1 = np.float32(0.4886025119029199)
    for g in prange(n):
        dx = positions[g, 0] - eye[0]
        dy = positions[g, 1] - eye[1]
        dz = positions[g, 2] - eye[2]
        norm = math.sqrt(dx * dx + dy * dy + dz * dz)
        if norm < 1e-12:
            x, y, z = np.float32(0.0), np.float32(0.0), np.float32(1.0)
        else:
            x, y, z = dx / norm, dy / norm, dz / norm
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        for c in range(3):
            v = c0 * sh_dc[g, c]
            if degree > 0:
                v += c1 * (-y * sh_rest[g, 0, c] + z * sh_rest[g, 1, c] - x * sh_rest[g, 2, c])
            if degree > 1:
                v += (
                    1.0925484305920792 * xy * sh_rest[g, 3, c]
                    - 1.0925484305920792 * yz * sh_rest[g, 4, c]
                    + 0.31539156525252005 * (2.0 * zz - xx - yy) * sh_rest[g, 5, c]
                    - 1.0925484305920792 * xz * sh_rest[g, 6, c]
                    + 0.5462742152960396 * (xx - yy) * sh_rest[g, 7, c]
                )
            if degree > 2:
                v += (
                    -0.5900435899266435 * y * (3.0 * xx - yy) * sh_rest[g, 8, c]
                    + 2.890611442640554 * xy * z * sh_rest[g, 9, c]
                    - 0.4570457994644658 * y * (4.0 * zz - xx - yy) * sh_rest[g, 10, c]
                    + 0.3731763325901154 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * sh_rest[g, 11, c]
                    - 0.4570457994644658 * x * (4.0 * zz - xx - yy) * sh_rest[g, 12, c]
                    + 1.445305721320277 * z * (xx - yy) * sh_rest[g, 13, c]
                    - 0.5900435899266435 * x * (xx - 3.0 * yy) * sh_rest[g, 14, c]
                )
            out[g, c] = min(max(v + 0.5, 0.0), 1.0)
        out[g, 3] = alphas[g]
