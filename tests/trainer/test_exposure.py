"""Per-photo exposure compensation (gstrain/exposure.py): identity at the start, a fixed gauge (the model
renders at the training photos' average exposure), and it recovers the photos' brightness differences."""
import torch
from gstrain.exposure import Exposure
from gstrain.plan import expon_lr


def test_starts_as_identity_and_mean_transform_stays_identity():
    e = Exposure(5, 100)
    img = torch.rand(3, 6, 7)
    assert torch.equal(e.apply(img, 2), img)
    with torch.no_grad():
        e.delta.copy_(torch.randn(5, 3, 4))
    mean = torch.stack([e.transform(i) for i in range(5)]).mean(0)
    assert torch.allclose(mean.detach(), torch.eye(3, 4), atol=1e-6)


def test_learns_relative_gains_and_white_balance():
    """Five 'photos' of one scene at gains 0.7..1.3, two with a white-balance shift, fitted together with a
    learnt image (the model): each photo's transform comes out as its colour gain over the average, and
    the model as the average photo."""
    g = torch.Generator().manual_seed(0)
    scene = torch.rand(3, 16, 16, generator=g)
    gains = torch.tensor([0.7, 0.85, 1.0, 1.15, 1.3])
    wb = torch.tensor([[1.0, 1.0, 1.0], [1.1, 1.0, 0.9], [1.0, 1.0, 1.0], [0.95, 1.0, 1.05], [1.0, 1.0, 1.0]])
    colour_gain = gains[:, None] * wb  # (5, 3)
    photos = [colour_gain[i][:, None, None] * scene for i in range(5)]
    model = torch.full((3, 16, 16), 0.5, requires_grad=True)
    opt = torch.optim.Adam([model], lr=0.01)
    e = Exposure(5, 1500)
    for it in range(1, 1501):
        i = (it - 1) % 5
        loss = (e.apply(model, i) - photos[i]).abs().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        e.step(it)
    mean_gain = colour_gain.mean(0)
    assert torch.allclose(model.detach(), mean_gain[:, None, None] * scene, atol=0.03)
    for i in range(5):
        t = e.transform(i).detach()
        assert torch.allclose(t[:, :3], torch.diag(colour_gain[i] / mean_gain), atol=0.03), (i, t)
        assert float(t[:, 3].abs().max()) < 0.03
    lo, hi = e.stats()
    assert abs(lo - 0.7 / float(gains.mean())) < 0.03 and abs(hi - 1.3 / float(gains.mean())) < 0.03


def test_state_round_trip():
    e = Exposure(3, 10)
    loss = e.apply(torch.rand(3, 4, 4), 1).sum()
    loss.backward()
    e.step(1)
    f = Exposure(3, 10)
    f.load_state_dict(e.state_dict())
    assert torch.equal(f.delta, e.delta)
    assert torch.equal(f.exp_avg, e.exp_avg) and torch.equal(f.exp_avg_sq, e.exp_avg_sq) and f.steps == e.steps == 1


def test_adam_update_is_torch_adams():
    """The hand-written Adam (no torch.optim import at start-up) makes torch.optim.Adam's steps."""
    e = Exposure(4, 50)
    ref = torch.zeros(4, 3, 4, requires_grad=True)
    opt = torch.optim.Adam([ref], lr=0.01, eps=1e-15)
    g = torch.Generator().manual_seed(0)
    for it in range(1, 30):
        grad = torch.randn(4, 3, 4, generator=g)
        e.delta.grad = grad.clone()
        ref.grad = grad.clone()
        for group in opt.param_groups:
            group["lr"] = expon_lr(it, 0.01, 0.001, 1.0, 50)
        opt.step()
        e.step(it)
    assert torch.allclose(e.delta, ref, atol=1e-6)


def test_cpu_kernels_match_torch():
    """apply() on a float32 CPU image runs numba kernels; value and gradients are torch's addmm's."""
    e = Exposure(3, 10)
    with torch.no_grad():
        e.delta.copy_(torch.randn(3, 3, 4, generator=torch.Generator().manual_seed(1)) * 0.2)
    img = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(2), requires_grad=True)
    w = torch.randn(3, 37, 53, generator=torch.Generator().manual_seed(3))
    out = e.apply(img, 1)
    (out * w).sum().backward()
    g_img, g_delta = img.grad.clone(), e.delta.grad.clone()
    img.grad = None
    e.delta.grad = None
    t = e.transform(1)
    ref = torch.addmm(t[:, 3:], t[:, :3], img.reshape(3, -1)).reshape(3, 37, 53)
    (ref * w).sum().backward()
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.allclose(g_img, img.grad, atol=1e-5)
    assert torch.allclose(g_delta, e.delta.grad, atol=1e-3, rtol=1e-4)
