"""Fused numba SSIM (training path) vs the straightforward PyTorch SSIM (reference formulation)."""
import pytest
import torch
from gstrain.losses import fused_ssim, fused_train_loss, psnr, psnr_from_mse, ssim, train_loss


@pytest.mark.parametrize("shape,seed", [((3, 40, 56), 0), ((3, 17, 23), 1), ((3, 64, 64), 2)])
def test_fused_ssim_matches_torch(shape, seed):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(shape, generator=g, dtype=torch.float64)
    img = (0.6 * gt + 0.4 * torch.rand(shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    ref = ssim(img, gt)
    ref.backward()
    g_ref = img.grad.clone()
    x = img.detach().float().requires_grad_(True)
    for _ in range(2):  # second call uses the cached ground-truth statistics
        x.grad = None
        val = fused_ssim(x, gt.float())
        val.backward()
        assert abs(float(val.detach()) - float(ref.detach())) < 1e-5
        assert float((x.grad.double() - g_ref).norm() / g_ref.norm()) < 1e-4


@pytest.mark.parametrize("shape", [(3, 30, 40), (3, 70, 33), (3, 5, 9), (3, 64, 1)])
def test_fused_train_loss_and_psnr(shape):
    """The one-pass loss (row blocks of 32 with a ring buffer for the blur: images of several blocks, of
    fewer rows than the window, one column wide) gives train_loss's value and gradient, and the squared
    error that PSNR needs."""
    g = torch.Generator().manual_seed(5)
    gt = torch.rand(*shape, generator=g)
    a = (gt + 0.1 * torch.randn(*shape, generator=g)).clamp(0, 1).requires_grad_(True)
    b = a.detach().clone().requires_grad_(True)
    la = train_loss(a, gt)
    lb, mse = fused_train_loss(b, gt, with_mse=True)
    la.backward()
    lb.backward()
    assert abs(float(la.detach()) - float(lb.detach())) < 1e-5
    assert torch.allclose(a.grad, b.grad, atol=1e-7, rtol=1e-3)
    assert mse == pytest.approx(float(((a.detach() - gt) ** 2).mean()), rel=1e-6)
    assert psnr_from_mse(mse) == pytest.approx(psnr(a.detach(), gt), abs=1e-4)


def test_fused_loss_takes_the_photo_as_uint8():
    """The trainer holds photos as decoded (uint8): the loss reads them as value / 255."""
    g = torch.Generator().manual_seed(7)
    u8 = torch.randint(0, 256, (3, 45, 38), generator=g, dtype=torch.uint8)
    gt = u8.float() / 255
    a = (gt + 0.1 * torch.randn(3, 45, 38, generator=g)).clamp(0, 1).requires_grad_(True)
    b = a.detach().clone().requires_grad_(True)
    la, ma = fused_train_loss(a, gt, with_mse=True)
    lb, mb = fused_train_loss(b, u8, with_mse=True)
    la.backward()
    lb.backward()
    assert abs(float(la.detach()) - float(lb.detach())) < 1e-6 and mb == pytest.approx(ma, rel=1e-5)
    assert torch.allclose(a.grad, b.grad, atol=1e-8, rtol=1e-5)
    assert psnr(gt, gt) == 100.0
    assert abs(psnr(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.1)) - 20.0) < 1e-6
