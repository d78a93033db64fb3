"""An exponential moving average of the generator's weights.

Averaging G's weights over the last few thousand images smooths out the oscillation of GAN
training (Yazıcı et al. 2019; StyleGAN's G_ema). The half-life is set in *images*, not steps,
so it means the same at any batch size, and is capped early on (ramp-up) so the average does
not drag the random initial weights along for the first thousands of steps.

The trap with a BatchNorm generator: the averaged weights do not match G's running statistics
(measured here: FID 370 vs 129 with copied statistics), so before use the GAN method
re-estimates them for the averaged weights (:func:`facegan.models.sampling.recalibrate_batchnorm`).
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
