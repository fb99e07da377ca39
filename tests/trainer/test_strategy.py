"""The MCMC strategy (gstrain/strategy.py): relocation keeps the count, moves no live Gaussian, and the pair
that shares a relocated Gaussian renders like it; growth stops at the budget."""
import numpy as np
import torch
from gstrain.cli import build_parser
from gstrain.model import GaussianModel
from gstrain.plan import make_plan
from gstrain.strategy import _BINOMS, MCMCStrategy, _position_noise, _relocation, position_noise_torch


def _model(n=300, seed=0, dead=0):
    m = GaussianModel(1)
    rng = np.random.default_rng(seed)
    m.create_from_points(rng.normal(size=(n, 3)), rng.integers(0, 255, (n, 3)), 1.0)
    m.setup_optimizer()
    with torch.no_grad():
        m.params["opacity_logits"][:] = torch.tensor(rng.uniform(-1, 3, (n, 1)), dtype=torch.float32)
        m.params["opacity_logits"][:dead] = -8.0  # opacity 0.0003: dead
    for k in m.params:  # some Adam state, to see what relocation resets
        m.optimizer.m[k].fill_(0.5)
        m.optimizer.v[k].fill_(0.25)
    return m


def _plan(budget, n=1000, **kw):
    args = build_parser().parse_args(["-s", "s", "-m", "m", "--max_gaussians", str(budget)])
    for k, v in kw.items():
        setattr(args, k, v)
    return make_plan(args, n)


def test_relocation_keeps_the_count_and_moves_no_live_gaussian():
    torch.manual_seed(0)
    m = _model(dead=40)
    before = {k: v.detach().clone() for k, v in m.params.items()}
    opac = torch.sigmoid(before["opacity_logits"]).reshape(-1)
    live = torch.nonzero(opac > 0.005).squeeze(1)
    s = MCMCStrategy(_plan(300), extent=2.0)
    moved = s.relocate(m)
    assert moved == 40 and m.num == 300
    after = {k: v.detach() for k, v in m.params.items()}
    # live Gaussians stay where they are with their colour and shape; only the sources chosen for the dead
    # ones share their opacity (and shrink) with their copies
    for k in ("means", "quats", "f_dc", "f_rest"):
        assert torch.equal(after[k][live], before[k][live]), k
    changed = torch.nonzero((after["opacity_logits"][live] != before["opacity_logits"][live]).reshape(-1)).squeeze(1)
    assert 0 < changed.numel() <= 40
    src = live[changed]
    assert torch.all(after["opacity_logits"][src] < before["opacity_logits"][src])
    assert torch.all(after["log_scales"][src] <= before["log_scales"][src] + 1e-6)
    # each dead slot now holds a copy of a live Gaussian (same position), none is dead any more
    dead_after = after["means"][:40]
    same = (dead_after[:, None, :] == after["means"][src][None, :, :]).all(dim=-1).any(dim=1)
    assert torch.all(same)
    assert torch.all(torch.sigmoid(after["opacity_logits"]) > 0.005)
    # the moved Gaussians and their sources start their Adam moments again; the others keep theirs
    untouched = torch.ones(300, dtype=torch.bool)
    untouched[:40] = False
    untouched[src] = False
    assert torch.all(m.optimizer.m["means"][~untouched] == 0)
    assert torch.all(m.optimizer.m["means"][untouched] == 0.5)


def test_growth_adds_five_percent_at_a_time_and_stops_at_the_budget():
    torch.manual_seed(1)
    m = _model(n=300)
    budget = 500
    s = MCMCStrategy(_plan(budget, n=400, refine_from_iter=0, refine_until_iter=400, refine_every=1,
                           coarse_to_fine=1), extent=2.0, initial_count=300)
    counts = []
    out = {"means2d": None}
    for it in range(1, 60):
        s.step_post_backward(it, m, out, None, lr_means=1e-4)
        counts.append(m.num)
        assert m.optimizer.m["means"].shape[0] == m.num == m.params["f_rest"].shape[0] == m.grad_accum.shape[0]
    assert counts[0] == 315  # +5 %
    assert max(counts) == budget == counts[-1]
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False))


def test_shared_opacity_and_scale_render_like_the_original():
    """N copies with o' = 1 - (1 - o)^(1/N) stacked at one point let as much light through as the
    original, and the scale rule keeps the integrated opacity (MCMC paper, eq. 9); ratio 1 changes nothing."""
    o = np.array([0.2, 0.6, 0.95, 0.6])
    s = np.ones((4, 3))
    r = np.array([1, 2, 3, 5], np.int64)
    no, ns = _relocation(o, s, r, _BINOMS)
    assert np.allclose(1 - (1 - no) ** r, o)
    assert np.isclose(no[0], 0.2) and np.allclose(ns[0], 1.0)
    assert np.all(ns[1:] < 1.0) and np.all(ns[1:] > 0.3)


def test_position_noise_moves_only_nearly_transparent_gaussians():
    torch.manual_seed(2)
    m = _model(n=200)
    with torch.no_grad():
        m.params["opacity_logits"][:50] = -6.0  # opacity 0.0025: gets noise
        m.params["opacity_logits"][50:] = 2.0  # 0.88: none
    before = m.params["means"].detach().clone()
    MCMCStrategy(_plan(200), extent=2.0).inject_noise(m, lr_means=1.6e-4 * 2.0)
    moved = (m.params["means"].detach() - before).norm(dim=1)
    assert torch.all(moved[:50] > 0) and torch.all(moved[50:] == 0)


def test_regularisers_add_gradients_only_to_the_rows_updated():
    m = _model(n=100)
    s = MCMCStrategy(_plan(100), extent=2.0)
    rows = torch.arange(0, 100, 3)
    s.add_regulariser_grads(m, rows)
    g_op = m.params["opacity_logits"].grad.reshape(-1)
    g_sc = m.params["log_scales"].grad
    mask = torch.zeros(100, dtype=torch.bool)
    mask[rows] = True
    assert torch.all(g_op[mask] > 0) and torch.all(g_op[~mask] == 0)
    assert torch.all(g_sc[mask] > 0) and torch.all(g_sc[~mask] == 0)


def test_position_noise_in_torch_matches_the_cpu_kernel():
    """The CUDA backend's torch version of the noise step makes the numba kernel's update."""
    m = _model(n=80, seed=3)
    with torch.no_grad():
        m.params["opacity_logits"][:40] = -5.0
    rows = torch.arange(0, 80, 2)
    normals = torch.randn(rows.numel(), 3, generator=torch.Generator().manual_seed(0))
    p = {k: v.detach().clone() for k, v in m.params.items()}
    a, b = p["means"].clone(), p["means"].clone()
    _position_noise(a.numpy(), p["log_scales"].numpy(), p["quats"].numpy(), p["opacity_logits"].numpy(), rows.numpy(),
                    normals.numpy(), 0.7)
    position_noise_torch(b, p["log_scales"], p["quats"], p["opacity_logits"], rows, normals, 0.7)
    assert not torch.equal(a, p["means"]) and torch.allclose(a, b, atol=1e-6)
