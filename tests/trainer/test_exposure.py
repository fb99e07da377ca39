"""Per-photo exposure compensation (gstrain/exposure.py): identity at the start, a fixed gauge (the model
renders at the training photos' average exposure), and it recovers the photos' brightness differences; the
exposure a photo's EXIF records, and the law the training photos' learnt gains follow against it."""
import json
import math

import numpy as np
import pytest
import torch
from dataset_builders import exposure_exif
from gstrain.colmap import DataError
from gstrain.exposure import Exposure, ExposureLaw, fit_law, learnt_gains, read_exposures, recorded_exposure
from gstrain.plan import expon_lr
from PIL import Image


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


def test_recorded_exposure_reads_time_iso_and_aperture(tmp_path):
    """exposure time x ISO / f-number^2 from JPEG and PNG EXIF; None without EXIF, with a tag missing, or for a
    file that is no image."""
    pixels = np.zeros((4, 4, 3), np.uint8)
    for suffix in ("jpg", "png"):
        Image.fromarray(pixels).save(tmp_path / f"a.{suffix}", exif=exposure_exif(1 / 60, 25, 1.8))
        assert recorded_exposure(str(tmp_path / f"a.{suffix}")) == pytest.approx(25 / 60 / 1.8 ** 2)
    Image.fromarray(pixels).save(tmp_path / "plain.jpg")
    partial = Image.Exif()
    partial.get_ifd(0x8769)[0x8827] = 100  # ISO only
    Image.fromarray(pixels).save(tmp_path / "partial.jpg", exif=partial.tobytes())
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    for name in ("plain.jpg", "partial.jpg", "junk.jpg", "missing.jpg"):
        assert recorded_exposure(str(tmp_path / name)) is None, name
    assert recorded_exposure(None) is None


def test_exposure_law_fits_the_gains_power_of_the_exposure():
    """Gains that follow exposure^0.4 (relative to the geometric mean) give k = 0.4 and predict a new
    exposure's gain; k stays in [0, 1]; too few photos or a single exposure give no law."""
    exposures = [0.1, 0.1, 0.13, 0.13, 0.2, 0.26, 0.08]
    log_mean = float(np.mean(np.log(exposures)))
    gains = [math.exp(0.4 * (math.log(e) - log_mean)) for e in exposures]
    law = fit_law(exposures + [None], gains + [1.3])  # a photo without EXIF is left out of the fit
    assert law.views == 7 and law.k == pytest.approx(0.4, abs=1e-9) and law.b == pytest.approx(0.0, abs=1e-9)
    assert law.gain(0.3) == pytest.approx(math.exp(0.4 * (math.log(0.3) - log_mean)))
    assert law.gain(None) == 1.0
    assert ExposureLaw.from_json(json.loads(json.dumps(law.to_json()))) == law
    assert fit_law(exposures, [1 / g for g in gains]).k == 0.0  # brighter photos darker: clamped
    assert fit_law(exposures, [g ** 3 for g in gains]).k == 1.0
    assert fit_law(exposures[:3], gains[:3]) is None
    assert fit_law([0.1] * 6, [0.9, 1.1, 1.0, 1.0, 0.95, 1.05]) is None


def test_learnt_gains_are_the_transforms_brightness_gains():
    """A transform that scales a photo's colours by g (relative to the mean transform) has gain g, whatever the
    photo's colour; an offset counts as brightness too."""
    e = Exposure(3, 10)
    with torch.no_grad():
        e.delta[0, :, :3] = torch.eye(3) * 0.2   # x1.2
        e.delta[1, :, :3] = torch.eye(3) * -0.2  # x0.8
        e.delta[2, :, 3] = 0.1  # + 0.1: relative to the mean, views 0 and 1 get an offset of -0.1 / 3
    means = torch.tensor([[0.5, 0.4, 0.3], [0.2, 0.5, 0.6], [0.4, 0.4, 0.4]], dtype=torch.float64)
    g = learnt_gains(e, means)
    t = [e.transform(i).detach().to(torch.float64) for i in range(3)]
    for i in range(3):
        render = torch.linalg.solve(t[i][:, :3], means[i] - t[i][:, 3])
        assert g[i] == pytest.approx(float(means[i].sum() / render.sum()), rel=1e-6)
    assert g[2] > 1.0 and g[1] < 0.85 < 1.1 < g[0]


def test_read_exposures_of_a_model_folder(tmp_path):
    assert read_exposures(str(tmp_path)) == (None, {}, None)
    law = ExposureLaw(0.3, -2.0, 0.01, 12)
    (tmp_path / "exposure.json").write_text(json.dumps({"law": law.to_json(),
                                                        "recorded_exposure": {"a": 0.1, "b": None}}))
    assert read_exposures(str(tmp_path)) == (law, {"a": 0.1}, None)
    (tmp_path / "exposure.json").write_text('{"law": {"k": 1}')
    got = read_exposures(str(tmp_path))
    assert got[:2] == (None, {}) and "exposure.json is unreadable" in got[2]


def test_load_scene_takes_exposures_from_the_photos_or_a_folder_of_originals(dataset_factory, tmp_path):
    """Each camera's exposure comes from its own photo's EXIF or, with exif_dir, from the photo of the same
    name (any case and extension) there; a photo without EXIF gives None; an unreadable folder is an error
    naming it."""
    from gstrain.dataset import load_scene
    settings = [(1 / 60 * (1 + i % 3), 100, 2.0) for i in range(10)]
    src = dataset_factory(exposures=settings, seed=5)
    scene = load_scene(src, 1, True)
    got = {c.image_name: c.exposure for c in scene.train + scene.test}
    assert got == {f"view_{i:03d}": pytest.approx(t * iso / f ** 2) for i, (t, iso, f) in enumerate(settings)}
    originals = tmp_path / "originals"
    originals.mkdir()
    for i in range(9):  # view_009 has no original
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(originals / f"VIEW_{i:03d}.JPG",
                                                            exif=exposure_exif(0.01, 50, 1.0))
    plain = dataset_factory(seed=6)
    scene = load_scene(plain, 1, True)
    assert all(c.exposure is None for c in scene.train + scene.test)
    scene = load_scene(plain, 1, True, exif_dir=str(originals))
    got = {c.image_name: c.exposure for c in scene.train + scene.test}
    assert got.pop("view_009") is None and list(got.values()) == [pytest.approx(0.5)] * 9
    with pytest.raises(DataError, match="--exif_from .*nowhere"):
        load_scene(plain, 1, True, exif_dir=str(tmp_path / "nowhere"))
