"""Binning for the CPU renderer, compiled with numba: the depth-sorted Gaussians' packed rows -> per-tile lists
(step 2 of gstrain/raster_cpu.py's render: each Gaussian is appended to every 16x16 tile its ellipse reaches,
exactly, row by row, not every tile of its box, with a mask of the tile's strips it reaches; see NOTES for what
that saves on a trained scene).  A counting sort in parallel keeps each tile's list in depth order."""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .raster_cpu import HALVES, TILE
from .simd import (
    NL,
    bits,
    ihmax,
    ihmin,
    iload,
    iota,
    isplat,
    istore,
    select,
    vmax,
    vmin,
)
from .simd_math import (
    to_int,
    vceil,
    vfloor,
    vsqrt,
)


@njit(inline="always")
def _ellipse(gp, k):
    """Where Gaussian row k of gp can pass the alpha test, as rows of x: on pixel row y the pixels x with
    |x - (mx + slope (y - my))|^2 <= P - Q (y - my)^2.

    The test is power >= log-threshold, i.e. the ellipse a dx^2 + 2 b dx dy + c dy^2 <= t with t = -2
    log-threshold.  It is widened by more than the float32 rounding of the kernels' power (which grows with
    a c / det for thin ellipses), so every pixel the kernels accept lies inside: leaving the rest out of the
    tile and strip lists changes no result, only the work."""
    a = float(gp[k, 2])
    b = float(gp[k, 3])
    c = float(gp[k, 4])
    det = a * c - b * b
    if not (det > 0.0 and a > 0.0):  # not an ellipse (the boxes leave these out): whole rows
        return 0.0, 1e30, 0.0
    ia = 1.0 / a
    t = -2.0 * float(gp[k, 9])
    t += 1e-3 + 1e-6 * t * (c * a / det)
    return -b * ia, t * ia, det * ia * ia


@njit(inline="always")
def _tile_rows(gp, gb, k, ty, slope, P, Q, pa, pb):
    """Tile row ty of Gaussian row k: the strip parts (runs of NL pixel columns; part p is part p % HALVES of
    tile column p // HALVES) that each pixel row of the tile reaches: row ty * TILE + i reaches parts
    pa[i]..pb[i] (pa[i] > pb[i]: none, as for rows outside the Gaussian's box).  NL rows at a time, one a lane
    (pa, pb: scratch of TILE int32)."""
    mx = np.float32(gp[k, 0])
    my = np.float32(gp[k, 1])
    sl = np.float32(slope)
    p32 = np.float32(P)
    q32 = np.float32(Q)
    fx0 = np.float32(gb[k, 0])
    fx1 = np.float32(gb[k, 1])
    fy0 = np.float32(gb[k, 2])
    fy1 = np.float32(gb[k, 3])
    for g in range(TILE // NL):
        y = iota() + np.float32(ty * TILE + g * NL)
        dy = y - my
        h2 = p32 - q32 * dy * dy
        h = vsqrt(vmax(h2, 0.0)) + 0.01
        xc = mx + sl * dy
        lo = vmax(vceil(xc - h), fx0)
        hi = vmin(vfloor(xc + h), fx1)
        ok = (h2 >= 0.0) & (lo <= hi) & (y >= fy0) & (y <= fy1)
        istore(pa, g * NL, select(ok, to_int(vfloor(lo * (1.0 / NL))), isplat(1 << 30)))  # lo, hi >= 0: exact
        istore(pb, g * NL, select(ok, to_int(vfloor(hi * (1.0 / NL))), isplat(-1)))


@njit(inline="always")
def _tile_columns(gb, k, pa, pb):
    """The tile columns of the tile row _tile_rows filled pa, pb for: those of Gaussian k's box, narrowed to the
    parts its rows reach when the box spans more than two (a thin slanted ellipse's box holds many tiles it
    misses; for the small Gaussians most are, the two horizontal reductions cost more than the tiles they skip:
    binning 0.8x at 100k Gaussians, NOTES)."""
    tx0 = gb[k, 0] // TILE
    tx1 = gb[k, 1] // TILE
    if tx1 - tx0 > 1:
        amin = iload(pa, 0)
        bmax = iload(pb, 0)
        for g in range(1, TILE // NL):
            a = iload(pa, g * NL)
            b = iload(pb, g * NL)
            amin = select(a < amin, a, amin)
            bmax = select(b > bmax, b, bmax)
        tx0 = max(tx0, ihmin(amin) // HALVES)
        tx1 = min(tx1, ihmax(bmax) // HALVES)
    return tx0, tx1


@njit(inline="always")
def _tile_mask(pa, pb, tx):
    """The strip mask of tile column tx: bit TILE * h + i (strip TILE * h + i) when the tile's row i reaches
    part h of the tile."""
    mk = np.int64(0)
    for h in range(HALVES):
        q = isplat(tx * HALVES + h)
        for g in range(TILE // NL):
            mk |= np.int64(bits((iload(pa, g * NL) <= q) & (q <= iload(pb, g * NL)))) << (TILE * h + g * NL)
    return mk


@njit(parallel=True, cache=True)
def _bin(gp, gb, tiles_x, tiles_y, nthreads):
    """Tile lists (a counting sort in parallel: per-chunk tile histograms, then each chunk writes its
    entries from its own start in every tile, so each list keeps the depth order whatever the chunking).
    A Gaussian goes to the tiles its ellipse reaches (_ellipse), not to every tile of its pixel box, and each
    entry carries the strips of its tile that the ellipse reaches (bit s of smask: strip s), so that the
    kernels' per-strip lists hold no strip the Gaussian cannot touch.

    Returns offsets (ntiles + 1,), lists (rows of gp/gb per tile), smask (E,) and for the backward's reduction
    each row's entries: koff (n + 1,) and where (E,), the positions in `lists` of row k's entries, in tile
    order."""
    ntiles = tiles_x * tiles_y
    n = gb.shape[0]
    nch = max(1, min(8 * nthreads, n // 1024 + 1))
    # the box's tiles bound each Gaussian's entries: room for each chunk's in tmp_tile / tmp_mask (in row order)
    cub = np.zeros(nch + 1, np.int64)
    for c in prange(nch):
        u = 0
        for k in range(c * n // nch, (c + 1) * n // nch):
            u += (gb[k, 3] // TILE - gb[k, 2] // TILE + 1) * (gb[k, 1] // TILE - gb[k, 0] // TILE + 1)
        cub[c + 1] = u
    for c in range(nch):
        cub[c + 1] += cub[c]
    tmp_tile = np.empty(cub[nch], np.int32)
    tmp_mask = np.empty(cub[nch], np.uint32)
    hist = np.zeros((nch, ntiles), np.int64)
    kst = np.empty(n, np.int64)  # where row k's entries start in tmp_tile / tmp_mask
    kcount = np.empty(n, np.int64)
    for c in prange(nch):
        pa = np.empty(TILE, np.int32)
        pb = np.empty(TILE, np.int32)
        j = cub[c]
        for k in range(c * n // nch, (c + 1) * n // nch):
            slope, P, Q = _ellipse(gp, k)
            kst[k] = j
            for ty in range(gb[k, 2] // TILE, gb[k, 3] // TILE + 1):
                _tile_rows(gp, gb, k, ty, slope, P, Q, pa, pb)
                tx0, tx1 = _tile_columns(gb, k, pa, pb)
                for tx in range(tx0, tx1 + 1):
                    mk = _tile_mask(pa, pb, tx)
                    if mk != 0:
                        t = ty * tiles_x + tx
                        hist[c, t] += 1
                        tmp_tile[j] = t
                        tmp_mask[j] = mk
                        j += 1
            kcount[k] = j - kst[k]
    offsets = np.empty(ntiles + 1, np.int64)
    start = np.empty((nch, ntiles), np.int64)
    total = 0
    for t in range(ntiles):
        offsets[t] = total
        for c in range(nch):
            start[c, t] = total
            total += hist[c, t]
    offsets[ntiles] = total
    koff = np.empty(n + 1, np.int64)
    koff[0] = 0
    for k in range(n):
        koff[k + 1] = koff[k] + kcount[k]
    lists = np.empty(total, np.int32)
    smask = np.empty(total, np.uint32)
    where = np.empty(total, np.int64)
    for c in prange(nch):
        fill = start[c].copy()
        for k in range(c * n // nch, (c + 1) * n // nch):
            for i in range(kcount[k]):
                t = tmp_tile[kst[k] + i]
                pos = fill[t]
                lists[pos] = k
                smask[pos] = tmp_mask[kst[k] + i]
                where[koff[k] + i] = pos
                fill[t] = pos + 1
    return offsets, lists, smask, koff, where
