"""Numba projection step (means -> 2D means, EWA conic, depth, radius) with a hand-written backward.

Same maths as rasterize.preprocess's PyTorch path (which the `reference` backend uses, and which the tests
compare against): p = R m + t; EWA Jacobian with the 1.3x frustum clamp; cov2d = (J R Rq S)(J R Rq S)^T + 0.3 I;
conic = inverse(cov2d) stored as (a, b, c) with power = -0.5 (a dx^2 + c dy^2) - b dx dy.
"""
import math

import numba
import numpy as np
import torch
from numba import njit, prange

NEAR_PLANE = 0.2
LOWPASS = 0.3


def _scratch(n):
    """Per-thread scratch rows of at least n float64 (row numba.get_thread_id() inside prange) for the
    kernels' small vectors and matrices, which allocated inside the loop cost a heap allocation per
    Gaussian.  Rows are padded 512 bytes apart so that no cache line is shared between threads."""
    return np.empty((numba.config.NUMBA_NUM_THREADS, n + 64))


@njit(inline="always")
def _quat_rot(qw, qx, qy, qz, R):
    qw = float(qw)
    qx = float(qx)
    qy = float(qy)
    qz = float(qz)
    n = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    w = qw / n
    x = qx / n
    y = qy / n
    z = qz / n
    R[0, 0] = 1 - 2 * (y * y + z * z)
    R[0, 1] = 2 * (x * y - w * z)
    R[0, 2] = 2 * (x * z + w * y)
    R[1, 0] = 2 * (x * y + w * z)
    R[1, 1] = 1 - 2 * (x * x + z * z)
    R[1, 2] = 2 * (y * z - w * x)
    R[2, 0] = 2 * (x * z - w * y)
    R[2, 1] = 2 * (y * z + w * x)
    R[2, 2] = 1 - 2 * (x * x + y * y)
    return n, w, x, y, z


@njit(parallel=True, cache=True)
def _project_fwd(means, log_scales, quats, V, fx, fy, cx, cy, W, H, lim, out2d, conic, depth, radii, TMs, scr):
    """Inputs in any float dtype, maths in float64, outputs in the arrays' dtypes; scr: _scratch(12)."""
    N = means.shape[0]
    for i in prange(N):
        w = scr[numba.get_thread_id()]
        Rq = w[:9].reshape((3, 3))
        T0 = w[9:12]
        mxw = means[i, 0]
        myw = means[i, 1]
        mzw = means[i, 2]
        x = V[0, 0] * mxw + V[0, 1] * myw + V[0, 2] * mzw + V[0, 3]
        y = V[1, 0] * mxw + V[1, 1] * myw + V[1, 2] * mzw + V[1, 3]
        z = V[2, 0] * mxw + V[2, 1] * myw + V[2, 2] * mzw + V[2, 3]
        depth[i] = z if z > NEAR_PLANE else 1.0
        radii[i] = 0
        if not (z > NEAR_PLANE):
            out2d[i, 0] = 0.0
            out2d[i, 1] = 0.0
            conic[i, 0] = 0.0
            conic[i, 1] = 0.0
            conic[i, 2] = 0.0
            continue
        iz = 1.0 / z
        txtz = min(max(x * iz, lim[0]), lim[1])
        tytz = min(max(y * iz, lim[2]), lim[3])
        J00 = fx * iz
        J02 = -fx * txtz * iz
        J11 = fy * iz
        J12 = -fy * tytz * iz
        _quat_rot(quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3], Rq)
        s0 = math.exp(float(log_scales[i, 0]))
        s1 = math.exp(float(log_scales[i, 1]))
        s2 = math.exp(float(log_scales[i, 2]))
        # T = J V[:3,:3]; TM = T Rq diag(s)  (row 0 of T in T0, row 1 computed on the fly)
        for k in range(3):
            T0[k] = J00 * V[0, k] + J02 * V[2, k]
        for jj in range(3):
            sj = s0 if jj == 0 else (s1 if jj == 1 else s2)
            t1 = 0.0
            for k in range(3):
                t1 += (J11 * V[1, k] + J12 * V[2, k]) * Rq[k, jj]
            TMs[i, 0, jj] = (T0[0] * Rq[0, jj] + T0[1] * Rq[1, jj] + T0[2] * Rq[2, jj]) * sj
            TMs[i, 1, jj] = t1 * sj
        a = TMs[i, 0, 0] ** 2 + TMs[i, 0, 1] ** 2 + TMs[i, 0, 2] ** 2 + LOWPASS
        b = TMs[i, 0, 0] * TMs[i, 1, 0] + TMs[i, 0, 1] * TMs[i, 1, 1] + TMs[i, 0, 2] * TMs[i, 1, 2]
        c = TMs[i, 1, 0] ** 2 + TMs[i, 1, 1] ** 2 + TMs[i, 1, 2] ** 2 + LOWPASS
        det = a * c - b * b
        u = fx * x * iz + cx - 0.5
        v = fy * y * iz + cy - 0.5
        out2d[i, 0] = u
        out2d[i, 1] = v
        if not (det > 0):
            conic[i, 0] = 0.0
            conic[i, 1] = 0.0
            conic[i, 2] = 0.0
            continue
        conic[i, 0] = c / det
        conic[i, 1] = -b / det
        conic[i, 2] = a / det
        mid = 0.5 * (a + c)
        lam1 = mid + math.sqrt(max(mid * mid - det, 0.1))
        r = math.ceil(3.0 * math.sqrt(lam1))
        if u + r >= 0 and u - r <= W - 1 and v + r >= 0 and v - r <= H - 1 and abs(u) < 1e9 and abs(v) < 1e9:
            radii[i] = int(r)


@njit(parallel=True, cache=True)
def _project_bwd(means, log_scales, quats, V, fx, fy, lim, conic, radii, TMs, g2d, gcon, gmeans, gls, gq, scr):
    """scr: _scratch(36)."""
    N = means.shape[0]
    for i in prange(N):
        wk = scr[numba.get_thread_id()]
        Rq = wk[0:9].reshape((3, 3))
        G = wk[9:18].reshape((3, 3))  # dL/dRq
        s = wk[18:21]
        gTM0 = wk[21:24]
        gTM1 = wk[24:27]
        T0 = wk[27:30]
        T1 = wk[30:33]
        gT0 = wk[33:36]
        gT1 = wk[36:39]
        gmeans[i, 0] = 0.0
        gmeans[i, 1] = 0.0
        gmeans[i, 2] = 0.0
        gls[i, 0] = 0.0
        gls[i, 1] = 0.0
        gls[i, 2] = 0.0
        gq[i, 0] = 0.0
        gq[i, 1] = 0.0
        gq[i, 2] = 0.0
        gq[i, 3] = 0.0
        if radii[i] <= 0:
            continue
        mxw = means[i, 0]
        myw = means[i, 1]
        mzw = means[i, 2]
        x = V[0, 0] * mxw + V[0, 1] * myw + V[0, 2] * mzw + V[0, 3]
        y = V[1, 0] * mxw + V[1, 1] * myw + V[1, 2] * mzw + V[1, 3]
        z = V[2, 0] * mxw + V[2, 1] * myw + V[2, 2] * mzw + V[2, 3]
        iz = 1.0 / z
        rx = x * iz
        ry = y * iz
        clx = rx < lim[0] or rx > lim[1]
        cly = ry < lim[2] or ry > lim[3]
        txtz = min(max(rx, lim[0]), lim[1])
        tytz = min(max(ry, lim[2]), lim[3])
        J00 = fx * iz
        J02 = -fx * txtz * iz
        J11 = fy * iz
        J12 = -fy * tytz * iz
        qn, w, qx, qy, qz = _quat_rot(quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3], Rq)
        s[0] = math.exp(float(log_scales[i, 0]))
        s[1] = math.exp(float(log_scales[i, 1]))
        s[2] = math.exp(float(log_scales[i, 2]))
        TM0 = TMs[i, 0]
        TM1 = TMs[i, 1]
        a = TM0[0] ** 2 + TM0[1] ** 2 + TM0[2] ** 2 + LOWPASS
        b = TM0[0] * TM1[0] + TM0[1] * TM1[1] + TM0[2] * TM1[2]
        c = TM1[0] ** 2 + TM1[1] ** 2 + TM1[2] ** 2 + LOWPASS
        D = a * c - b * b
        D2 = D * D
        gA = gcon[i, 0]
        gB = gcon[i, 1]
        gC = gcon[i, 2]
        ga = (-gA * c * c + gB * b * c - gC * b * b) / D2
        gb = gA * 2.0 * b * c / D2 + gB * (-1.0 / D - 2.0 * b * b / D2) + gC * 2.0 * a * b / D2
        gc = (-gA * b * b + gB * a * b - gC * a * a) / D2
        # d cov / d TM
        for k in range(3):
            gTM0[k] = 2.0 * ga * TM0[k] + gb * TM1[k]
            gTM1[k] = gb * TM0[k] + 2.0 * gc * TM1[k]
        # TM = T M, M = Rq diag(s): gT = gTM M^T, gM = T^T gTM
        for k in range(3):
            T0[k] = J00 * V[0, k] + J02 * V[2, k]
            T1[k] = J11 * V[1, k] + J12 * V[2, k]
            gT0[k] = 0.0
            gT1[k] = 0.0
        for r in range(3):
            for jj in range(3):
                Mrj = Rq[r, jj] * s[jj]
                gT0[r] += gTM0[jj] * Mrj
                gT1[r] += gTM1[jj] * Mrj
                gM = T0[r] * gTM0[jj] + T1[r] * gTM1[jj]
                G[r, jj] = gM * s[jj]
                gls[i, jj] += gM * Rq[r, jj] * s[jj]
        # quaternion (normalised) backward
        gw = 2.0 * (-qz * G[0, 1] + qy * G[0, 2] + qz * G[1, 0] - qx * G[1, 2] - qy * G[2, 0] + qx * G[2, 1])
        gx = 2.0 * (qy * G[0, 1] + qz * G[0, 2] + qy * G[1, 0] - 2 * qx * G[1, 1] - w * G[1, 2] + qz * G[2, 0]
                    + w * G[2, 1] - 2 * qx * G[2, 2])
        gy = 2.0 * (-2 * qy * G[0, 0] + qx * G[0, 1] + w * G[0, 2] + qx * G[1, 0] + qz * G[1, 2] - w * G[2, 0]
                    + qz * G[2, 1] - 2 * qy * G[2, 2])
        gz = 2.0 * (-2 * qz * G[0, 0] - w * G[0, 1] + qx * G[0, 2] + w * G[1, 0] - 2 * qz * G[1, 1]
                    + qy * G[1, 2] + qx * G[2, 0] + qy * G[2, 1])
        dot = w * gw + qx * gx + qy * gy + qz * gz
        gq[i, 0] = (gw - w * dot) / qn
        gq[i, 1] = (gx - qx * dot) / qn
        gq[i, 2] = (gy - qy * dot) / qn
        gq[i, 3] = (gz - qz * dot) / qn
        # T = J Rv: gJ = gT Rv^T (only the non-zero entries of J)
        gJ00 = gT0[0] * V[0, 0] + gT0[1] * V[0, 1] + gT0[2] * V[0, 2]
        gJ02 = gT0[0] * V[2, 0] + gT0[1] * V[2, 1] + gT0[2] * V[2, 2]
        gJ11 = gT1[0] * V[1, 0] + gT1[1] * V[1, 1] + gT1[2] * V[1, 2]
        gJ12 = gT1[0] * V[2, 0] + gT1[1] * V[2, 1] + gT1[2] * V[2, 2]
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
        gu = g2d[i, 0]
        gv = g2d[i, 1]
        gpx += gu * fx * iz
        gpy += gv * fy * iz
        gpz += -gu * fx * x * iz2 - gv * fy * y * iz2
        for k in range(3):
            gmeans[i, k] = V[0, k] * gpx + V[1, k] * gpy + V[2, k] * gpz


def _arr(t):
    """A tensor's data as a numpy array without copying when it is already a CPU array numba can read."""
    a = t.detach()
    if a.device.type != "cpu":
        a = a.cpu()
    return a.numpy()


class ProjectCPU(torch.autograd.Function):
    """Inputs and outputs keep the parameters' dtype (float32 in training); the kernels compute in float64."""

    @staticmethod
    def forward(ctx, means, log_scales, quats, viewmat, fx, fy, cx, cy, W, H, lim):
        m, ls, q = _arr(means), _arr(log_scales), _arr(quats)
        V = viewmat.detach().double().cpu().numpy()
        n = m.shape[0]
        dt = m.dtype
        out2d = np.empty((n, 2), dt)
        con = np.empty((n, 3), dt)
        depth = np.empty(n, dt)
        radii = np.empty(n, np.int32)
        TMs = np.empty((n, 2, 3))
        limv = np.asarray(lim, np.float64)
        _project_fwd(m, ls, q, V, fx, fy, cx, cy, W, H, limv, out2d, con, depth, radii, TMs, _scratch(12))
        ctx.save = (m, ls, q, V, fx, fy, limv, con, radii, TMs)
        r = torch.from_numpy(radii)
        d = torch.from_numpy(depth)
        ctx.mark_non_differentiable(r, d)
        return torch.from_numpy(out2d), torch.from_numpy(con), d, r

    @staticmethod
    def backward(ctx, g2d, gcon, _gd, _gr):
        m, ls, q, V, fx, fy, limv, con, radii, TMs = ctx.save
        n = m.shape[0]
        dt = m.dtype
        gm = np.empty((n, 3), dt)
        gl = np.empty((n, 3), dt)
        gq = np.empty((n, 4), dt)
        g2 = np.zeros((n, 2), dt) if g2d is None else _arr(g2d)
        gc = np.zeros((n, 3), dt) if gcon is None else _arr(gcon)
        _project_bwd(m, ls, q, V, fx, fy, limv, con, radii, TMs, g2, gc, gm, gl, gq, _scratch(39))
        return (torch.from_numpy(gm), torch.from_numpy(gl), torch.from_numpy(gq), None, None,
                None, None, None, None, None, None)


def project_cpu(means, log_scales, quats, cam):
    W, H = cam.width, cam.height
    lim = (-1.3 * (cam.cx / cam.fx), 1.3 * ((W - cam.cx) / cam.fx), -1.3 * (cam.cy / cam.fy),
           1.3 * ((H - cam.cy) / cam.fy))
    return ProjectCPU.apply(means, log_scales, quats, cam.viewmat, float(cam.fx), float(cam.fy), float(cam.cx),
                            float(cam.cy), int(W), int(H), lim)


# ----------------------------------------------------------------------------- SH -> RGB (numba, forward + backward)
_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
       -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


_C2_0 = _C2[0]
_C2_1 = _C2[1]
_C2_2 = _C2[2]
_C2_3 = _C2[3]
_C2_4 = _C2[4]
_C3_0 = _C3[0]
_C3_1 = _C3[1]
_C3_2 = _C3[2]
_C3_3 = _C3[3]
_C3_4 = _C3[4]
_C3_5 = _C3[5]
_C3_6 = _C3[6]


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


@njit(parallel=True, cache=True)
def _sh_fwd(means, dc, rest, deg, cam, out):
    """dc (N, 1, 3) and rest (N, R, 3) coefficients (any strides), the first (deg + 1)^2 used; float64 maths."""
    N = means.shape[0]
    K = (deg + 1) ** 2
    for i in prange(N):
        dx = float(means[i, 0]) - cam[0]
        dy = float(means[i, 1]) - cam[1]
        dz = float(means[i, 2]) - cam[2]
        ln = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        b, _, _, _ = _sh_basis(dx / ln, dy / ln, dz / ln)
        for ch in range(3):
            acc = b[0] * float(dc[i, 0, ch])
            for k in range(1, 16):
                if k < K:
                    acc += b[k] * float(rest[i, k - 1, ch])
            out[i, ch] = max(acc + 0.5, 0.0)


@njit(parallel=True, cache=True)
def _sh_bwd(means, dc, rest, deg, cam, out, gcol, gmeans, gdc, grest):
    """grest rows past (deg + 1)^2 - 1 coefficients are left as they are (the caller zeroes them)."""
    N = means.shape[0]
    K = (deg + 1) ** 2
    for i in prange(N):
        dx = float(means[i, 0]) - cam[0]
        dy = float(means[i, 1]) - cam[1]
        dz = float(means[i, 2]) - cam[2]
        ln = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        x = dx / ln
        y = dy / ln
        z = dz / ln
        b, bx, by, bz = _sh_basis(x, y, z)
        g0 = float(gcol[i, 0]) if out[i, 0] > 0 else 0.0
        g1 = float(gcol[i, 1]) if out[i, 1] > 0 else 0.0
        g2 = float(gcol[i, 2]) if out[i, 2] > 0 else 0.0
        gdc[i, 0, 0] = b[0] * g0
        gdc[i, 0, 1] = b[0] * g1
        gdc[i, 0, 2] = b[0] * g2
        gdx = 0.0
        gdy = 0.0
        gdz = 0.0
        for k in range(1, 16):
            if k < K:
                grest[i, k - 1, 0] = b[k] * g0
                grest[i, k - 1, 1] = b[k] * g1
                grest[i, k - 1, 2] = b[k] * g2
                gb = float(rest[i, k - 1, 0]) * g0 + float(rest[i, k - 1, 1]) * g1 + float(rest[i, k - 1, 2]) * g2
                gdx += gb * bx[k]
                gdy += gb * by[k]
                gdz += gb * bz[k]
        dot = x * gdx + y * gdy + z * gdz
        gmeans[i, 0] = (gdx - x * dot) / ln
        gmeans[i, 1] = (gdy - y * dot) / ln
        gmeans[i, 2] = (gdz - z * dot) / ln


class SHColorCPU(torch.autograd.Function):
    """Colours from SH coefficients given as dc (N, 1, 3) and rest (N, R, 3), so the model's two parameter
    tensors are read in place (no concatenation and no split of the gradient)."""

    @staticmethod
    def forward(ctx, means, dc, rest, campos, deg):
        m, d, r = _arr(means), _arr(dc), _arr(rest)
        cam = np.asarray(campos, np.float64)
        out = np.empty((m.shape[0], 3), m.dtype)
        _sh_fwd(m, d, r, int(deg), cam, out)
        ctx.save = (m, d, r, cam, int(deg), out)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, gcol):
        m, d, r, cam, deg, out = ctx.save
        gm = np.empty_like(m)
        gd = np.empty(d.shape, d.dtype)
        nr = (deg + 1) ** 2 - 1
        gr = np.empty(r.shape, r.dtype) if nr == r.shape[1] else np.zeros(r.shape, r.dtype)
        _sh_bwd(m, d, r, deg, cam, out, _arr(gcol), gm, gd, gr)
        return torch.from_numpy(gm), torch.from_numpy(gd), torch.from_numpy(gr), None, None


def sh_colors_cpu(means, sh, campos, deg, rest=None):
    """max(SH(deg, normalize(mean - campos)) + 0.5, 0).  Either sh (N, K, 3) with K >= (deg+1)^2, or the
    model's f_dc (N, 1, 3) as `sh` and its f_rest (N, R, 3) as `rest`."""
    if rest is None:
        sh, rest = sh[:, :1], sh[:, 1:]
    if rest.shape[1] < (deg + 1) ** 2 - 1:
        raise ValueError(f"SH degree {deg} needs {(deg + 1) ** 2} coefficients, got {rest.shape[1] + 1}")
    return SHColorCPU.apply(means, sh, rest, tuple(float(v) for v in campos), int(deg))
