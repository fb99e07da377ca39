"""The densification statistics' numba pass gives what the torch ops gave (the reference's definition)."""
import torch
from gstrain.model import GaussianModel


def _model(n):
    g = torch.Generator().manual_seed(0)
    m = GaussianModel(0)
    m._set_params({"means": torch.randn(n, 3, generator=g), "f_dc": torch.randn(n, 1, 3, generator=g),
                   "f_rest": torch.zeros(n, 0, 3), "opacity_logits": torch.randn(n, 1, generator=g),
                   "log_scales": torch.randn(n, 3, generator=g), "quats": torch.randn(n, 4, generator=g)})
    m.reset_stats()
    return m


def test_numba_stats_match_the_torch_definition():
    n = 500
    g = torch.Generator().manual_seed(1)
    steps = [(torch.randperm(n, generator=g)[:300], torch.randn(300, 2, generator=g),
              torch.randint(0, 60, (300,), generator=g, dtype=torch.int32)) for _ in range(4)]
    fast, ref = _model(n), _model(n)
    for idx, g2d, radii in steps:
        fast.add_densification_stats(idx, g2d, radii, (198.5, 149.0))
        # the torch ops of the definition, written out
        gs = g2d.clone()
        gs[:, 0] *= 198.5
        gs[:, 1] *= 149.0
        ref.grad_accum[idx] += gs.norm(dim=-1, keepdim=True)
        ref.denom[idx] += 1
        ref.max_radii2D[idx] = torch.maximum(ref.max_radii2D[idx], radii.float())
    assert ref.denom.sum() == 4 * 300 and ref.max_radii2D.max() > 0
    assert torch.equal(fast.denom, ref.denom)
    assert torch.equal(fast.max_radii2D, ref.max_radii2D)
    assert torch.allclose(fast.grad_accum, ref.grad_accum, rtol=1e-6, atol=0)


def test_stats_read_from_every_gaussians_rows_match_the_gathered_rows():
    """full=True: grad2d and radii hold every Gaussian's rows, read at idx (no gathered copies), on the numba
    pass and on the torch ops alike (a float64 gradient takes the torch path)."""
    n = 400
    g = torch.Generator().manual_seed(2)
    idx = torch.sort(torch.randperm(n, generator=g)[:250]).values
    g2d = torch.randn(n, 2, generator=g)
    radii = torch.randint(0, 60, (n,), generator=g, dtype=torch.int32)
    for dtype in (torch.float32, torch.float64):
        a, b = _model(n), _model(n)
        a.add_densification_stats(idx, g2d.to(dtype), radii, (198.5, 149.0), full=True)
        b.add_densification_stats(idx, g2d[idx].to(dtype), radii[idx], (198.5, 149.0))
        assert int(a.denom.sum()) == 250
        assert torch.equal(a.denom, b.denom) and torch.equal(a.max_radii2D, b.max_radii2D)
        assert torch.equal(a.grad_accum, b.grad_accum)
