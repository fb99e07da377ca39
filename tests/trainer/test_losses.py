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
    """The one-pass loss (row blocks with a ring buffer for the blur: images of several blocks, of
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


def test_the_loss_does_not_depend_on_its_row_blocks():
    """Blocks of any height (the loss picks them by image height and thread count) give the same value and the
    same gradient, bit for bit: sums are kept per row, and a pixel's blur reads the same rows in the same order."""
    import numpy as np
    from gstrain.losses import _W1D, _block_rows, _loss_bwd, _loss_fwd, _padded_line

    rng = np.random.default_rng(3)
    C, H, W = 3, 150, 37
    x = rng.random((C, H, W), dtype=np.float32)
    y = (rng.random((C, H, W)) * 255).astype(np.uint8)
    outs = []
    for rows in (1, 7, 32, 75, H):
        dm = np.empty((3 * C, H, int(_padded_line(W, _W1D.shape[0]))), np.float32)
        sums = np.empty((C, H, 3))
        g = np.empty_like(x)
        _loss_fwd(x, y, 1 / 255, _W1D, rows, dm, sums)
        _loss_bwd(x, y, 1 / 255, dm, _W1D, rows, np.float32(-0.2), np.float32(0.8), g)
        outs.append((sums, g))
    for sums, g in outs[1:]:
        assert np.array_equal(sums, outs[0][0]) and np.array_equal(g, outs[0][1])
    # tall blocks, in a number of tasks each thread gets the same share of where it can
    for H, threads in ((298, 2), (596, 2), (596, 4), (1000, 8), (298, 16), (50, 2), (11, 8)):
        rows = _block_rows(H, C, threads)
        tasks = C * -(-H // rows)
        assert 1 <= rows <= 128
        assert tasks % threads == 0 or rows <= 32, (H, threads, rows)
        assert rows >= 32 or rows == -(-H // -(-H // 32)), (H, threads, rows)
