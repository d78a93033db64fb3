"""Convolutions as matrix products: the same numbers and gradients as PyTorch's own kernels."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facegan.models import matmul_conv
from facegan.models.matmul_conv import (
    MatmulConv2d, MatmulConvTranspose2d, conv2d_mm, conv_transpose2d_mm, matmul_convs_on, use_matmul_convs,
)
from facegan.models.registry import create_discriminator, create_generator

from numerics import bilinear_error_bounds

#: float results: run again with the kernels forced down in CI (.ci/forced-kernels)
pytestmark = pytest.mark.numeric

CASES = [  # kernel, stride, padding, input height (width is height + 1: non-square maps too)
    (k, s, p, h) for k, s, p, h in itertools.product([1, 3, 4], [1, 2, 3], [0, 1, 2], [1, 4, 7]) if h + 2 * p >= k
]


def _dl_dy(y: torch.Tensor) -> torch.Tensor:
    return torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)  # a fixed, non-trivial dL/dy


def _grads(y: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(y, inputs, _dl_dy(y))


def _inputs(h: int, channels_last: bool, bias: bool, transposed: bool, k: int):
    gen = torch.Generator().manual_seed(h * 31 + k)
    x = torch.randn(3, 5, h, h + 1, dtype=torch.float64, generator=gen)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    w = torch.randn(*((5, 6) if transposed else (6, 5)), k, k, dtype=torch.float64, generator=gen)
    b = torch.randn(6, dtype=torch.float64, generator=gen) if bias else None
    return [t.requires_grad_() if t is not None else None for t in (x, w, b)]


PAIRS = {  # ours, the library's
    "conv": (conv2d_mm, F.conv2d),
    "transposed": (conv_transpose2d_mm, F.conv_transpose2d),
}


@pytest.mark.parametrize("channels_last,bias", [(True, False), (False, True)])
@pytest.mark.parametrize("kind,k,s,p,h", [("conv", *c) for c in CASES] + [("transposed", *c) for c in CASES if 2 * c[2] < c[0]])
def test_matmul_path_matches_the_library(kind, k, s, p, h, channels_last, bias):
    ours, library = PAIRS[kind]
    x, w, b = _inputs(h, channels_last, bias, kind == "transposed", k)
    ins = tuple(t for t in (x, w, b) if t is not None)
    want = library(x, w, b, stride=s, padding=p)
    got = ours(x, w, b, stride=s, padding=p)
    assert got.shape == want.shape
    # two summation orders of one bilinear op: each within its rounding bound, so apart by <= twice it
    y_bound, grad_bounds = bilinear_error_bounds(library, x, w, b, _dl_dy(want), stride=s, padding=p)
    assert ((got - want).abs() <= 2 * y_bound).all()
    for g_got, g_want, bound in zip(_grads(got, ins), _grads(want, ins), grad_bounds):
        assert ((g_got - g_want).abs() <= 2 * bound).all()
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_only_the_gradients_asked_for_are_computed():
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)  # an image batch: no gradient wanted
    w = torch.randn(3, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    (gw,) = torch.autograd.grad(conv2d_mm(x, w, stride=2, padding=1).sum(), (w,))
    (gw_ref,) = torch.autograd.grad(F.conv2d(x, w, stride=2, padding=1).sum(), (w,))
    torch.testing.assert_close(gw, gw_ref)
    x.requires_grad_()
    w.requires_grad_(False)  # D frozen during G's step: only the input's gradient
    (gx,) = torch.autograd.grad(conv2d_mm(x, w, stride=2, padding=1).sum(), (x,))
    torch.testing.assert_close(gx, torch.autograd.grad(F.conv2d(x, w, stride=2, padding=1).sum(), (x,))[0])


def test_under_bf16_autocast_it_computes_in_bf16_like_conv2d():
    torch.manual_seed(0)
    x = torch.randn(8, 32, 8, 8).to(memory_format=torch.channels_last)
    w = torch.randn(16, 32, 4, 4) * 0.05
    wt = torch.randn(32, 16, 4, 4) * 0.05
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pairs = [(conv2d_mm(x, w, stride=2, padding=1), F.conv2d(x, w, stride=2, padding=1)),
                 (conv_transpose2d_mm(x, wt, stride=2, padding=1), F.conv_transpose2d(x, wt, stride=2, padding=1))]
    for got, want in pairs:
        assert got.dtype == want.dtype == torch.bfloat16
        assert got.is_contiguous(memory_format=torch.channels_last)
        err = (got.float() - want.float()).abs().max() / want.float().abs().max()
        assert err < 2e-2  # bf16 rounding, not a different result


def _dcgan_pair():
    torch.manual_seed(0)
    G, D = create_generator("dcgan", ngf=8), create_discriminator("dcgan", ndf=8)
    return G.double(), D.double()


def test_use_matmul_convs_keeps_parameters_and_state_dict():
    G, D = _dcgan_pair()
    keys_g, keys_d = list(G.state_dict()), list(D.state_dict())
    params = [id(p) for p in G.parameters()]
    assert use_matmul_convs(G) == 5 and use_matmul_convs(D) == 5  # every conv of the DCGAN is plain
    assert list(G.state_dict()) == keys_g and list(D.state_dict()) == keys_d
    assert [id(p) for p in G.parameters()] == params  # an optimizer built before still points at them
    assert all(type(m) in (MatmulConvTranspose2d,) for m in G.modules() if isinstance(m, nn.ConvTranspose2d))
    assert all(type(m) in (MatmulConv2d,) for m in D.modules() if isinstance(m, nn.Conv2d))
    assert use_matmul_convs(G) == 0  # already switched


def test_dcgan_with_matmul_convs_computes_the_same_and_uses_them_on_4x4_maps(monkeypatch):
    G, D = _dcgan_pair()
    G_mm, D_mm = copy.deepcopy(G), copy.deepcopy(D)
    use_matmul_convs(G_mm), use_matmul_convs(D_mm)
    calls = {"conv": 0, "deconv": 0}

    def spy(name, fn):
        def wrapped(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapped

    monkeypatch.setattr(matmul_conv, "conv2d_mm", spy("conv", conv2d_mm))
    monkeypatch.setattr(matmul_conv, "conv_transpose2d_mm", spy("deconv", conv_transpose2d_mm))
    z = torch.randn(4, 100, dtype=torch.float64)
    outs = []
    for g, d in ((G, D), (G_mm, D_mm)):
        img = g(z)
        logit = d(img)
        grads = torch.autograd.grad(logit.sum(), list(g.parameters()) + list(d.parameters()))
        outs.append((img, logit, grads))
    # G: the 1x1→4x4 and 4x4→8x8 layers; D: the 8x8→4x4 and 4x4→1x1 layers; the rest stay oneDNN's
    assert calls == {"conv": 2, "deconv": 2}
    (img, logit, grads), (img2, logit2, grads2) = outs
    torch.testing.assert_close(img2, img, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(logit2, logit, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads2, grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_unusual_convolutions_are_left_alone():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 4, 3, dilation=2), nn.Conv2d(4, 4, (3, 1)),
                          nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.ConvTranspose2d(4, 4, 3, 2, output_padding=1),
                          nn.Conv1d(4, 4, 3))
    assert use_matmul_convs(model) == 0
    assert [type(m) for m in model] == [nn.Conv2d] * 4 + [nn.ConvTranspose2d, nn.Conv1d]


def test_auto_means_cpu_only():
    assert matmul_convs_on("auto", torch.device("cpu"))
    assert not matmul_convs_on("auto", torch.device("cuda"))
    assert matmul_convs_on("on", torch.device("cuda")) and not matmul_convs_on("off", torch.device("cpu"))
