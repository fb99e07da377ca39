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
