"""The step module's seams: augmentation, R1, n_dis, joint D; each does what it promises."""

import numpy as np
import pytest
import torch
from torch import nn

from facegan.train.losses import LOSSES
from facegan.train.augment import FAMILIES, Augment, parse_policy
from facegan.train.step import GanStep, Nets


class TinyG(nn.Module):
    z_dim, resolution = 4, 8

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3 * 8 * 8)

    def forward(self, z):
        return torch.tanh(self.fc(z)).view(-1, 3, 8, 8)


class LinearD(nn.Module):
    """D(x) = <w, x> + b: its input gradient is w for every image, so R1 = |w|^2."""

    resolution = 8

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 1)

    def forward(self, x):
        return self.fc(x.flatten(1)).flatten()


class CountingD(LinearD):
    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append(len(x))
        return super().forward(x)


def make_step(D=None, seed=0, sgd=False, **kw):
    torch.manual_seed(seed)
    G, D = TinyG(), D or LinearD()
    if sgd:  # no per-weight normalisation: float rounding differences stay at rounding size
        opt_g, opt_d = torch.optim.SGD(G.parameters(), 0.05), torch.optim.SGD(D.parameters(), 0.05)
    else:
        opt_g = torch.optim.Adam(G.parameters(), 1e-3, betas=(0.0, 0.99))
        opt_d = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999))
    return GanStep(Nets(G, D, D, D), opt_g, opt_d, LOSSES["hinge"], **kw), G, D


def feeds(seed=1, batch=6):
    g = torch.Generator().manual_seed(seed)
    return (lambda: torch.rand(batch, 3, 8, 8, generator=g) * 2 - 1), (lambda: torch.randn(batch, 4, generator=g))


def params(*ms):
    return torch.cat([p.detach().flatten() for m in ms for p in m.parameters()])


# --- augmentation -------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", [*FAMILIES, ",".join(FAMILIES)])
def test_augmentation_keeps_range_shape_and_passes_gradients(policy):
    aug = Augment(parse_policy(policy), 1.0, "cpu", seed=0)
    x = (torch.rand(16, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= -1 and y.max() <= 1
    assert not torch.equal(y, x)  # p = 1: something changed
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable: G can learn through it


def test_augmentation_respects_channels_last_and_p():
    aug = Augment(parse_policy("translation"), 0.5, "cpu", seed=3)
    x = torch.rand(400, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    y = aug(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    changed = (y != x).flatten(1).any(1).float().mean().item()
    assert 0.3 < changed < 0.6  # about p of the images (a shift of 0 leaves some unchanged)


def test_p_zero_is_bit_identical_to_no_augmentation():
    a, Ga, Da = make_step(augment=Augment(parse_policy("color,translation,cutout"), 0.0, "cpu"))
    b, Gb, Db = make_step(augment=None)
    for step, feed in ((a, feeds()), (b, feeds())):
        for _ in range(3):
            step(*feed)
    assert torch.equal(params(Ga, Da), params(Gb, Db))


def test_unknown_policy_is_a_clear_error():
    from facegan.errors import FaceganError

    with pytest.raises(FaceganError, match="unknown augmentation.*rotate"):
        parse_policy("color,rotate")


def test_adaptive_p_rises_when_d_overfits_a_tiny_batch():
    """D learns to call 4 fixed photos real: r_t -> 1 > target, so p climbs (and stays bounded)."""
    torch.manual_seed(0)
    aug = Augment(parse_policy("translation"), 0.0, "cpu", seed=0, target=0.6, speed_img=200, interval=2)
    step, _, _ = make_step(augment=aug)
    fixed = torch.rand(4, 3, 8, 8) * 2 - 1
    g = torch.Generator().manual_seed(0)
    ps = []
    for _ in range(40):
        step(lambda: fixed, lambda: torch.randn(4, 4, generator=g))
        ps.append(aug.p)
    assert aug.r_t is not None and aug.r_t > 0.6
    assert ps[-1] > 0.2 and ps[-1] <= aug.p_max
    assert max(ps) == pytest.approx(ps[-1])  # it kept rising


def test_adaptive_p_falls_when_d_is_unsure():
    aug = Augment(parse_policy("color"), 0.5, "cpu", target=0.6, speed_img=100, interval=1)
    for _ in range(10):
        aug.observe(torch.tensor([1.0, -1.0, 1.0, -1.0]), 4)  # r_t = 0 < 0.6
    assert aug.p == pytest.approx(0.1)


# --- R1 ------------------------------------------------------------------------------------------

def test_r1_equals_the_hand_computed_penalty():
    """With D linear, grad_x D = w, so the penalty gamma/2 * E|w|^2 adds gamma * w to D's gradient."""
    gamma = 3.0
    for r1 in (0.0, gamma):
        step, G, D = make_step(r1_gamma=r1)
        real_f, noise_f = feeds()
        w0 = D.fc.weight.detach().clone()
        _, scalars = step.d_step(real_f(), noise_f())
        if r1:
            assert scalars["r1"].item() == pytest.approx(w0.square().sum().item(), rel=1e-6)
    # the gradient difference itself, on fresh copies (one SGD-free check: autograd of the total)
    _, G, D = make_step()
    real = torch.rand(5, 3, 8, 8).requires_grad_(True)
    (g,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
    pen = 0.5 * gamma * g.square().sum(dim=(1, 2, 3)).mean()
    (dw,) = torch.autograd.grad(pen, D.fc.weight)
    assert torch.allclose(dw, gamma * D.fc.weight, atol=1e-6)


def test_lazy_r1_every_k_steps_scaled_by_k():
    step, _, _ = make_step(r1_gamma=1.0, r1_every=3)
    real_f, noise_f = feeds()
    seen = [("r1" in step.d_step(real_f(), noise_f())[1]) for _ in range(7)]
    assert seen == [True, False, False, True, False, False, True]


def test_lazy_r1_adds_gamma_half_mean_grad_norm_times_the_interval():
    """Hand-computed: D(x) = <w, x> + b has grad_x D = w for every image, so the lazy penalty
    (gamma/2) * E|grad_x D|^2 * k = (gamma/2) * |w|^2 * k adds gamma * k * w to D's gradient on
    the steps it runs; with SGD (lr 0.05) the weights differ from an unpenalised step by exactly
    -0.05 * gamma * k * w0, and the logged "r1" is |w0|^2."""
    gamma, k, lr = 2.0, 4, 0.05
    plain, _, D0 = make_step(sgd=True)
    lazy, _, D1 = make_step(sgd=True, r1_gamma=gamma, r1_every=k)
    w0 = D1.fc.weight.detach().clone()
    assert torch.equal(w0, D0.fc.weight)
    for step in (plain, lazy):
        real_f, noise_f = feeds()
        _, scalars = step.d_step(real_f(), noise_f())
    assert scalars["r1"].item() == pytest.approx(w0.square().sum().item(), rel=1e-6)
    diff = D1.fc.weight.detach() - D0.fc.weight.detach()
    # each weight moved by lr * (its loss gradient + gamma * k * w0): fp32 rounding of ~0.1-sized terms
    assert torch.allclose(diff, -lr * gamma * k * w0, atol=1e-6)
    assert torch.allclose(D1.fc.bias, D0.fc.bias, atol=1e-7)  # the penalty does not depend on b


# --- n_dis and joint D -----------------------------------------------------------------------------

def test_n_dis_takes_that_many_d_steps_per_g_step():
    D = CountingD()
    step, G, _ = make_step(D=D, n_dis=2)
    real_f, noise_f = feeds()
    d_opt_steps = []
    step.opt_d.step = (lambda orig: (lambda *a, **k: (d_opt_steps.append(1), orig(*a, **k))[1]))(step.opt_d.step)
    g_opt_steps = []
    step.opt_g.step = (lambda orig: (lambda *a, **k: (g_opt_steps.append(1), orig(*a, **k))[1]))(step.opt_g.step)
    out = step(real_f, noise_f)
    assert len(d_opt_steps) == 2 and len(g_opt_steps) == 1
    assert D.calls == [6, 6, 6, 6, 6]  # two D steps of (real, fake), then G's pass through D
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= set(out)


def test_joint_d_forward_gives_the_same_step_without_batchnorm():
    a, Ga, Da = make_step(joint_d=True, sgd=True)
    b, Gb, Db = make_step(joint_d=False, sgd=True)
    fa, fb = feeds(), feeds()
    for _ in range(3):
        oa, ob = a(*fa), b(*fb)
    assert oa["loss_d"].item() == pytest.approx(ob["loss_d"].item(), rel=1e-5)
    assert torch.allclose(params(Ga, Da), params(Gb, Db), atol=1e-6)


def test_every_loss_in_the_table_runs_through_the_step():
    for name, loss in LOSSES.items():
        step, _, _ = make_step()
        step.loss = loss
        out = step(*feeds())
        assert np.isfinite(out["loss_d"].item()) and np.isfinite(out["loss_g"].item()), name


# --- precision ----------------------------------------------------------------------------------

def test_fp16_scales_the_losses_and_its_r1_is_the_fp32_r1():
    """fp16 autocast runs through GradScalers (one per network); R1, taken of the scaled logits and
    unscaled, equals the fp32 penalty: for LinearD it is |w|^2 exactly up to fp16 rounding of w."""
    step, G, D = make_step(autocast="cpu", precision="fp16", r1_gamma=1.0, sgd=True)
    assert step.dtype is torch.float16 and step.scaler_d is not None and step.scaler_g is not None
    real, noise = feeds()
    for _ in range(8):  # the first scale (2^16) overflows fp16 (max 65504): those steps are skipped
        w = D.fc.weight.detach().clone()
        scale = step.scaler_d.get_scale()
        out = step(real, noise)
        if torch.isfinite(out["r1"]):
            break
        assert torch.equal(D.fc.weight, w)  # an overflowing step leaves D as it was...
        assert step.scaler_d.get_scale() == scale / 2  # ...and halves the scale
    # fp16 keeps 11 significant bits: each w_i rounds with relative error <= 2^-11, so |w|^2 is off
    # by at most 2 * 2^-11 relative (plus the fp32 sum's n * eps, negligible)
    assert out["r1"].item() == pytest.approx(w.square().sum().item(), rel=2 * 2.0 ** -11)
    assert not torch.equal(D.fc.weight, w)  # a finite step is applied
    state = step.amp_state()
    assert set(state) == {"scaler_d", "scaler_g"} and state["scaler_d"]["scale"] > 1
    fresh, _, _ = make_step(autocast="cpu", precision="fp16")
    fresh.load_amp_state(state)
    assert fresh.amp_state() == state  # a resumed fp16 run continues with the same loss scales


def test_fp32_and_bf16_steps_carry_no_loss_scaler():
    assert make_step()[0].amp_state() is None
    step = make_step(autocast="cpu", precision="bf16")[0]
    assert step.dtype is torch.bfloat16 and step.amp_state() is None  # bf16 has fp32's exponent range
    step.load_amp_state({"scaler_d": {}, "scaler_g": {}})  # an fp16 checkpoint resumed in bf16: ignored
