"""StyleGAN2: equalized learning rate, (de)modulation, noise, minibatch stddev, style mixing,
the preset's recipe and a bit-exact resume (all tiny)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facegan.models.registry import build
from facegan.models.stylegan2 import (
    EqualConv2d, EqualLinear, ModulatedConv2d, NoiseInput, minibatch_stddev, upsample_conv, widths_for,
)

TINY = {"channel_base": 64, "channel_max": 16}


def tiny_g(**kw):
    return build("generator", "stylegan2", {**TINY, "z_dim": 8, "w_dim": 8, "resolution": 16, **kw})


def tiny_d(**kw):
    return build("discriminator", "stylegan2", {**TINY, "resolution": 16, **kw})


def test_widths_follow_base_and_cap():
    assert widths_for(2048, 256, 64) == {4: 256, 8: 256, 16: 128, 32: 64, 64: 32}
    assert widths_for(16384, 512, 64) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 256}


@pytest.mark.parametrize("res", [8, 16, 32])
def test_shapes_train_unclamped_eval_clamped(res):
    torch.manual_seed(0)
    G = tiny_g(resolution=res)
    D = tiny_d(resolution=res)
    assert G.num_ws == 2 * int(math.log2(res)) - 2
    z = torch.randn(4, 8) * 3
    x = G(z)
    assert x.shape == (4, 3, res, res)
    with torch.no_grad():
        G.eval()
        y = G(z)
    assert y.min() >= -1 and y.max() <= 1
    assert D(x).shape == (4,) and D(x).dtype == torch.float32


# --- equalized learning rate ----------------------------------------------------------------------

def test_every_weight_is_stored_unit_normal_and_scaled_by_fan_in_at_run_time():
    torch.manual_seed(0)
    G = build("generator", "stylegan2", {"resolution": 16})
    D = build("discriminator", "stylegan2", {"resolution": 16})
    layers = [m for net in (G, D) for m in net.modules() if isinstance(m, (EqualLinear, EqualConv2d, ModulatedConv2d))]
    assert len(layers) > 20
    for m in layers:
        lr_mul = getattr(m, "lr_mul", 1.0)
        fan_in = m.weight[0].numel()
        assert m.scale == pytest.approx(lr_mul / math.sqrt(fan_in), rel=1e-12)
        if m.weight.numel() >= 4096:  # std of n unit normals: 1 within ~5/sqrt(2n) at n >= 4096
            assert abs(m.weight.std().item() * lr_mul - 1.0) < 0.06, m
    # what runs is weight * scale: a conv's output equals the library conv with the scaled weight
    conv = D.blocks[0].conv0
    x = torch.randn(2, conv.weight.shape[1], 8, 8)
    ref = F.leaky_relu(F.conv2d(x, conv.weight / math.sqrt(conv.weight[0].numel()), conv.bias, padding=1), 0.2) * math.sqrt(2)
    assert torch.allclose(conv(x), ref, atol=1e-5)


def test_the_mapping_learns_at_a_hundredth_of_the_rate():
    """Adam's first step moves every stored weight by ~lr, so the weight that runs moves by
    lr * lr_mul / sqrt(fan_in): 0.01 of an ordinary equalized layer's step."""
    torch.manual_seed(0)
    G = tiny_g(map_lr_mul=0.01)
    fc, ordinary = G.mapping.fcs[0], EqualLinear(8, 8)
    assert fc.lr_mul == 0.01 and abs(fc.weight.std().item() - 100.0) < 30.0  # stored N(0, 1) / lr_mul
    lr = 1e-3
    moved = []
    # float64: a weight stored near 100 moves by ~1e-3, which fp32 resolves to only ~0.5 %
    for layer in (fc.double(), ordinary.double()):
        before = (layer.weight * layer.scale).detach().clone()
        opt = torch.optim.Adam([layer.weight], lr=lr, betas=(0.0, 0.99))
        layer(torch.randn(16, 8, dtype=torch.float64)).square().sum().backward()
        opt.step()
        moved.append(((layer.weight * layer.scale).detach() - before).abs().median().item())
    # first Adam step: |step| = lr * |g| / (|g| + eps), within 1e-4 relative of lr for |g| > 1e-4
    assert moved[0] == pytest.approx(lr * 0.01 / math.sqrt(8), rel=1e-3)
    assert moved[1] == pytest.approx(lr / math.sqrt(8), rel=1e-3)


# --- modulation and demodulation ------------------------------------------------------------------

def per_sample_weights(conv: ModulatedConv2d, w: torch.Tensor) -> torch.Tensor:
    """The paper's eq. 1 and 3 literally: W'' [b] = (W s[b]) / sqrt(sum (W s[b])^2 + eps)."""
    s = conv.affine(w)  # (B, C_in)
    wt = conv.weight[None] * conv.scale * s[:, None, :, None, None]  # (B, C_out, C_in, k, k)
    if conv.demod:
        wt = wt * torch.rsqrt(wt.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    return wt


@pytest.mark.parametrize("up,demod,k", [(False, True, 3), (True, True, 3), (False, False, 1)])
def test_modulated_conv_equals_per_sample_weight_modulation(up, demod, k):
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, k, 6, demod=demod, up=up).double()
    x, w = torch.randn(3, 5, 4, 4, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    wt = per_sample_weights(conv, w)  # (B, C_out, C_in, k, k)
    b = x.shape[0]
    if up:  # grouped: one conv per sample, each with its own weight
        ref = torch.cat([upsample_conv(x[i:i + 1], wt[i]) for i in range(b)])
    else:
        ref = F.conv2d(x.reshape(1, -1, 4, 4), wt.reshape(-1, 5, k, k), padding=k // 2, groups=b).reshape(b, 7, 4, 4)
    got = conv(x, w)
    assert got.shape == ref.shape
    # float64 throughout: the two orders of the same products differ by ~1e-15 relative
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_demodulation_gives_unit_variance_per_output_channel():
    """For unit-variance i.i.d. input, output channel o of sample b has variance
    sum(W''[b, o]^2) = 1 after demodulation, whatever the style; checked on interior pixels."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(16, 8, 3, 8)
    with torch.no_grad():
        conv.affine.weight.mul_(3.0)  # strong, uneven styles: without demod the variances spread widely
        x, w = torch.randn(32, 16, 34, 34), torch.randn(32, 8)
        y = conv(x, w)[:, :, 1:-1, 1:-1]  # (B, C_out, 32, 32): no zero padding in the windows
        var = y.square().mean(dim=(2, 3))  # (B, C_out): mean 0 by symmetry
        conv.demod = False
        raw = conv(x, w)[:, :, 1:-1, 1:-1].square().mean(dim=(2, 3))
    # each entry averages 1024 pixels, correlated over <= 9 neighbours: s.e. <= sqrt(2 * 9 / 1024) = 0.13
    assert (var - 1).abs().max() < 0.6 and abs(var.mean().item() - 1) < 0.13 / math.sqrt(var.numel()) * 4
    assert raw.max() / raw.min() > 10  # the test would notice a missing demodulation


# --- noise, minibatch stddev, style mixing --------------------------------------------------------

def test_noise_strengths_start_at_zero_and_noise_is_fixed_in_eval():
    torch.manual_seed(0)
    G = tiny_g()
    noises = [m for m in G.modules() if isinstance(m, NoiseInput)]
    assert len(noises) == len(G.convs) and all(m.strength.item() == 0.0 for m in noises)
    z = torch.randn(2, 8)
    G.train()
    G.mixing = 0.0
    with torch.no_grad():
        a, b = G(z), G(z)
        assert torch.equal(a, b)  # strength 0: the noise has no effect yet
        for m in noises:
            m.strength.fill_(0.5)
        assert not torch.equal(G(z), G(z))  # fresh noise in training
        G.eval()
        assert torch.equal(G(z), G(z))  # eval: fixed noise
        # an image depends on its own z only (up to the conv kernels' batch-dependent fp32 rounding)
        assert torch.allclose(G(z[:1]), G(z)[:1], atol=1e-5)


def test_noise_off_builds_no_noise_inputs_and_training_output_is_a_function_of_z():
    torch.manual_seed(0)
    G = tiny_g(noise=False)
    assert not any(isinstance(m, NoiseInput) for m in G.modules())
    assert not any("strength" in name for name, _ in G.named_parameters())
    G.train()
    G.mixing = 0.0
    z = torch.randn(2, 8)
    with torch.no_grad():
        trained = G(z)
        assert torch.equal(trained, G(z))  # nothing random left in training but style mixing (off here)
        G.eval()
        assert torch.equal(G(z), trained.clamp(-1, 1))  # eval differs from training by the clamp alone


def test_minibatch_stddev_adds_the_groups_std_as_one_channel():
    x = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    y = minibatch_stddev(x, group_size=4)  # 6 images: groups of 3 (the largest divisor <= 4)
    assert y.shape == (6, 3, 3, 3) and torch.equal(y[:, :2], x)
    for g in range(2):
        grp = x[3 * g:3 * g + 3]
        mean = grp.mean(dim=0)
        std = ((grp - mean).square().mean(dim=0) + 1e-8).sqrt().mean()  # by hand: population std, averaged
        assert torch.allclose(y[3 * g:3 * g + 3, 2], std.expand(3, 3, 3), rtol=1e-12)
    assert not torch.allclose(y[0, 2], y[3, 2])


def test_style_mixing_off_gives_one_w_per_image_and_on_gives_two():
    torch.manual_seed(0)
    z = torch.randn(64, 8)
    G = tiny_g(mixing=0.0).train()
    ws = G.make_ws(z)
    assert ws.shape == (64, G.num_ws, 8)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))  # the same w in every layer
    G = tiny_g(mixing=1.0).train()
    ws = G.make_ws(z)
    w = G.mapping(z)
    assert torch.equal(ws[:, 0], w)  # the first layer always takes the image's own w
    switched = (ws != w[:, None]).any(dim=2)  # (B, num_ws): layers that took the second w
    assert switched.all(dim=0)[-1]  # with probability 1 every image mixes, and the last layer always switches
    assert torch.equal(switched, switched.cummax(dim=1).values)  # one crossover: from there on, all switched
    assert len({int(r.int().sum()) for r in switched}) > 1  # crossover layers differ between images
    assert torch.equal(G.eval().make_ws(z), w[:, None].expand(-1, G.num_ws, -1))  # never in eval


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_runs_under_autocast_with_fp32_styles(dtype):
    """Whichever reduced precision train/autotune.py picks, the styles and demodulation stay fp32."""
    torch.manual_seed(0)
    G, D = tiny_g(), tiny_d()
    with torch.autocast("cpu", dtype=dtype):
        x = G(torch.randn(4, 8))
        s, d = G.convs[1].conv.styles_and_demod(torch.randn(4, 8))
        logits = D(x)
    assert s.dtype == d.dtype == torch.float32 and logits.dtype == torch.float32
    logits.sum().backward()
    assert torch.isfinite(x).all() and all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)


# --- the preset's recipe, trained ---------------------------------------------------------------

def test_r1_gamma_none_is_the_papers_heuristic():
    from facegan.train.config import TrainConfig
    from facegan.train.presets import resolve

    cfg = TrainConfig(**resolve("stylegan2", {"data": "x.npy", "out": "r", "kimg": 1}))
    assert cfg.r1_gamma == pytest.approx(0.0002 * 64**2 / 32) and cfg.r1_every == 16
    cfg = TrainConfig(**resolve("stylegan2", {"data": "x.npy", "out": "r", "kimg": 1, "batch": 8, "resolution": 16}))
    assert cfg.r1_gamma == pytest.approx(0.0002 * 16**2 / 8)
    assert (cfg.beta1_g, cfg.beta2_g, cfg.beta1_d, cfg.beta2_d, cfg.lr_g, cfg.lr_d) == (0.0, 0.99, 0.0, 0.99, 0.0025, 0.0025)


@pytest.mark.numeric
def test_stylegan2_resumes_bitwise(tmp_path, one_thread):
    from resumecheck import assert_same_networks, straight_and_resumed
    from facegan.train.presets import resolve

    np.save(tmp_path / "c.npy", np.random.default_rng(0).integers(0, 256, (32, 8, 8, 3), dtype=np.uint8))
    tiny = {**TINY, "channel_max": 8}
    base = resolve("stylegan2", dict(data=str(tmp_path / "c.npy"), resolution=8, g={**tiny, "z_dim": 8, "w_dim": 8},
                                     d=tiny, batch=8, precision="fp32", progress=False, tick_kimg=0.008,
                                     grid_kimg=1.0, device="cpu", r1_every=3, augment_p=0.3, ada_kimg=0.05,
                                     ada_interval=1))
    a, b = straight_and_resumed(tmp_path, base)
    assert a["step"] == b["step"] == 8
    assert_same_networks(a, b)
    # the run trained: noise strengths and weights moved (lazy R1 ran on steps 0, 3, 6)
    assert any(t.abs().item() > 0 for n, t in a["G"].items() if n.endswith("noise.strength"))
    assert a["augment"]["p"] == b["augment"]["p"]
