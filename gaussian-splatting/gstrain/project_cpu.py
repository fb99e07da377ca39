"""The per-Gaussian half of the CPU renderer, compiled with numba: projection, SH colour and pixel box forward
(`_prepare`), and the backward that turns a Gaussian's summed rasteriser gradients into its parameters'
gradients (`_param_grads`).  One pass over the Gaussians each way: no intermediate (N, k) arrays between
projection, colour, box and rasteriser, and no autograd graph between them (gstrain/render_cpu.py wraps the
two kernels and the rasteriser in one autograd Function).

Same maths as rasterize.preprocess's PyTorch path (which the `reference` backend uses and the tests compare
against): p = V m; EWA Jacobian with the 1.3x frustum clamp; cov2d = (J R Rq S)(J R Rq S)^T + 0.3 I; conic =
inverse(cov2d) stored as (a, b, c) with power = -0.5 (a dx^2 + c dy^2) - b dx dy; colour = max(SH(dir) + 0.5, 0).
Projection maths in float64 on the parameters' values, the SH colour and its gradients in float32 (as the
reference's), outputs in float32 (the rasteriser's precision).
"""
import math

import numpy as np
from numba import njit, prange

from .simd import prefetch_row

NEAR_PLANE = 0.2
LOWPASS = 0.3
PREFETCH_AHEAD = 8  # rows read in a scattered order: prefetched this many reads ahead
NF = 12  # a row of `pre`: mx my a b c opacity x0 x1 r g b log-threshold (raster_cpu's packed row)


# Helpers take and return scalars and tuples only: an array passed to a (not inlined) numba function costs two
# atomic reference-count updates per call, which at one call per Gaussian cost more than the maths.  Those
# called from a parallel loop are compiled on their own (inlining tuple-returning helpers there trips numba's
# parfor array analysis); the small ones they call are inlined into them (a call each cost as much again).
@njit(inline="always")
def _quat_rot(qw, qx, qy, qz):
    """The normalised quaternion's rotation matrix (row-major, 9 values), its norm and unit components."""
    qw = float(qw)
    qx = float(qx)
    qy = float(qy)
    qz = float(qz)
    n = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    inv = 1.0 / n
    w = qw * inv
    x = qx * inv
    y = qy * inv
    z = qz * inv
    R = (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
         2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
         2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y))
    return R, n, w, x, y, z


@njit(cache=True)
def _view_point(mx, my, mz, V):
    """V: the view matrix's first three rows, row-major (12 values)."""
    mx = float(mx)
    my = float(my)
    mz = float(mz)
    return (V[0] * mx + V[1] * my + V[2] * mz + V[3], V[4] * mx + V[5] * my + V[6] * mz + V[7],
            V[8] * mx + V[9] * my + V[10] * mz + V[11])


@njit(inline="always")
def _tm(V, x, y, z, fx, fy, lim, R, s):
    """The EWA Jacobian J (with the 1.3x frustum clamp) and TM = J V[:3, :3] Rq diag(s) (cov2d = TM TM^T +
    0.3 I): TM's two rows, T = J V[:3, :3]'s two rows, and 1/z, the clamped x/z and y/z."""
    iz = 1.0 / z
    txtz = min(max(x * iz, lim[0]), lim[1])
    tytz = min(max(y * iz, lim[2]), lim[3])
    J00 = fx * iz
    J02 = -fx * txtz * iz
    J11 = fy * iz
    J12 = -fy * tytz * iz
    T00 = J00 * V[0] + J02 * V[8]
    T01 = J00 * V[1] + J02 * V[9]
    T02 = J00 * V[2] + J02 * V[10]
    T10 = J11 * V[4] + J12 * V[8]
    T11 = J11 * V[5] + J12 * V[9]
    T12 = J11 * V[6] + J12 * V[10]
    M0 = (T00 * R[0] + T01 * R[3] + T02 * R[6]) * s[0]
    M1 = (T00 * R[1] + T01 * R[4] + T02 * R[7]) * s[1]
    M2 = (T00 * R[2] + T01 * R[5] + T02 * R[8]) * s[2]
    N0 = (T10 * R[0] + T11 * R[3] + T12 * R[6]) * s[0]
    N1 = (T10 * R[1] + T11 * R[4] + T12 * R[7]) * s[1]
    N2 = (T10 * R[2] + T11 * R[5] + T12 * R[8]) * s[2]
    return (M0, M1, M2), (N0, N1, N2), (T00, T01, T02), (T10, T11, T12), iz, txtz, tytz


@njit(cache=True)
def _cov2d(mx, my, mz, l0, l1, l2, qw, qx, qy, qz, V, fx, fy, lim):
    """Camera-space point (x, y, z) and the 2D covariance (a, b, c) with the low-pass (z must be past the near
    plane)."""
    x, y, z = _view_point(mx, my, mz, V)
    R, _, _, _, _, _ = _quat_rot(qw, qx, qy, qz)
    M, Nn, _, _, iz, _, _ = _tm(V, x, y, z, fx, fy, lim, R, (math.exp(float(l0)), math.exp(float(l1)),
                                                             math.exp(float(l2))))
    a = M[0] ** 2 + M[1] ** 2 + M[2] ** 2 + LOWPASS
    b = M[0] * Nn[0] + M[1] * Nn[1] + M[2] * Nn[2]
    c = Nn[0] ** 2 + Nn[1] ** 2 + Nn[2] ** 2 + LOWPASS
    return x, y, iz, a, b, c


@njit(cache=True)
def _box(u, v, ca, cb, cc, o, lo, r, W, H):
    """The pixel box (x0, x1, y0, y1) where alpha >= 1/255 is possible (inside the 3-sigma square and the image;
    empty when x0 > x1 or y0 > y1), from the float32 values the rasteriser reads; lo = log(255 o), which the
    caller also stores (negated) as the row's log-threshold: one log a Gaussian."""
    det = ca * cc - cb * cb
    if o * 255.0 < 1.0 or det <= 0 or not (abs(u) < 1e7 and abs(v) < 1e7):
        return 1, 0, 1, 0
    t = 2.0 * lo
    hx = np.float32(min(math.sqrt(t * cc / det) * 1.0001 + 1e-3, r))
    hy = np.float32(min(math.sqrt(t * ca / det) * 1.0001 + 1e-3, r))
    return (max(0, int(math.ceil(u - hx))), min(W - 1, int(math.floor(u + hx))), max(0, int(math.ceil(v - hy))),
            min(H - 1, int(math.floor(v + hy))))


# ----------------------------------------------------------------------------- SH -> RGB
_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2_0 = 1.0925484305920792
_C2_1 = -1.0925484305920792
_C2_2 = 0.31539156525252005
_C2_3 = -1.0925484305920792
_C2_4 = 0.5462742152960396
_C3_0 = -0.5900435899266435
_C3_1 = 2.890611442640554
_C3_2 = -0.4570457994644658
_C3_3 = 0.3731763325901154
_C3_4 = -0.4570457994644658
_C3_5 = 1.445305721320277
_C3_6 = -0.5900435899266435


@njit(cache=True)  # not inline="always": numba's parfor array analysis mistakes the tuples for shapes
def _sh_basis(x, y, z):
    """The 16 real SH basis values at unit direction (x, y, z) (reference ordering) and their partial
    derivatives d/dx, d/dy, d/dz, as tuples (constant-index loops over them unroll into registers)."""
    xx = x * x
    yy = y * y
    zz = z * z
    b = (_C0, -_C1 * y, _C1 * z, -_C1 * x,
         _C2_0 * x * y, _C2_1 * y * z, _C2_2 * (2.0 * zz - xx - yy), _C2_3 * x * z, _C2_4 * (xx - yy),
         _C3_0 * y * (3.0 * xx - yy), _C3_1 * x * y * z, _C3_2 * y * (4.0 * zz - xx - yy),
         _C3_3 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy), _C3_4 * x * (4.0 * zz - xx - yy), _C3_5 * z * (xx - yy),
         _C3_6 * x * (xx - 3.0 * yy))
    bx = (0.0, 0.0, 0.0, -_C1,
          _C2_0 * y, 0.0, _C2_2 * -2.0 * x, _C2_3 * z, _C2_4 * 2.0 * x,
          _C3_0 * 6.0 * x * y, _C3_1 * y * z, _C3_2 * -2.0 * x * y, _C3_3 * -6.0 * x * z,
          _C3_4 * (4.0 * zz - 3.0 * xx - yy), _C3_5 * 2.0 * x * z, _C3_6 * (3.0 * xx - 3.0 * yy))
    by = (0.0, -_C1, 0.0, 0.0,
          _C2_0 * x, _C2_1 * z, _C2_2 * -2.0 * y, 0.0, _C2_4 * -2.0 * y,
          _C3_0 * (3.0 * xx - 3.0 * yy), _C3_1 * x * z, _C3_2 * (4.0 * zz - xx - 3.0 * yy),
          _C3_3 * -6.0 * y * z, _C3_4 * -2.0 * x * y, _C3_5 * -2.0 * y * z, _C3_6 * -6.0 * x * y)
    bz = (0.0, 0.0, _C1, 0.0,
          0.0, _C2_1 * y, _C2_2 * 4.0 * z, _C2_3 * x, 0.0,
          0.0, _C3_1 * x * y, _C3_2 * 8.0 * y * z, _C3_3 * (6.0 * zz - 3.0 * xx - 3.0 * yy),
          _C3_4 * 8.0 * x * z, _C3_5 * (xx - yy), 0.0)
    return b, bx, by, bz


@njit(cache=True)
def _sh_dir(mx, my, mz, cam):
    dx = float(mx) - cam[0]
    dy = float(my) - cam[1]
    dz = float(mz) - cam[2]
    ln = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
    return dx / ln, dy / ln, dz / ln, ln


# ----------------------------------------------------------------------------- forward
@njit(parallel=True, cache=True)
def _prepare(means, log_scales, quats, opac, dc, rest, deg, V, fx, fy, cx, cy, W, H, lim, cam, pre, box, depth,
             radii, visible):
    """Per Gaussian i: its packed rasteriser row pre[i] (NF float32: 2D mean in pixel-index coordinates,
    conic, opacity, box columns, colour, log alpha threshold), its pixel box (x0 x1 y0 y1: where alpha >= 1/255
    is possible, inside the 3-sigma square and the image), its depth, its 3-sigma radius (0: culled, behind the
    near plane, degenerate or off screen) and whether its box is not empty (visible).  V (12,): the view
    matrix's first three rows; lim (4,): the frustum clamp; cam (3,): the camera centre.

    The box and alpha threshold are computed from the float32 values the rasteriser reads (an entry must not
    reach a pixel the kernels' own test would refuse: see raster_cpu._ellipse)."""
    K = (deg + 1) ** 2
    Vt = (V[0], V[1], V[2], V[3], V[4], V[5], V[6], V[7], V[8], V[9], V[10], V[11])
    lt = (lim[0], lim[1], lim[2], lim[3])
    ct = (cam[0], cam[1], cam[2])
    for i in prange(means.shape[0]):
        radii[i] = 0
        visible[i] = False
        pre[i, 0] = 0.0  # the 2D mean is given for every Gaussian in front of the camera, 0 for the rest
        pre[i, 1] = 0.0
        _, _, z = _view_point(means[i, 0], means[i, 1], means[i, 2], Vt)
        depth[i] = z if z > NEAR_PLANE else 1.0
        if not (z > NEAR_PLANE):
            continue
        x, y, iz, a, b, c = _cov2d(means[i, 0], means[i, 1], means[i, 2], log_scales[i, 0], log_scales[i, 1],
                                   log_scales[i, 2], quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3], Vt, fx, fy,
                                   lt)
        det = a * c - b * b
        u = fx * x * iz + cx - 0.5
        v = fy * y * iz + cy - 0.5
        u32 = np.float32(u)
        v32 = np.float32(v)
        pre[i, 0] = u32
        pre[i, 1] = v32
        if not (det > 0):
            continue
        mid = 0.5 * (a + c)
        lam1 = mid + math.sqrt(max(mid * mid - det, 0.1))
        r = math.ceil(3.0 * math.sqrt(lam1))
        if not (u + r >= 0 and u - r <= W - 1 and v + r >= 0 and v - r <= H - 1 and abs(u) < 1e9 and abs(v) < 1e9):
            continue
        radii[i] = int(r)
        ca = np.float32(c / det)
        cb = np.float32(-b / det)
        cc = np.float32(a / det)
        o = opac[i]
        lo = math.log(o * 255.0) if o * 255.0 >= 1.0 else 0.0
        x0, x1, y0, y1 = _box(u32, v32, ca, cb, cc, o, lo, int(r), W, H)
        if x0 > x1 or y0 > y1:
            continue
        visible[i] = True
        box[i, 0] = x0
        box[i, 1] = x1
        box[i, 2] = y0
        box[i, 3] = y1
        pre[i, 2] = ca
        pre[i, 3] = cb
        pre[i, 4] = cc
        pre[i, 5] = o
        pre[i, 6] = x0
        pre[i, 7] = x1
        sx, sy, sz, _ = _sh_dir(means[i, 0], means[i, 1], means[i, 2], ct)
        sb, _, _, _ = _sh_basis(sx, sy, sz)
        b0 = np.float32(sb[0])  # the colour in float32 (as the reference's), three independent sums
        c0 = b0 * dc[i, 0, 0]
        c1 = b0 * dc[i, 0, 1]
        c2 = b0 * dc[i, 0, 2]
        for k in range(1, 16):
            if k < K:
                bk = np.float32(sb[k])
                c0 += bk * rest[i, k - 1, 0]
                c1 += bk * rest[i, k - 1, 1]
                c2 += bk * rest[i, k - 1, 2]
        pre[i, 8] = np.float32(max(c0 + 0.5, 0.0))
        pre[i, 9] = np.float32(max(c1 + 0.5, 0.0))
        pre[i, 10] = np.float32(max(c2 + 0.5, 0.0))
        pre[i, 11] = -lo  # alpha < 1/255  <=>  power < log(1 / (255 o))


@njit(parallel=True, cache=True)
def _gather_rows(order, pre, box):
    """The visible Gaussians' rows in depth order: gp (n, NF) and gb (n, 4) (the tile lists index these)."""
    n = order.shape[0]
    gp = np.empty((n, NF), np.float32)
    gb = np.empty((n, 4), np.int32)
    for k in prange(n):
        if k + PREFETCH_AHEAD < n:
            prefetch_row(pre, order[k + PREFETCH_AHEAD])
        g = order[k]
        for j in range(NF):
            gp[k, j] = pre[g, j]
        for j in range(4):
            gb[k, j] = box[g, j]
    return gp, gb


# ----------------------------------------------------------------------------- backward
@njit(inline="always")
def _quat_bwd(G, n, w, qx, qy, qz):
    """d loss / d quaternion (before normalisation) from G = d loss / d Rq (row-major, 9 values)."""
    gw = 2.0 * (-qz * G[1] + qy * G[2] + qz * G[3] - qx * G[5] - qy * G[6] + qx * G[7])
    gx = 2.0 * (qy * G[1] + qz * G[2] + qy * G[3] - 2 * qx * G[4] - w * G[5] + qz * G[6]
                + w * G[7] - 2 * qx * G[8])
    gy = 2.0 * (-2 * qy * G[0] + qx * G[1] + w * G[2] + qx * G[3] + qz * G[5] - w * G[6]
                + qz * G[7] - 2 * qy * G[8])
    gz = 2.0 * (-2 * qz * G[0] - w * G[1] + qx * G[2] + w * G[3] - 2 * qz * G[4]
                + qy * G[5] + qx * G[6] + qy * G[7])
    dot = w * gw + qx * gx + qy * gy + qz * gz
    inv = 1.0 / n
    return (gw - w * dot) * inv, (gx - qx * dot) * inv, (gy - qy * dot) * inv, (gz - qz * dot) * inv


@njit(inline="always")
def _row_terms(R, s, r, gTM0, gTM1, T0r, T1r):
    """Row r of gT = gTM M^T (M = Rq diag(s)) and of gM = T^T gTM."""
    gT0 = 0.0
    gT1 = 0.0
    gT0 += gTM0[0] * (R[3 * r] * s[0])
    gT1 += gTM1[0] * (R[3 * r] * s[0])
    gT0 += gTM0[1] * (R[3 * r + 1] * s[1])
    gT1 += gTM1[1] * (R[3 * r + 1] * s[1])
    gT0 += gTM0[2] * (R[3 * r + 2] * s[2])
    gT1 += gTM1[2] * (R[3 * r + 2] * s[2])
    return (gT0, gT1, T0r * gTM0[0] + T1r * gTM1[0], T0r * gTM0[1] + T1r * gTM1[1],
            T0r * gTM0[2] + T1r * gTM1[2])


@njit(cache=True)
def _project_bwd(mx, my, mz, l0, l1, l2, qw0, qx0, qy0, qz0, V, fx, fy, lim, gu, gv, gA, gB, gC):
    """d loss / d (mean, log-scales, quaternion) of one Gaussian through its 2D mean (gu, gv) and conic (gA, gB,
    gC): a tuple of (gmean 3, glog_scale 3, gquat 4).  The SH colour adds its own gradient to the mean."""
    x, y, z = _view_point(mx, my, mz, V)
    R, qn, w, qx, qy, qz = _quat_rot(qw0, qx0, qy0, qz0)
    s = (math.exp(float(l0)), math.exp(float(l1)), math.exp(float(l2)))
    TM0, TM1, T0, T1, iz, txtz, tytz = _tm(V, x, y, z, fx, fy, lim, R, s)
    rx = x * iz
    ry = y * iz
    clx = rx < lim[0] or rx > lim[1]
    cly = ry < lim[2] or ry > lim[3]
    a = TM0[0] ** 2 + TM0[1] ** 2 + TM0[2] ** 2 + LOWPASS
    b = TM0[0] * TM1[0] + TM0[1] * TM1[1] + TM0[2] * TM1[2]
    c = TM1[0] ** 2 + TM1[1] ** 2 + TM1[2] ** 2 + LOWPASS
    iD = 1.0 / (a * c - b * b)
    iD2 = iD * iD
    ga = (-gA * c * c + gB * b * c - gC * b * b) * iD2
    gb = (gA * 2.0 * b * c - gB * 2.0 * b * b + gC * 2.0 * a * b) * iD2 - gB * iD
    gc = (-gA * b * b + gB * a * b - gC * a * a) * iD2
    # d cov / d TM; TM = T M with M = Rq diag(s): gT = gTM M^T, gM = T^T gTM
    gTM0 = (2.0 * ga * TM0[0] + gb * TM1[0], 2.0 * ga * TM0[1] + gb * TM1[1], 2.0 * ga * TM0[2] + gb * TM1[2])
    gTM1 = (gb * TM0[0] + 2.0 * gc * TM1[0], gb * TM0[1] + 2.0 * gc * TM1[1], gb * TM0[2] + 2.0 * gc * TM1[2])
    gT00, gT10, m00, m01, m02 = _row_terms(R, s, 0, gTM0, gTM1, T0[0], T1[0])
    gT01, gT11, m10, m11, m12 = _row_terms(R, s, 1, gTM0, gTM1, T0[1], T1[1])
    gT02, gT12, m20, m21, m22 = _row_terms(R, s, 2, gTM0, gTM1, T0[2], T1[2])
    gl0 = m00 * R[0] * s[0] + m10 * R[3] * s[0] + m20 * R[6] * s[0]
    gl1 = m01 * R[1] * s[1] + m11 * R[4] * s[1] + m21 * R[7] * s[1]
    gl2 = m02 * R[2] * s[2] + m12 * R[5] * s[2] + m22 * R[8] * s[2]
    G = (m00 * s[0], m01 * s[1], m02 * s[2], m10 * s[0], m11 * s[1], m12 * s[2], m20 * s[0], m21 * s[1], m22 * s[2])
    q0, q1, q2, q3 = _quat_bwd(G, qn, w, qx, qy, qz)
    # T = J Rv: gJ = gT Rv^T (only the non-zero entries of J)
    gJ00 = gT00 * V[0] + gT01 * V[1] + gT02 * V[2]
    gJ02 = gT00 * V[8] + gT01 * V[9] + gT02 * V[10]
    gJ11 = gT10 * V[4] + gT11 * V[5] + gT12 * V[6]
    gJ12 = gT10 * V[8] + gT11 * V[9] + gT12 * V[10]
    iz2 = iz * iz
    gpx = 0.0
    gpy = 0.0
    gpz = -gJ00 * fx * iz2 - gJ11 * fy * iz2
    if clx:
        gpz += gJ02 * fx * txtz * iz2
    else:
        gpx += -gJ02 * fx * iz2
        gpz += gJ02 * 2.0 * fx * x * iz2 * iz
    if cly:
        gpz += gJ12 * fy * tytz * iz2
    else:
        gpy += -gJ12 * fy * iz2
        gpz += gJ12 * 2.0 * fy * y * iz2 * iz
    gpx += gu * fx * iz
    gpy += gv * fy * iz
    gpz += -gu * fx * x * iz2 - gv * fy * y * iz2
    gm = (V[0] * gpx + V[4] * gpy + V[8] * gpz, V[1] * gpx + V[5] * gpy + V[9] * gpz,
          V[2] * gpx + V[6] * gpy + V[10] * gpz)
    return gm, (gl0, gl1, gl2), (q0, q1, q2, q3)


@njit(parallel=True, cache=True)
def _entry_sums(koff, where, egrad, order, gp, n):
    """(n, 9) per Gaussian (in the caller's order): its tile entries' 9 gradients summed, in tile order (the same
    sums whatever the thread count), with a colour channel clamped at 0 given no gradient.  Rows of the
    Gaussians the image does not see are left unwritten.  In depth order, where each Gaussian's entries are
    found: the per-Gaussian pass that follows then reads its row here and its parameters in order (visiting
    Gaussians in their own order and looking up their entries cost a cache miss per lookup, twice the time)."""
    out = np.empty((n, 9), np.float32)
    ne = where.shape[0]
    for k in prange(order.shape[0]):
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = np.float32(0.0)
        for e in range(koff[k], koff[k + 1]):
            if e + PREFETCH_AHEAD < ne:
                prefetch_row(egrad, where[e + PREFETCH_AHEAD])
            p = where[e]
            a0 += egrad[p, 0]
            a1 += egrad[p, 1]
            a2 += egrad[p, 2]
            a3 += egrad[p, 3]
            a4 += egrad[p, 4]
            a5 += egrad[p, 5]
            a6 += egrad[p, 6]
            a7 += egrad[p, 7]
            a8 += egrad[p, 8]
        g = order[k]
        out[g, 0] = a0
        out[g, 1] = a1
        out[g, 2] = a2
        out[g, 3] = a3
        out[g, 4] = a4
        out[g, 5] = a5
        out[g, 6] = a6 if gp[k, 8] > 0 else np.float32(0.0)
        out[g, 7] = a7 if gp[k, 9] > 0 else np.float32(0.0)
        out[g, 8] = a8 if gp[k, 10] > 0 else np.float32(0.0)
    return out


@njit(parallel=True, cache=True)
def _param_grads(visible, sums, means, log_scales, quats, rest, deg, V, fx, fy, lim, cam, gmeans, gls, gq, gop, gdc,
                 grest, g2d):
    """Per Gaussian i: its summed rasteriser gradients sums[i] (_entry_sums; read only where visible[i]) through
    the projection and the SH colour to its parameters.  Every row of the outputs is written (zero for the
    Gaussians the image does not see), grest only in its first (deg + 1)^2 - 1 rows (the caller zeroes the
    rest).  g2d: d loss / d 2D mean (the densification statistic)."""
    K = (deg + 1) ** 2
    Vt = (V[0], V[1], V[2], V[3], V[4], V[5], V[6], V[7], V[8], V[9], V[10], V[11])
    lt = (lim[0], lim[1], lim[2], lim[3])
    ct = (cam[0], cam[1], cam[2])
    for i in prange(means.shape[0]):
        if not visible[i]:
            for j in range(3):
                gmeans[i, j] = 0.0
                gls[i, j] = 0.0
                gdc[i, 0, j] = 0.0
            for j in range(4):
                gq[i, j] = 0.0
            for r in range(K - 1):
                for j in range(3):
                    grest[i, r, j] = 0.0
            gop[i] = 0.0
            g2d[i, 0] = 0.0
            g2d[i, 1] = 0.0
            continue
        g2d[i, 0] = sums[i, 0]
        g2d[i, 1] = sums[i, 1]
        gop[i] = sums[i, 5]
        pm, pl, pq = _project_bwd(means[i, 0], means[i, 1], means[i, 2], log_scales[i, 0], log_scales[i, 1],
                                  log_scales[i, 2], quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3], Vt, fx, fy, lt,
                                  sums[i, 0], sums[i, 1], sums[i, 2], sums[i, 3], sums[i, 4])
        for j in range(3):
            gls[i, j] = pl[j]
        for j in range(4):
            gq[i, j] = pq[j]
        g0 = sums[i, 6]  # the colour's backward in float32, as its forward
        g1 = sums[i, 7]
        g2 = sums[i, 8]
        x, y, z, ln = _sh_dir(means[i, 0], means[i, 1], means[i, 2], ct)
        b, bx, by, bz = _sh_basis(x, y, z)
        b0 = np.float32(b[0])
        gdc[i, 0, 0] = b0 * g0
        gdc[i, 0, 1] = b0 * g1
        gdc[i, 0, 2] = b0 * g2
        gdx = np.float32(0.0)
        gdy = np.float32(0.0)
        gdz = np.float32(0.0)
        for kk in range(1, 16):
            if kk < K:
                bk = np.float32(b[kk])
                grest[i, kk - 1, 0] = bk * g0
                grest[i, kk - 1, 1] = bk * g1
                grest[i, kk - 1, 2] = bk * g2
                gb = rest[i, kk - 1, 0] * g0 + rest[i, kk - 1, 1] * g1 + rest[i, kk - 1, 2] * g2
                gdx += gb * np.float32(bx[kk])
                gdy += gb * np.float32(by[kk])
                gdz += gb * np.float32(bz[kk])
        dot = x * gdx + y * gdy + z * gdz
        gmeans[i, 0] = pm[0] + (gdx - x * dot) / ln  # the projection's and the colour's
        gmeans[i, 1] = pm[1] + (gdy - y * dot) / ln
        gmeans[i, 2] = pm[2] + (gdz - z * dot) / ln
