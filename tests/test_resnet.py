"""The ResNet SN-GAN pair and its residual blocks: wiring, shapes, widths, init, spectral norm
(σ ≈ 1 after training, fp32 power iteration under bf16 autocast), batch independence of D."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import facegan.models.resnet as resnet
from facegan.errors import FaceganError
from facegan.models.blocks import OptimisedDownBlock, ResDownBlock, ResUpBlock, is_spectral_normed
from facegan.models.registry import create_discriminator, create_generator


def _layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _weight(layer: nn.Module) -> torch.Tensor:
    """The trainable weight: the SN parametrization's original, or the plain weight."""
    return layer.parametrizations.weight.original if is_spectral_normed(layer) else layer.weight


@pytest.mark.parametrize("res", [8, 16, 32, 64])
@pytest.mark.parametrize("last_down", [False, True])
def test_shapes_and_range(res, last_down):
    torch.manual_seed(0)
    G = create_generator("resnet", z_dim=7, ch=4, resolution=res)
    D = create_discriminator("resnet", ch=4, resolution=res, last_down=last_down)
    assert (G.z_dim, G.resolution, D.resolution) == (7, res, res)
    x = G(torch.randn(3, 7) * 10)  # large z: the tanh must still bound the output
    assert x.shape == (3, 3, res, res) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    y = D(x)
    assert y.shape == (3,) and y.dtype == torch.float32
    y.sum().backward()
    assert all(p.grad is not None for p in [*G.parameters(), *D.parameters()])


def test_layout_and_widths_at_64():
    """Default width at 64 px: G 512 (4×4) → 512 → 256 → 128 → 64 → RGB; D 64 … 512 (4×4) → 512."""
    G = create_generator("resnet")
    D = create_discriminator("resnet")
    ups = [b for b in G.blocks if isinstance(b, ResUpBlock)]
    assert G.fc.out_features == 4 * 4 * 512
    assert [(b.conv1.in_channels, b.conv2.out_channels) for b in ups] == [(512, 512), (512, 256), (256, 128), (128, 64)]
    assert (G.to_rgb.in_channels, G.to_rgb.out_channels, G.to_rgb.kernel_size) == (64, 3, (3, 3))
    assert all(isinstance(m, nn.BatchNorm2d) for b in ups for m in (b.norm1, b.norm2))
    assert isinstance(G.norm, nn.BatchNorm2d)

    first, *downs = list(D.blocks)
    assert isinstance(first, OptimisedDownBlock) and (first.conv1.in_channels, first.conv1.out_channels) == (3, 64)
    assert [(b.conv1.in_channels, b.conv2.out_channels, b.down) for b in downs] == [
        (64, 128, True), (128, 256, True), (256, 512, True), (512, 512, False)
    ]
    assert isinstance(downs[-1].shortcut, nn.Identity)  # same width, same size: no 1×1 conv
    assert D.fc.in_features == 512 and D.fc.out_features == 1
    # SN on every conv and linear of D, on none of G by default; no BatchNorm anywhere in D.
    assert all(is_spectral_normed(m) for m in _layers(D))
    assert not any(is_spectral_normed(m) for m in _layers(G))
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in D.modules())
    assert all(is_spectral_normed(m) for m in _layers(create_generator("resnet", ch=4, resolution=16, sn=True)))


def test_published_width_option():
    """max_mult=16 and last_down give the paper's 64-px networks: 1024 channels, D ends at 2×2."""
    G = create_generator("resnet", max_mult=16)
    D = create_discriminator("resnet", max_mult=16, last_down=True)
    assert G.fc.out_features == 4 * 4 * 1024
    assert [b.conv2.out_channels for b in D.blocks] == [64, 128, 256, 512, 1024] and D.blocks[-1].down
    h = D.blocks(torch.zeros(1, 3, 64, 64))
    assert h.shape == (1, 1024, 2, 2)


def test_parameter_counts_match_the_docstring():
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    g, d = n(create_generator("resnet")), n(create_discriminator("resnet"))
    g16, d16 = n(create_generator("resnet", max_mult=16)), n(create_discriminator("resnet", max_mult=16, last_down=True))
    doc = " ".join(resnet.__doc__.split())
    assert f"G {g:,}, D {d:,}" in doc and f"G {g16:,}, D {d16:,}" in doc
    assert (g, d) == (8_540_483, 7_255_809)


def test_blocks_compute_the_papers_layout():
    """Each block equals its definition written out with functional ops (also catches an in-place
    ReLU that would overwrite the shortcut's input), with and without spectral norm."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    up = ResUpBlock(4, 6, norm="none")
    up2 = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    ref = up.conv2(F.relu(up.conv1(up2(F.relu(x))))) + up.shortcut(up2(x))  # shortcut: ×2, then 1×1
    torch.testing.assert_close(up(x), ref)

    for sn in (False, True):
        down = ResDownBlock(4, 6, norm="none", sn=sn).eval()  # eval: no power-iteration step
        ref = F.avg_pool2d(down.conv2(F.relu(down.conv1(F.relu(x)))), 2) + F.avg_pool2d(down.shortcut(x), 2)
        torch.testing.assert_close(down(x), ref)
        keep = ResDownBlock(4, 4, down=False, sn=sn).eval()
        torch.testing.assert_close(keep(x), keep.conv2(F.relu(keep.conv1(F.relu(x)))) + x)

    first = OptimisedDownBlock(4, 6).eval()
    ref = F.avg_pool2d(first.conv2(F.relu(first.conv1(x))), 2) + first.shortcut(F.avg_pool2d(x, 2))
    torch.testing.assert_close(first(x), ref)

    bn = ResUpBlock(4, 6, norm="batch")
    ref = bn.conv2(F.relu(bn.norm2(bn.conv1(up2(F.relu(bn.norm1(x))))))) + bn.shortcut(up2(x))
    torch.testing.assert_close(bn(x), ref)
    assert bn.conv1.bias is None and bn.conv2.bias is not None  # no bias right before a norm


def test_xavier_init_with_residual_gain():
    torch.manual_seed(0)
    for block in (ResUpBlock(32, 32), ResDownBlock(32, 64, sn=True)):
        for layer, gain in ((block.conv1, math.sqrt(2)), (block.conv2, math.sqrt(2)), (block.shortcut, 1.0)):
            w = _weight(layer)
            fan_in, fan_out = w.shape[1] * w[0, 0].numel(), w.shape[0] * w[0, 0].numel()
            bound = gain * math.sqrt(6 / (fan_in + fan_out))  # Xavier-uniform: U(-bound, bound)
            assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
            assert layer.bias is None or not layer.bias.any()


def test_spectral_norm_is_one_after_training():
    """A few Adam steps of the hinge loss on random data move the weights; in eval mode every SN
    layer's W/σ still has largest singular value ≈ 1 (the power iteration kept up)."""
    torch.manual_seed(0)
    G = create_generator("resnet", z_dim=8, ch=4, resolution=16, sn=True)
    D = create_discriminator("resnet", ch=4, resolution=16)
    start = {id(m): _weight(m).detach().clone() for m in _layers(G) + _layers(D)}
    opt_g = torch.optim.Adam(G.parameters(), 2e-3, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-3, betas=(0.0, 0.999))
    for _ in range(8):
        real = torch.rand(8, 3, 16, 16) * 2 - 1
        fake = G(torch.randn(8, 8)).detach()
        logits = D(torch.cat([real, fake]))
        d_loss = F.relu(1 - logits[:8]).mean() + F.relu(1 + logits[8:]).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = -D(G(torch.randn(8, 8))).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    G.eval(), D.eval()
    raw = []
    with torch.no_grad():
        for m in _layers(G) + _layers(D):
            assert is_spectral_normed(m)
            assert not torch.allclose(_weight(m), start[id(m)])  # it trained
            sigma = torch.linalg.matrix_norm(m.weight.flatten(1), 2).item()
            assert sigma == pytest.approx(1.0, abs=0.03), m
            raw.append(torch.linalg.matrix_norm(_weight(m).flatten(1), 2).item())
    assert max(abs(s - 1) for s in raw) > 0.3  # the normalisation is doing something


class _AutocastAtMatVec(TorchFunctionMode):
    """Records, for each torch.mv call (the power iteration's and σ's), whether CPU autocast was on."""

    def __init__(self):
        super().__init__()
        self.autocast_on: list[bool] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.mv:
            self.autocast_on.append(torch.is_autocast_enabled("cpu"))
        return func(*args, **(kwargs or {}))


class _OpDtypes(TorchDispatchMode):
    """Records the input dtypes of every aten op as it runs (after autocast's casts)."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, list[torch.dtype]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append((func.overloadpacket.__name__, [a.dtype for a in args if isinstance(a, torch.Tensor)]))
        return func(*args, **(kwargs or {}))


def test_power_iteration_is_fp32_under_bf16_autocast():
    """CUDA autocast runs torch.mv/vdot in bf16 (CPU autocast happens not to), so the SN
    parametrization turns autocast off; here the convolutions still run in bf16."""
    torch.manual_seed(0)
    D = create_discriminator("resnet", ch=4, resolution=16)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with _AutocastAtMatVec() as probe, _OpDtypes() as ops, torch.autocast("cpu", torch.bfloat16):
        y = D(x)
    n_sn = len(_layers(D))
    assert len(probe.autocast_on) == 3 * n_sn  # u step, v step, σ = u·Wv, per layer
    assert not any(probe.autocast_on)
    sn_ops = [dt for name, dt in ops.ops if name in ("mv", "vdot", "linalg_vector_norm", "div")]
    assert sn_ops and all(d == torch.float32 for dts in sn_ops for d in dts)
    assert all(d == torch.bfloat16 for name, dts in ops.ops if name == "convolution" for d in dts)
    assert y.dtype == torch.bfloat16
    for m in _layers(D):
        sn = m.parametrizations.weight[0].inner
        assert sn._u.dtype == sn._v.dtype == torch.float32

    # The probe is not vacuous: torch's own parametrization runs its mat-vecs under autocast.
    plain = parametrizations.spectral_norm(nn.Linear(4, 3))
    with _AutocastAtMatVec() as probe, torch.autocast("cpu", torch.bfloat16):
        plain(torch.randn(2, 4))
    assert probe.autocast_on == [True, True, True]


def test_real_and_fake_in_one_forward_match_separate_forwards():
    """D has no BatchNorm, so one forward of cat(real, fake) gives the same logits as two — in
    train mode, from the same SN state (each train-mode forward takes one power-iteration step)."""
    torch.manual_seed(0)
    real, fake = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(5, 3, 16, 16) * 2 - 1

    def one_vs_two(D):
        state = copy.deepcopy(D.state_dict())
        both = D(torch.cat([real, fake]))
        D.load_state_dict(state)
        r = D(real)
        D.load_state_dict(state)
        return both, torch.cat([r, D(fake)])

    D = create_discriminator("resnet", ch=4, resolution=16)
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in D.modules())
    both, apart = one_vs_two(D)
    torch.testing.assert_close(both, apart, rtol=1e-5, atol=1e-6)
    both, apart = one_vs_two(create_discriminator("resnet", ch=4, resolution=16, norm="batch"))
    assert not torch.allclose(both, apart, atol=1e-3)  # the check can tell: BatchNorm mixes the batch


def test_state_dict_and_copies_rebuild_the_same_networks():
    """Checkpoints (state_dict into a fresh model) and EMA copies (deepcopy) keep the SN state."""
    torch.manual_seed(0)
    D = create_discriminator("resnet", ch=4, resolution=16)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    D(x)  # one power-iteration step: u, v differ from the fresh model's
    fresh = create_discriminator("resnet", ch=4, resolution=16)
    fresh.load_state_dict(D.state_dict())
    twin = copy.deepcopy(D)
    for m in (D, fresh, twin):
        m.eval()
    torch.testing.assert_close(fresh(x), D(x), rtol=0, atol=0)
    torch.testing.assert_close(twin(x), D(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "kind, options, message",
    [
        ("generator", {"ch": 0}, "ch and max_mult must be at least 1"),
        ("generator", {"z_dim": 0}, "z_dim must be at least 1"),
        ("generator", {"norm": "weird"}, "unknown norm 'weird'"),
        ("discriminator", {"max_mult": 0}, "ch and max_mult must be at least 1"),
        ("discriminator", {"resolution": 48}, "power of two"),
    ],
)
def test_bad_options_are_clear_errors(kind, options, message):
    build = create_generator if kind == "generator" else create_discriminator
    with pytest.raises(FaceganError, match=f"{kind} 'resnet': .*{message}"):
        build("resnet", **options)
