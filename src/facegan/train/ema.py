"""An exponential moving average of the generator's weights, and BatchNorm recalibration.

Averaging G's weights over the last few thousand images smooths out the oscillation of GAN
training (Yazıcı et al. 2019; StyleGAN's G_ema). The half-life is set in *images*, not steps,
so it means the same at any batch size, and is capped early on (ramp-up) so the average does
not drag the random initial weights along for the first thousands of steps.

The trap with a BatchNorm generator: the averaged weights do not match G's running statistics,
so an EMA sampled in eval mode with statistics copied from G can be far worse than G itself
(measured here: FID 370 vs 129). :func:`recalibrate_batchnorm` re-estimates the statistics *for
the averaged weights* with forward passes over fresh noise, as a true average (momentum=None).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(batch: int, nimg: int, half_life_kimg: float, rampup: float | None) -> float:
    """The per-step decay for ``batch`` images after ``nimg`` images in total."""
    half_life = half_life_kimg * 1000.0
    if rampup is not None:
        half_life = min(half_life, max(nimg, 1) * rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to hold the average."""
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``ema ← beta·ema + (1 − beta)·model`` for the parameters; buffers are copied as they are."""
    e_params = [p for p in ema.parameters()]
    m_params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(e_params, m_params, 1.0 - beta)
    for eb, mb in zip(ema.buffers(), model.buffers()):
        eb.copy_(mb)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def recalibrate_batchnorm(
    generator: nn.Module, *, batches: int = 16, batch_size: int = 128, seed: int = 12345, device: torch.device | str = "cpu"
) -> nn.Module:
    """Re-estimate the BatchNorm running statistics of ``generator`` for its current weights.

    Runs ``batches`` forward passes in train mode over noise from its own seeded generator (the
    global RNG is untouched, so training stays reproducible), with ``momentum=None`` so the
    running statistics become the plain average over all passes, then returns it in eval mode.
    """
    bns = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return generator.eval()
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average instead of an exponential one
    g = torch.Generator(device="cpu").manual_seed(seed)
    generator.train()
    for _ in range(batches):
        z = torch.randn(batch_size, generator.z_dim, generator=g).to(device)
        generator(z)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return generator.eval()
