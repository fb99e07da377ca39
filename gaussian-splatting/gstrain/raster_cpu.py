"""Tile-based CPU compositing (forward + backward) compiled with numba.

Pipeline per render:
  1. bin:      Gaussians (already depth-sorted, front to back) are appended to every 16x16 tile their
               3-sigma square touches (counting sort -> per-tile lists stay depth-ordered).
  2. pack:     per list entry, the Gaussian's 2D data is gathered into a contiguous (E, 12) array so the
               per-tile loops stream through memory.
  3. forward:  prange over tiles; Gaussian-outer / pixel-inner: each entry visits only the pixels of its
               extent box, row by row restricted to the exact span where alpha >= 1/255 is possible; the
               row's alphas are computed in a branch-free (vectorisable) pass, then composited front to
               back per pixel with early stop (per-pixel T, colour, last contributor, done flag).
  4. backward: prange over tiles; the same traversal back to front from each pixel's last contributor,
               tracking T and S = sum of (c.dL/dC) alpha T of the farther Gaussians per pixel, writing
               gradients into the *entry* slots (each entry belongs to exactly one tile, hence to one
               thread -> no write races, deterministic), then a serial reduction sums entries per Gaussian.
The autograd.Function returns d/d(means2d, conics, colors, opacities); torch autograd handles the
projection / covariance / SH part (rasterize.preprocess).
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
_FM = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}
NF = 12  # packed features per entry: mx my a b c opacity hx hy r g b log-threshold


@njit(cache=True)
def _extents(means2d, conics, opac, radii, W, H):
    """Per-Gaussian half extents (hx, hy) of the region where it can reach alpha >= 1/255.

    It is the intersection of the reference's 3-sigma square (|d| <= radius) and the bounding box of
    the ellipse op * exp(-0.5 d^T Q d) >= 1/255; pixels outside cannot pass the alpha test, so
    restricting work to it changes nothing but the amount of work.  hx < 0 means invisible.
    """
    n = means2d.shape[0]
    ext = np.empty((n, 2), np.float32)
    for g in range(n):
        r = radii[g]
        o = opac[g]
        a = conics[g, 0]
        b = conics[g, 1]
        c = conics[g, 2]
        det = a * c - b * b
        if r <= 0 or o * 255.0 < 1.0 or det <= 0:
            ext[g, 0] = -1.0
            ext[g, 1] = -1.0
            continue
        t = 2.0 * math.log(o * 255.0)
        hx = math.sqrt(t * c / det) * 1.0001 + 1e-3
        hy = math.sqrt(t * a / det) * 1.0001 + 1e-3
        ext[g, 0] = min(hx, r)
        ext[g, 1] = min(hy, r)
    return ext


@njit(cache=True)
def _bin(order, means2d, ext, W, H, TS, tiles_x, tiles_y):
    ntiles = tiles_x * tiles_y
    n = order.shape[0]
    rect = np.empty((n, 4), np.int32)
    counts = np.zeros(ntiles + 1, np.int64)
    for k in range(n):
        g = order[k]
        hx = ext[g, 0]
        hy = ext[g, 1]
        rect[k, 0] = 1
        rect[k, 1] = 0
        if hx < 0:
            continue
        u = means2d[g, 0]
        v = means2d[g, 1]
        if not (abs(u) < 1e7 and abs(v) < 1e7):
            continue
        x0 = max(0, int(math.ceil(u - hx)))
        x1 = min(W - 1, int(math.floor(u + hx)))
        y0 = max(0, int(math.ceil(v - hy)))
        y1 = min(H - 1, int(math.floor(v + hy)))
        if x0 > x1 or y0 > y1:
            continue
        tx0 = x0 // TS
        tx1 = x1 // TS
        ty0 = y0 // TS
        ty1 = y1 // TS
        rect[k, 0] = tx0
        rect[k, 1] = tx1
        rect[k, 2] = ty0
        rect[k, 3] = ty1
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                counts[ty * tiles_x + tx + 1] += 1
    for t in range(ntiles):
        counts[t + 1] += counts[t]
    offsets = counts
    fill = offsets[:-1].copy()
    lists = np.empty(offsets[ntiles], np.int32)
    for k in range(n):
        if rect[k, 0] > rect[k, 1]:
            continue
        g = order[k]
        for ty in range(rect[k, 2], rect[k, 3] + 1):
            for tx in range(rect[k, 0], rect[k, 1] + 1):
                t = ty * tiles_x + tx
                lists[fill[t]] = g
                fill[t] += 1
    return offsets, lists


@njit(parallel=True, cache=True)
def _pack(lists, means2d, conics, colors, opac, ext):
    E = lists.shape[0]
    packed = np.empty((E, NF), np.float32)
    for e in prange(E):
        g = lists[e]
        packed[e, 0] = means2d[g, 0]
        packed[e, 1] = means2d[g, 1]
        packed[e, 2] = conics[g, 0]
        packed[e, 3] = conics[g, 1]
        packed[e, 4] = conics[g, 2]
        o = opac[g]
        packed[e, 5] = o
        packed[e, 6] = ext[g, 0]
        packed[e, 7] = ext[g, 1]
        packed[e, 8] = colors[g, 0]
        packed[e, 9] = colors[g, 1]
        packed[e, 10] = colors[g, 2]
        # alpha < 1/255  <=>  power < log(1 / (255 * o)); lets the kernels skip exp() for faint pixels
        packed[e, 11] = math.log(ALPHA_MIN / o) if o > 0 else np.inf
    return packed


@njit(inline="always", fastmath=True)
def _fexp(x):
    """exp(x) for x in [-8, 0] (the only range the kernels need): Taylor(x/16) then 4 squarings.

    Relative error < 2e-6; branch-free so the compiler can pipeline/vectorise it."""
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


@njit(inline="always", fastmath=True)
def _row_alpha(buf, ebuf, n, dx0, dy, a, b, c, op, thr):
    """Branch-free (vectorisable) alpha of one Gaussian along a row segment: buf[q] = alpha at
    dx = dx0 - q (0 where power < thr or power > 0), ebuf[q] = exp(power)."""
    cdy = np.float32(-0.5) * c * dy * dy
    bdy = b * dy
    for q in range(n):
        dx = dx0 - np.float32(q)
        power = np.float32(-0.5) * a * dx * dx + cdy - bdy * dx
        e = _fexp(min(np.float32(0.0), max(np.float32(-8.0), power)))
        al = min(np.float32(ALPHA_MAX), op * e)
        good = (power >= thr) & (power <= np.float32(0.0))
        buf[q] = al if good else np.float32(0.0)
        ebuf[q] = e


@njit(inline="always", fastmath=True)
def _row_alpha_inv(buf, ebuf, ibuf, n, dx0, dy, a, b, c, op, thr):
    """_row_alpha plus ibuf[q] = 1 / (1 - alpha) (the backward's division, vectorised)."""
    _row_alpha(buf, ebuf, n, dx0, dy, a, b, c, op, thr)
    for q in range(n):
        ibuf[q] = np.float32(1.0) / (np.float32(1.0) - buf[q])


@njit(inline="always")
def _span(m, h, lo, hi):
    a = max(lo, int(math.ceil(m - h)))
    b = min(hi, int(math.floor(m + h)))
    return a, b


@njit(inline="always")
def _row_span(mx, a, b, c, thr, dy, gx0, gx1):
    """Pixels of this row where op*exp(power) >= 1/255 can hold (exact quadratic, small slack)."""
    t2 = -2.0 * thr  # 2 log(255 op) > 0
    bd = float(b) * dy
    disc = bd * bd - float(a) * (float(c) * dy * dy - t2)
    if disc < 0.0:
        return 1, 0
    sq = math.sqrt(disc)
    inv_a = 1.0 / float(a)
    slack = 1e-3 + 1e-4 * sq * inv_a
    lo = max(gx0, int(math.ceil(mx + (bd - sq) * inv_a - slack)))
    hi = min(gx1, int(math.floor(mx + (bd + sq) * inv_a + slack)))
    return lo, hi


@njit(parallel=True, cache=True, fastmath=_FM)
def _forward(packed, offsets, tile_perm, W, H, TS, tiles_x, bg, img, final_T, n_contrib):
    """Gaussian-outer / pixel-inner per tile: each list entry only visits the pixels of its extent box."""
    ntiles = tile_perm.shape[0]
    for i in prange(ntiles):
        t = tile_perm[i]
        ty = t // tiles_x
        tx = t - ty * tiles_x
        start = offsets[t]
        end = offsets[t + 1]
        x0 = tx * TS
        y0 = ty * TS
        x1 = min(W, x0 + TS) - 1
        y1 = min(H, y0 + TS) - 1
        tw = x1 - x0 + 1
        npx = tw * (y1 - y0 + 1)
        T = np.ones(npx, np.float32)
        C = np.zeros((3, npx), np.float32)
        last = np.full(npx, start, np.int64)
        done = np.zeros(npx, np.uint8)
        abuf = np.empty(TS + 1, np.float32)
        ebuf = np.empty(TS + 1, np.float32)
        ndone = 0
        for k in range(start, end):
            mx = packed[k, 0]
            my = packed[k, 1]
            gx0, gx1 = _span(mx, packed[k, 6], x0, x1)
            gy0, gy1 = _span(my, packed[k, 7], y0, y1)
            if gx0 > gx1 or gy0 > gy1:
                continue
            a = packed[k, 2]
            b = packed[k, 3]
            c = packed[k, 4]
            op = packed[k, 5]
            thr = packed[k, 11]
            col0 = packed[k, 8]
            col1 = packed[k, 9]
            col2 = packed[k, 10]
            for py in range(gy0, gy1 + 1):
                dy = my - np.float32(py)
                row = (py - y0) * tw - x0
                rx0, rx1 = _row_span(mx, a, b, c, thr, float(dy), gx0, gx1)
                n = rx1 - rx0 + 1
                if n <= 0:
                    continue
                _row_alpha(abuf, ebuf, n, mx - np.float32(rx0), dy, a, b, c, op, thr)
                for q in range(n):
                    alpha = abuf[q]
                    if alpha < np.float32(ALPHA_MIN):
                        continue
                    j = row + rx0 + q
                    if done[j]:
                        continue
                    Tj = T[j]
                    test_T = Tj * (np.float32(1.0) - alpha)
                    if test_T < np.float32(T_MIN):
                        done[j] = 1
                        ndone += 1
                        continue
                    w = alpha * Tj
                    C[0, j] += col0 * w
                    C[1, j] += col1 * w
                    C[2, j] += col2 * w
                    T[j] = test_T
                    last[j] = k + 1
            if ndone == npx:
                break
        for py in range(y0, y1 + 1):
            for px in range(x0, x1 + 1):
                j = (py - y0) * tw + (px - x0)
                Tj = T[j]
                img[0, py, px] = C[0, j] + Tj * bg[0]
                img[1, py, px] = C[1, j] + Tj * bg[1]
                img[2, py, px] = C[2, j] + Tj * bg[2]
                final_T[py, px] = Tj
                n_contrib[py, px] = last[j]


@njit(parallel=True, cache=True, fastmath=_FM)
def _backward(packed, offsets, tile_perm, W, H, TS, tiles_x, bg, final_T, n_contrib, grad_img, egrad):
    """Reverse traversal per tile; egrad (E, 9): d mean x, y, d conic a, b, c, d opacity, d colour r, g, b.

    Each entry is owned by one tile (one thread) and written once -> no races, deterministic."""
    ntiles = tile_perm.shape[0]
    for i in prange(ntiles):
        t = tile_perm[i]
        ty = t // tiles_x
        tx = t - ty * tiles_x
        start = offsets[t]
        x0 = tx * TS
        y0 = ty * TS
        x1 = min(W, x0 + TS) - 1
        y1 = min(H, y0 + TS) - 1
        tw = x1 - x0 + 1
        npx = tw * (y1 - y0 + 1)
        T = np.empty(npx, np.float32)
        TFB = np.empty(npx, np.float32)
        G = np.empty((3, npx), np.float32)
        S = np.zeros(npx, np.float32)  # sum over already-visited (farther) Gaussians of (c.g) alpha T
        abuf = np.empty(TS + 1, np.float32)
        ebuf = np.empty(TS + 1, np.float32)
        ibuf = np.empty(TS + 1, np.float32)
        lastk = np.empty(npx, np.int64)
        maxlast = start
        for py in range(y0, y1 + 1):
            for px in range(x0, x1 + 1):
                j = (py - y0) * tw + (px - x0)
                T[j] = final_T[py, px]
                g0 = grad_img[0, py, px]
                g1 = grad_img[1, py, px]
                g2 = grad_img[2, py, px]
                G[0, j] = g0
                G[1, j] = g1
                G[2, j] = g2
                TFB[j] = final_T[py, px] * (bg[0] * g0 + bg[1] * g1 + bg[2] * g2)
                lk = n_contrib[py, px]
                lastk[j] = lk
                if lk > maxlast:
                    maxlast = lk
        for k in range(maxlast - 1, start - 1, -1):
            mx = packed[k, 0]
            my = packed[k, 1]
            gx0, gx1 = _span(mx, packed[k, 6], x0, x1)
            gy0, gy1 = _span(my, packed[k, 7], y0, y1)
            if gx0 > gx1 or gy0 > gy1:
                continue
            a = packed[k, 2]
            b = packed[k, 3]
            c = packed[k, 4]
            op = packed[k, 5]
            thr = packed[k, 11]
            col0 = packed[k, 8]
            col1 = packed[k, 9]
            col2 = packed[k, 10]
            s_mx = np.float32(0.0)
            s_my = np.float32(0.0)
            s_a = np.float32(0.0)
            s_b = np.float32(0.0)
            s_c = np.float32(0.0)
            s_op = np.float32(0.0)
            s_c0 = np.float32(0.0)
            s_c1 = np.float32(0.0)
            s_c2 = np.float32(0.0)
            for py in range(gy0, gy1 + 1):
                dy = my - np.float32(py)
                row = (py - y0) * tw - x0
                rx0, rx1 = _row_span(mx, a, b, c, thr, float(dy), gx0, gx1)
                n = rx1 - rx0 + 1
                if n <= 0:
                    continue
                _row_alpha_inv(abuf, ebuf, ibuf, n, mx - np.float32(rx0), dy, a, b, c, op, thr)
                for q in range(n):
                    alpha = abuf[q]
                    if alpha < np.float32(ALPHA_MIN):
                        continue
                    px = rx0 + q
                    j = row + px
                    if k >= lastk[j]:
                        continue
                    dx = mx - np.float32(px)
                    Gv = ebuf[q]
                    raw = op * Gv
                    inv_om = ibuf[q]
                    Tj = T[j] * inv_om
                    T[j] = Tj
                    g0 = G[0, j]
                    g1 = G[1, j]
                    g2 = G[2, j]
                    w = alpha * Tj
                    s_c0 += w * g0
                    s_c1 += w * g1
                    s_c2 += w * g2
                    cg = col0 * g0 + col1 * g1 + col2 * g2
                    Sj = S[j]
                    # dC/dalpha_k = T_k c_k - (sum_{j>k} c_j alpha_j T_j + T_final bg) / (1 - alpha_k)
                    dL_dalpha = Tj * cg - (Sj + TFB[j]) * inv_om
                    S[j] = Sj + cg * w
                    if raw > np.float32(ALPHA_MAX):
                        continue  # clamped: alpha does not depend on G / opacity here
                    dL_dG = op * dL_dalpha
                    gdx = Gv * dx
                    gdy = Gv * dy
                    s_mx += dL_dG * (-gdx * a - gdy * b)
                    s_my += dL_dG * (-gdy * c - gdx * b)
                    s_a += np.float32(-0.5) * gdx * dx * dL_dG
                    s_b += -gdx * dy * dL_dG
                    s_c += np.float32(-0.5) * gdy * dy * dL_dG
                    s_op += Gv * dL_dalpha
            egrad[k, 0] = s_mx
            egrad[k, 1] = s_my
            egrad[k, 2] = s_a
            egrad[k, 3] = s_b
            egrad[k, 4] = s_c
            egrad[k, 5] = s_op
            egrad[k, 6] = s_c0
            egrad[k, 7] = s_c1
            egrad[k, 8] = s_c2


@njit(cache=True)
def _reduce(lists, egrad, n):
    out = np.zeros((n, 9), np.float32)
    for e in range(lists.shape[0]):
        g = lists[e]
        for j in range(9):
            out[g, j] += egrad[e, j]
    return out


_PERM_CACHE = {}


def _tile_perm(ntiles):
    p = _PERM_CACHE.get(ntiles)
    if p is None:
        # interleave tiles so that the static chunks numba hands to each thread carry similar load
        p = np.random.RandomState(12345).permutation(ntiles).astype(np.int64)
        _PERM_CACHE[ntiles] = p
    return p


def _np32(t):
    return np.ascontiguousarray(t.detach().to(dtype=torch.float32, device="cpu").numpy())


class RasterizeCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, depths, radii, W, H, bg, TS):
        m = _np32(means2d)
        con = _np32(conics)
        col = _np32(colors)
        op = _np32(opacities).reshape(-1)
        rad = np.ascontiguousarray(radii.detach().cpu().numpy().astype(np.int32))
        dep = depths.detach().cpu().numpy()
        order = np.argsort(dep, kind="stable").astype(np.int64)
        tiles_x = (W + TS - 1) // TS
        tiles_y = (H + TS - 1) // TS
        ext = _extents(m, con, op, rad, W, H)
        offsets, lists = _bin(order, m, ext, W, H, TS, tiles_x, tiles_y)
        packed = _pack(lists, m, con, col, op, ext)
        bgn = _np32(bg).reshape(3)
        img = np.empty((3, H, W), np.float32)
        final_T = np.empty((H, W), np.float32)
        n_contrib = np.empty((H, W), np.int64)
        perm = _tile_perm(tiles_x * tiles_y)
        _forward(packed, offsets, perm, W, H, TS, tiles_x, bgn, img, final_T, n_contrib)
        ctx.state = (packed, offsets, lists, perm, W, H, TS, tiles_x, bgn, final_T, n_contrib, m.shape[0])
        ctx.dtypes = (means2d.dtype, conics.dtype, colors.dtype, opacities.dtype)
        ctx.shape_op = opacities.shape
        ctx.num_entries = int(lists.shape[0])
        return torch.from_numpy(img).to(means2d.dtype)

    @staticmethod
    def backward(ctx, grad_img):
        packed, offsets, lists, perm, W, H, TS, tiles_x, bgn, final_T, n_contrib, n = ctx.state
        g = np.ascontiguousarray(grad_img.detach().to(torch.float32).numpy())
        egrad = np.zeros((packed.shape[0], 9), np.float32)
        _backward(packed, offsets, perm, W, H, TS, tiles_x, bgn, final_T, n_contrib, g, egrad)
        out = torch.from_numpy(_reduce(lists, egrad, n))
        dm, dcon, dcol, dop = ctx.dtypes
        ctx.state = None
        return (out[:, 0:2].to(dm), out[:, 2:5].to(dcon), out[:, 6:9].to(dcol),
                out[:, 5].reshape(ctx.shape_op).to(dop), None, None, None, None, None, None)


def rasterize_cpu(means2d, conics, colors, opacities, depths, radii, W, H, bg, tile_size=16):
    return RasterizeCPU.apply(means2d, conics, colors, opacities, depths, radii, int(W), int(H), bg, int(tile_size))


def set_threads(n):
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    torch.set_num_threads(n)
    return n
