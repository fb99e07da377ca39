"""CPU (numba, tile-based) rasteriser vs the dense PyTorch reference; reference vs finite differences."""
import numpy as np
import pytest
import torch
from gs_testlib import look_at, random_gaussians
from gstrain.rasterize import RenderCamera, render

PARAMS = ("means", "log_scales", "quats", "opacity_logits", "sh")


def _camera(W, H, dtype, seed):
    rng = np.random.default_rng(seed)
    ang = rng.uniform(0, 2 * np.pi)
    C = np.array([3.2 * np.cos(ang), 3.2 * np.sin(ang), rng.uniform(-0.5, 1.0)])
    R, t = look_at(C, target=rng.normal(0, 0.1, 3))
    V = np.eye(4)
    V[:3, :3] = R
    V[:3, 3] = t
    return RenderCamera(torch.tensor(V, dtype=dtype), 0.9 * W, 0.95 * W, W / 2 + 1.3, H / 2 - 0.7, W, H)


def _run(backend, dtype, n, deg, seed, W=64, H=48, bg=(0.1, 0.2, 0.3)):
    g = random_gaussians(n, seed, deg, torch.float64)
    for k in PARAMS:
        setattr(g, k, getattr(g, k).to(dtype).requires_grad_(True))
    cam = _camera(W, H, dtype, seed)
    out = render(g, cam, torch.tensor(bg, dtype=dtype), backend=backend, sh_degree=deg)
    img = out["image"]
    w = torch.randn(img.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64).to(dtype)
    (img * w).sum().backward()
    m2 = out["means2d"].grad.detach().double()
    return img.detach().double(), {k: getattr(g, k).grad.detach().double() for k in PARAMS}, m2, out["idx"]


def _rel(a, b):
    return float((a - b).norm() / max(float(b.norm()), 1e-12))


@pytest.mark.parametrize("n,deg,seed", [(20, 0, 0), (60, 3, 1), (120, 0, 2), (200, 3, 3), (200, 1, 4), (150, 2, 5)])
def test_cpu_matches_reference(n, deg, seed):
    img_r, gr, m2_r, idx_r = _run("reference", torch.float64, n, deg, seed)
    img_c, gc, m2_c, idx_c = _run("cpu", torch.float32, n, deg, seed)
    assert img_r.abs().sum() > 0
    assert (img_c - img_r).abs().max() < 1e-4
    assert _rel(img_c, img_r) < 1e-4
    for k in PARAMS:
        assert gr[k].abs().sum() > 0, k
        assert _rel(gc[k], gr[k]) < 1e-3, (k, _rel(gc[k], gr[k]))
    # view-space (2D) mean gradients used by densification
    assert torch.equal(idx_r, idx_c)
    assert _rel(m2_c, m2_r) < 1e-3


def test_cpu_white_background_and_empty():
    img_c, *_ = _run("cpu", torch.float32, 30, 0, 7, bg=(1.0, 1.0, 1.0))
    img_r, *_ = _run("reference", torch.float64, 30, 0, 7, bg=(1.0, 1.0, 1.0))
    assert _rel(img_c, img_r) < 1e-4
    # all Gaussians behind the camera -> pure background, zero gradients
    g = random_gaussians(10, 0, 0, torch.float32)
    g.means = (g.means + torch.tensor([0.0, 0.0, 50.0])).requires_grad_(True)
    V = torch.eye(4)
    V[2, 2] = -1.0
    V[0, 0] = -1.0
    cam = RenderCamera(V, 30.0, 30.0, 16.0, 12.0, 32, 24)
    out = render(g, cam, torch.tensor([0.2, 0.4, 0.6]), backend="cpu", sh_degree=0)
    assert torch.allclose(out["image"], torch.tensor([0.2, 0.4, 0.6])[:, None, None].expand(3, 24, 32))


def test_high_opacity_saturation_and_early_stop():
    """Opaque Gaussians stacked in depth exercise the 0.99 clamp and the T < 1e-4 early stop."""
    g = random_gaussians(80, 11, 0, torch.float64)
    g.opacity_logits = g.opacity_logits * 0 + 8.0
    g.log_scales = g.log_scales + 0.7
    res = {}
    for backend, dtype in (("reference", torch.float64), ("cpu", torch.float32)):
        gg = random_gaussians(1, 0)
        for k in PARAMS:
            setattr(gg, k, getattr(g, k).to(dtype).clone().requires_grad_(True))
        cam = _camera(48, 40, dtype, 3)
        out = render(gg, cam, torch.zeros(3, dtype=dtype), backend=backend, sh_degree=0)
        w = torch.randn(out["image"].shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        (out["image"] * w.to(dtype)).sum().backward()
        res[backend] = (out["image"].detach().double(), {k: getattr(gg, k).grad.double() for k in PARAMS})
    assert _rel(res["cpu"][0], res["reference"][0]) < 1e-4
    for k in PARAMS:
        assert _rel(res["cpu"][1][k], res["reference"][1][k]) < 1e-3, k


@pytest.mark.parametrize("deg", [0, 3])
def test_reference_gradients_finite_differences(deg):
    """Directional finite differences (float64) confirm the reference rasteriser's autograd gradients."""
    n, W, H = 12, 20, 16
    g = random_gaussians(n, 21 + deg, deg, torch.float64)
    cam = _camera(W, H, torch.float64, 5)
    bg = torch.tensor([0.1, 0.3, 0.2], dtype=torch.float64)
    wimg = torch.randn(3, H, W, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def f(params):
        gg = random_gaussians(1, 0)
        for k, v in zip(PARAMS, params, strict=False):
            setattr(gg, k, v)
        return (render(gg, cam, bg, backend="reference", sh_degree=deg)["image"] * wimg).sum()

    base = [getattr(g, k).clone().requires_grad_(True) for k in PARAMS]
    f(base).backward()
    gen = torch.Generator().manual_seed(9)
    eps = 1e-6
    for i, k in enumerate(PARAMS):
        for _ in range(2):
            v = torch.randn(base[i].shape, generator=gen, dtype=torch.float64)
            plus = [p.detach().clone() for p in base]
            minus = [p.detach().clone() for p in base]
            plus[i] += eps * v
            minus[i] -= eps * v
            with torch.no_grad():
                fd = (f(plus) - f(minus)) / (2 * eps)
            an = (base[i].grad * v).sum()
            assert abs(float(fd - an)) <= 1e-5 * max(1.0, abs(float(an))), (k, float(fd), float(an))


def _kernel_camera(cam):
    V = cam.viewmat.detach().double().numpy()
    return tuple(float(v) for v in V[:3].reshape(12)), cam.frustum_limits


def _f32(t):
    """The kernels' input: a C-contiguous float32 array."""
    return np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)


def _prepared(m, ls, q, dc, rest, deg, V, lim, campos, fx, fy, cx, cy, W, H, opac=0.9):
    """project_cpu._prepare's outputs: packed rows, boxes, depths, radii, visibility (and its 2D means, checked
    against the rows')."""
    from gstrain import project_cpu as P
    n = len(m)
    out = (np.zeros((n, P.NF), np.float32), np.zeros((n, 4), np.int32), np.zeros(n, np.float32),
           np.zeros(n, np.int32), np.zeros(n, np.bool_))
    m2d = np.zeros((n, 2), np.float32)
    P._prepare(m, ls, q, np.full(n, opac, np.float32), dc, rest, deg, np.asarray(V, np.float64), fx, fy, cx, cy, W,
               H, np.asarray(lim, np.float64), np.asarray(campos, np.float64), *out, m2d)
    assert np.array_equal(m2d, out[0][:, :2])  # the 2D means, also where not visible
    return out


def _param_grads(visible, sums, m, ls, q, rest, deg, V, lim, campos, fx, fy):
    """project_cpu._param_grads' outputs: d loss / d means, log-scales, quaternions, opacities, dc, rest, 2D means."""
    from gstrain import project_cpu as P
    n = len(m)
    out = (np.zeros((n, 3), np.float32), np.zeros((n, 3), np.float32), np.zeros((n, 4), np.float32),
           np.zeros(n, np.float32), np.zeros((n, 1, 3), np.float32), np.zeros(rest.shape, np.float32),
           np.zeros((n, 2), np.float32))
    P._param_grads(visible, np.ascontiguousarray(sums, np.float32), m, ls, q, rest, deg, np.asarray(V, np.float64),
                   fx, fy, np.asarray(lim, np.float64), np.asarray(campos, np.float64), *out)
    return out


def _rows_close(got, want, tol):
    """Row by row: |got - want| <= tol x the row's largest |want| (float32 kernels against float64 autograd)."""
    want = want.reshape(len(want), -1)
    got = got.reshape(len(got), -1).astype(np.float64)
    scale = np.abs(want).max(1, keepdims=True) + 1e-12
    return float((np.abs(got - want) / scale).max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numba_projection_matches_torch(seed):
    """project_cpu's projection (numba, float32 lanes, hand-written backward) vs the autograd PyTorch projection
    in float64, including Gaussians behind the near plane and off-screen ones inside the 1.3x clamp margin (large
    scales): the render's radii and 2D means, the packed rows' conics, and the backward from 2D mean and conic
    gradients to the parameters."""
    from gstrain.rasterize import preprocess
    from gstrain.render_cpu import render_cpu
    n = 300
    g = random_gaussians(n, seed, 0, torch.float64, extent=3.0)
    g.log_scales = g.log_scales + 0.8
    cam = _camera(64, 48, torch.float64, seed)
    params = [getattr(g, k).clone().requires_grad_(True) for k in ("means", "log_scales", "quats")]
    pt = preprocess(params[0], params[1], params[2], g.opacity_logits, g.sh, cam, 0)
    w1 = torch.randn(pt["means2d"].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w2 = torch.randn(pt["conics"].shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    vis = pt["radii"] > 0
    visf = vis.to(torch.float64)[:, None]
    ((pt["means2d"] * w1 * visf).sum() + (pt["conics"] * w2 * visf).sum()).backward()
    assert 20 < int(vis.sum()) < n  # some culled, some visible
    # the fused render's forward: the same radii, and the rasteriser's float32 2D means
    opac = torch.full((n,), 0.9, dtype=torch.float64)
    with torch.no_grad():
        _, m2d, radii = render_cpu(g.means, g.log_scales, g.quats, opac, g.sh[:, :1], g.sh[:, 1:], cam, 0,
                                   torch.zeros(3))
    assert torch.equal(pt["radii"], radii)
    assert torch.allclose(m2d[vis].double(), pt["means2d"][vis].detach(), rtol=1e-6, atol=1e-4)
    # the packed rows' conics, and the backward, in float32
    V, lim = _kernel_camera(cam)
    fx, fy = float(cam.fx), float(cam.fy)
    m, ls, q = _f32(g.means), _f32(g.log_scales), _f32(g.quats)
    dc, rest = _f32(g.sh[:, :1]), np.zeros((n, 0, 3), np.float32)
    campos = cam.campos.detach().double().numpy()
    pre, _, _, _, _ = _prepared(m, ls, q, dc, rest, 0, V, lim, campos, fx, fy, float(cam.cx), float(cam.cy), 64, 48)
    v = vis.numpy()
    assert _rows_close(pre[v, 2:5], pt["conics"][vis].detach().numpy(), 1e-4) < 1e-4
    sums = np.zeros((n, 9))
    sums[:, 0:2] = w1.numpy()
    sums[:, 2:5] = w2.numpy()
    gm, gl, gq, _, _, _, g2d = _param_grads(v, sums, m, ls, q, rest, 0, V, lim, campos, fx, fy)
    for got, p in zip((gm, gl, gq), params, strict=True):
        assert _rows_close(got[v], p.grad[vis].numpy(), 1e-3) < 1e-3
        assert not got[~v].any()  # the Gaussians the image does not see get no gradient
    assert np.array_equal(g2d[v], sums[v, 0:2].astype(np.float32))


@pytest.mark.parametrize("deg", [0, 1, 2, 3])
def test_numba_sh_colors_match_torch(deg):
    """project_cpu's SH colour (forward in the render's packed rows, backward in _param_grads, both in float32
    as the reference's) vs PyTorch's eval_sh with autograd in float64, with clamped channels."""
    from gstrain.sh import eval_sh
    n = 200
    g = random_gaussians(n, 40 + deg, 3, torch.float64)
    campos = np.array([0.3, -2.0, 1.5])
    w = torch.randn(n, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    m = g.means.clone().requires_grad_(True)
    sh = g.sh.clone().requires_grad_(True)
    d = m - torch.tensor(campos)
    d = d / d.norm(dim=-1, keepdim=True)
    col = torch.clamp_min(eval_sh(deg, sh[:, :(deg + 1) ** 2], d) + 0.5, 0.0)
    (col * w).sum().backward()
    assert (col == 0).any() and (col > 0).any()  # clamping exercised
    # forward: a camera looking at the points from campos, everything in front of it and on screen
    R, t = look_at(campos, target=g.means.mean(0).numpy())
    V = np.concatenate([R, t[:, None]], 1).reshape(12)
    lim = (-100.0, 100.0, -100.0, 100.0)
    mm, ls, q = _f32(g.means), _f32(g.log_scales), _f32(g.quats)
    dc, rest = _f32(g.sh[:, :1]), _f32(g.sh[:, 1:])
    pre, _, _, _, visible = _prepared(mm, ls, q, dc, rest, deg, V, lim, campos, 2.0, 2.0, 5000.0, 5000.0, 10000,
                                      10000)
    assert visible.all()
    assert np.allclose(pre[:, 6:9], col.detach().numpy(), rtol=1e-5, atol=1e-5)
    # backward: colour gradients only (zero for clamped channels, as _entry_sums gives them)
    sums = np.zeros((n, 9))
    sums[:, 6:9] = np.where(pre[:, 6:9] > 0, w.numpy(), 0.0)
    gm, _, _, _, gdc, grest, _ = _param_grads(visible, sums, mm, ls, q, rest, deg, V, lim, campos, 2.0, 2.0)
    K = (deg + 1) ** 2
    m_grad = np.zeros((n, 3)) if m.grad is None else m.grad.numpy()  # degree 0 does not depend on the mean
    assert np.allclose(gm, m_grad, rtol=1e-4, atol=1e-5)
    assert np.allclose(gdc, sh.grad[:, :1].numpy(), rtol=1e-6, atol=1e-7)
    # the basis in float32 from float32 directions: the third band's cubics lose a few more bits
    assert np.allclose(grest[:, :K - 1], sh.grad[:, 1:K].numpy(), rtol=1e-5, atol=1e-6)


def test_the_other_lane_width_matches_the_reference(tmp_path):
    """The rasteriser's strips and the fused loss's blur blocks are 16 lanes on a CPU with AVX-512 and 8
    elsewhere (gstrain/simd.py); the width this machine does not pick is checked here in a process of its own, with a fresh numba cache (the
    on-disk cache does not see the lane constant)."""
    import os
    import subprocess
    import sys

    from gstrain.simd import NL
    other = 8 if NL == 16 else 16
    here = os.path.dirname(__file__)
    gs = os.path.join(here, "..", "..", "gaussian-splatting")
    code = (f"import sys; sys.path[:0] = [{here!r}, {gs!r}]\n"
            "import test_rasterizer as t\n"
            f"from gstrain.simd import NL; assert NL == {other}, NL\n"
            "for n, deg, seed in [(60, 3, 1), (200, 1, 4)]:\n"
            "    img_r, gr, _, _ = t._run('reference', t.torch.float64, n, deg, seed, W=70, H=50)\n"
            "    img_c, gc, _, _ = t._run('cpu', t.torch.float32, n, deg, seed, W=70, H=50)\n"
            "    assert t._rel(img_c, img_r) < 1e-4\n"
            "    for k in t.PARAMS: assert t._rel(gc[k], gr[k]) < 1e-3, k\n"
            # the fused loss's blurs step by the lane width too (an odd width leaves a partial block)
            "from gstrain.losses import fused_train_loss, train_loss\n"
            "g = t.torch.Generator().manual_seed(3)\n"
            "x = t.torch.rand(3, 37, 53, generator=g, requires_grad=True); y = t.torch.rand(3, 37, 53, generator=g)\n"
            "a = fused_train_loss(x, y); a.backward(); ga = x.grad.clone(); x.grad = None\n"
            "b = train_loss(x, y); b.backward()\n"
            "assert abs(float(a) - float(b)) < 1e-5 and t._rel(ga.double(), x.grad.double()) < 1e-4\n"
            "print('ok')\n")
    env = dict(os.environ, GSTRAIN_SIMD_LANES=str(other), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]


def _culling_inputs(seed, W=200, H=120, n=400):
    """2D Gaussians of every shape the culling must handle: round, long and thin at every angle (down to the
    0.3 px^2 low-pass floor), large and faint, small and opaque, partly off screen."""
    rng = np.random.default_rng(seed)
    means2d = np.stack([rng.uniform(-20, W + 20, n), rng.uniform(-20, H + 20, n)], 1).astype(np.float32)
    ang = rng.uniform(0, np.pi, n)
    s_long = np.exp(rng.uniform(np.log(0.5), np.log(80.0), n))
    s_short = s_long / np.exp(rng.uniform(0, np.log(300.0), n))
    c, s = np.cos(ang), np.sin(ang)
    cov = np.empty((n, 2, 2))
    cov[:, 0, 0] = c * c * s_long ** 2 + s * s * s_short ** 2 + 0.3
    cov[:, 1, 1] = s * s * s_long ** 2 + c * c * s_short ** 2 + 0.3
    cov[:, 0, 1] = cov[:, 1, 0] = c * s * (s_long ** 2 - s_short ** 2)
    inv = np.linalg.inv(cov)
    conics = np.stack([inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 1]], 1).astype(np.float32)
    opac = np.exp(rng.uniform(np.log(0.005), np.log(0.999), n)).astype(np.float32)
    lam = 0.5 * (cov[:, 0, 0] + cov[:, 1, 1]) + np.sqrt(np.maximum(
        0.25 * (cov[:, 0, 0] - cov[:, 1, 1]) ** 2 + cov[:, 0, 1] ** 2, 0.1))
    radii = np.ceil(3.0 * np.sqrt(lam)).astype(np.int32)
    return means2d, conics, opac, radii, rng.uniform(1, 10, n).astype(np.float32)


def _packed_rows(means2d, conics, opac, radii, W, H):
    """The rasteriser's packed rows, pixel boxes and visibility of 2D Gaussians, as project_cpu._prepare makes
    them (its own box function; white colours)."""
    from gstrain import project_cpu as P
    n = len(opac)
    pre = np.zeros((n, P.NF), np.float32)
    box = np.zeros((n, 4), np.int32)
    lo = np.zeros(n, np.float32)
    visible = np.zeros(n, np.bool_)
    c = [np.ascontiguousarray(conics[:, j]) for j in range(3)]
    P._boxes(np.ascontiguousarray(means2d[:, 0]), np.ascontiguousarray(means2d[:, 1]), *c, opac, W, H, box, lo,
             visible)
    visible &= radii > 0
    pre[:, 0:2] = means2d
    pre[:, 2:5] = conics
    pre[:, 5] = opac
    pre[:, 6:9] = 1.0
    pre[:, 9] = -lo
    return pre, box, visible


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tile_and_strip_culling_keeps_every_pixel_that_passes(seed):
    """The tile lists and the entries' strip masks leave out only (tile, strip) pairs where no pixel can pass the
    kernels' alpha test, and every pixel that passes lies in its Gaussian's pixel box (the kernels test no box
    per pixel): checked pixel by pixel with the kernels' own float32 power and threshold."""
    import numba
    from gstrain import binning
    from gstrain import project_cpu as P
    from gstrain import raster_cpu as R
    W, H = 200, 120
    means2d, conics, opac, radii, depth = _culling_inputs(seed, W, H)
    pre, box, visible = _packed_rows(means2d, conics, opac, radii, W, H)
    order = R._argsort_depth(np.flatnonzero(visible).astype(np.int32), depth, numba.get_num_threads())
    gp, gb = P._gather_rows(order, pre, box)
    tiles_x, tiles_y = (W + 15) // 16, (H + 15) // 16
    offsets, lists, smask, koff, where = binning._bin(gp, gb, tiles_x, tiles_y, numba.get_num_threads())
    members = {}
    for t in range(tiles_x * tiles_y):
        for e in range(offsets[t], offsets[t + 1]):
            members[(t, int(lists[e]))] = int(smask[e])
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    checked = 0
    box_pairs = 0
    for k in range(len(order)):
        mx, my, a, b, c = gp[k, :5]
        dx = np.float32(mx) - xs
        dy = np.float32(my) - ys
        pw = dx * dx * (np.float32(-0.5) * a) + (np.float32(-0.5) * c * dy * dy - b * dy * dx)
        inbox = (xs >= gb[k, 0]) & (xs <= gb[k, 1]) & (ys >= gb[k, 2]) & (ys <= gb[k, 3])
        passes = (pw >= gp[k, 9]) & (pw <= 0)  # the kernels' alpha test (_strip_ok)
        assert not (passes & ~inbox).any(), k
        for y, x in zip(*np.nonzero(passes), strict=True):
            t = (y // 16) * tiles_x + x // 16
            assert (t, k) in members, (k, x, y)
            strip = (x % 16) // R.NL * 16 + y % 16  # part (x % 16) // NL of row y % 16
            assert members[(t, k)] >> strip & 1, (k, x, y)
            checked += 1
        box_pairs += (gb[k, 3] - gb[k, 2] + 1) * ((gb[k, 1] // 16) - (gb[k, 0] // 16) + 1)
    assert checked > 10000
    # and the culling does cull: fewer (tile, strip) pairs than the pixel boxes' rows hold
    kept = sum(bin(m).count("1") for m in members.values())
    assert kept < 0.8 * box_pairs * R.HALVES, (kept, box_pairs)


def test_depth_sort_is_a_stable_argsort():
    """The parallel radix sort orders by depth and keeps ties in the given order, whatever the chunking."""
    from gstrain import raster_cpu as R
    rng = np.random.default_rng(5)
    for n in (0, 1, 7, 5000, 40_000):
        depths = rng.choice(np.float32([0.25, 1.5, 3.0, 7.0]), n) * rng.choice([1.0, 1.0001], n).astype(np.float32)
        idx = rng.permutation(n).astype(np.int32)
        got = R._argsort_depth(idx, depths, 3)  # 3 threads' worth of chunks: 12 above 45k elements
        want = idx[np.argsort(depths[idx], kind="stable")]
        assert np.array_equal(got, want), n


def test_the_kernels_exponential_is_within_3e_6_of_exp_on_its_range():
    """exp16, which both compositing kernels take alpha from, against float64 exp over [-8, 0] (every float32 step
    of 2^-18, both ends included; exp16 takes the power over 16)."""
    from gstrain import raster_cpu as R
    from gstrain.simd import NL, load, store
    from numba import njit

    @njit
    def run(x, out):
        for i in range(0, x.shape[0], NL):
            store(out, i, R.exp16(load(x, i) * np.float32(0.0625)))

    x = np.arange(-8 * 2 ** 18, NL, dtype=np.float64).astype(np.float32) / np.float32(2 ** 18)
    x = np.minimum(x, 0)
    out = np.empty_like(x)
    run(x, out)
    rel = np.abs(out / np.exp(x.astype(np.float64)) - 1)
    assert rel.max() < 3e-6, (rel.max(), x[rel.argmax()])
