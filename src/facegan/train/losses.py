"""GAN losses as pure functions of discriminator logits, picked by name.

Each loss is a pair: ``d(real_logits, fake_logits)`` for the discriminator and ``g(fake_logits)``
for the generator, both returning a scalar mean over the batch. Logits (not probabilities) go
in, so ``log(sigmoid(x))`` is computed stably as ``-softplus(-x)``.

=========== ==============================================================================
bce         the brief's (and the DCGAN paper's) binary cross-entropy, with the generator's
            *non-saturating* form: G maximises log D(G(z)) instead of minimising
            log(1 - D(G(z))), whose gradient vanishes while D still wins easily.
hinge       the hinge loss of SAGAN / BigGAN: D pushes real logits above +1 and fake below −1.
lsgan       least squares (Mao et al. 2017): logits regressed to 1 (real) and 0 (fake).
=========== ==============================================================================
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from facegan.errors import FaceganError


class GanLoss(NamedTuple):
    """The two halves of one GAN objective."""

    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]


def bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # -log sigmoid(r) - log(1 - sigmoid(f)) == softplus(-r) + softplus(f)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def bce_g(fake: torch.Tensor) -> torch.Tensor:
    # non-saturating: -log sigmoid(f)
    return F.softplus(-fake).mean()


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


#: Every loss by name; the training config's ``loss`` field picks one.
LOSSES: dict[str, GanLoss] = {
    "bce": GanLoss(bce_d, bce_g),
    "hinge": GanLoss(hinge_d, hinge_g),
    "lsgan": GanLoss(lsgan_d, lsgan_g),
}


def get_loss(name: str) -> GanLoss:
    """The loss registered as ``name`` in :data:`LOSSES`."""
    try:
        return LOSSES[name]
    except KeyError:
        raise FaceganError(f"unknown GAN loss {name!r}; choose one of {', '.join(LOSSES)}") from None
