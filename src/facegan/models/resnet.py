"""The ResNet SN-GAN (Miyato et al. 2018, "Spectral Normalization for GANs"; the 64-px layout
also used by Mimicry and StudioGAN), at any power-of-two size >= 8.

Generator: z (128) → linear → 4×4 map, ``log2(res) - 2`` residual up-blocks that double the
size (:class:`~facegan.models.blocks.ResUpBlock`), then BatchNorm → ReLU → conv3×3 → tanh.
Discriminator: the optimised first block and residual down-blocks
(:class:`~facegan.models.blocks.OptimisedDownBlock`, :class:`~facegan.models.blocks.ResDownBlock`)
down to 4×4, one more block that keeps 4×4, ReLU, global *sum* pooling, linear → one logit.
Spectral norm on every conv and linear of D (``sn``); G can have it too (off by default, as in
the paper). D has no normalization by default, so each image's logit depends on that image
alone and real and fake can share one forward.

Widths: G's blocks at size ``res / 2**k`` and D's k-th block (counting from 0) have
``ch * min(2**k, max_mult)`` channels. At 64 px with ``ch=64, max_mult=8``: G 512 (4×4), 512, 256, 128, 64 (64×64);
D 64 (32×32), 128, 256, 512 (4×4), 512. That is half the paper's width in the two deepest
levels; ``max_mult=16`` and (for D) ``last_down=True`` give the published 64-px networks
exactly (G 1024…64; D 64…1024 ending at 2×2, Miyato et al.'s and Mimicry's layout).

Parameters at 64 px with the defaults (counted, and checked by a test): G 8,540,483,
D 7,255,809; the published width (``max_mult=16``, D ``last_down=True``): G 12,219,715, D 10,141,441.

Initialisation: Xavier-uniform weights and zero biases, as in the SN-GAN code (Chainer's
GlorotUniform; Mimicry): gain √2 on the 3×3 convs of every residual path (each follows a
ReLU, which halves its input's second moment), gain 1 on the 1×1 shortcuts, G's linear and
output conv and D's linear. With spectral norm the forward pass of D does not depend on the
weights' scale, but Adam's steps are a fixed size, so the initial scale sets how fast the
normalised weights turn: keeping the published init keeps the published learning rates
meaningful. BatchNorm starts at γ = 1, β = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facegan.models.blocks import (
    NORMS, Norm, OptimisedDownBlock, ResDownBlock, ResUpBlock, level_widths, make_norm, num_doublings, xavier_layer,
)
from facegan.models.registry import DISCRIMINATORS, GENERATORS


def _check_common(ch: int, max_mult: int, norm: str, resolution: int) -> None:
    if ch < 1 or max_mult < 1:
        raise ValueError(f"ch and max_mult must be at least 1, got {ch}, {max_mult}")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    num_doublings(resolution)


@dataclass
class ResNetGeneratorConfig:
    """The ResNet SN-GAN generator's options (the paper's values, half width at 4×4 and 8×8)."""

    z_dim: int = 128
    """size of the generator's latent vector z"""
    ch: int = 64
    """generator width: channels of its last block (ch * min(2**k, max_mult) at size res/2**k)"""
    max_mult: int = 8
    """cap on the width multiplier of the deep levels (16: the paper's 1024 channels at 4x4)"""
    norm: Norm = "batch"
    """normalization in the residual blocks and before the output conv (batch, instance, group, layer, none)"""
    sn: bool = False
    """spectral norm on every conv and linear of the generator too (off in the paper)"""
    resolution: int = 64
    """output size, a power of two >= 8 (set from the training config's --resolution)"""

    def __post_init__(self) -> None:
        if self.z_dim < 1:
            raise ValueError(f"z_dim must be at least 1, got {self.z_dim}")
        _check_common(self.ch, self.max_mult, self.norm, self.resolution)


@dataclass
class ResNetDiscriminatorConfig:
    """The ResNet SN-GAN discriminator's options (the paper's values, half width at 4×4)."""

    ch: int = 64
    """discriminator width: channels of its first block (ch * min(2**k, max_mult) at size res/2**(k+1))"""
    max_mult: int = 8
    """cap on the width multiplier of the deep levels (16: the paper's 1024 channels at the end)"""
    norm: Norm = "none"
    """normalization in the residual blocks (none in the paper; batch makes logits depend on the batch)"""
    sn: bool = True
    """spectral norm on every conv and linear of the discriminator (the paper's)"""
    last_down: bool = False
    """the last block also halves the size (4x4 -> 2x2), the paper's and Mimicry's 64-px layout"""
    resolution: int = 64
    """input size, a power of two >= 8 (set from the training config's --resolution)"""

    def __post_init__(self) -> None:
        _check_common(self.ch, self.max_mult, self.norm, self.resolution)


@GENERATORS.register("resnet", config=ResNetGeneratorConfig)
class ResNetGenerator(nn.Module):
    """z (B, z_dim) → image (B, 3, resolution, resolution) in [-1, 1]; options in
    :class:`ResNetGeneratorConfig`."""

    def __init__(self, cfg: ResNetGeneratorConfig | None = None):
        super().__init__()
        cfg = cfg or ResNetGeneratorConfig()
        self.z_dim, self.resolution = cfg.z_dim, cfg.resolution
        ups = num_doublings(cfg.resolution)  # 4 for 64×64
        widths = level_widths(cfg.ch, cfg.max_mult, ups)[::-1]  # 4×4 first: 64 px → 512, 512, 256, 128, 64
        self.bottom = widths[0]
        self.fc = xavier_layer(nn.Linear(cfg.z_dim, 4 * 4 * widths[0]), sn=cfg.sn)
        self.blocks = nn.Sequential(*[ResUpBlock(a, b, norm=cfg.norm, sn=cfg.sn) for a, b in zip(widths, widths[1:])])
        self.norm = make_norm(cfg.norm, widths[-1])
        self.to_rgb = xavier_layer(nn.Conv2d(widths[-1], 3, 3, 1, 1), sn=cfg.sn)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # z: (B, z_dim)
        h = self.fc(z).view(-1, self.bottom, 4, 4)  # (B, C, 4, 4)
        h = self.blocks(h)  # (B, ch, res, res)
        h = torch.relu(self.norm(h))  # (B, ch, res, res)
        return torch.tanh(self.to_rgb(h))  # (B, 3, res, res)


@DISCRIMINATORS.register("resnet", config=ResNetDiscriminatorConfig)
class ResNetDiscriminator(nn.Module):
    """image (B, 3, resolution, resolution) in [-1, 1] → one real/fake logit per image (B,);
    options in :class:`ResNetDiscriminatorConfig`."""

    def __init__(self, cfg: ResNetDiscriminatorConfig | None = None):
        super().__init__()
        cfg = cfg or ResNetDiscriminatorConfig()
        self.resolution = cfg.resolution
        downs = num_doublings(cfg.resolution)  # 4 for 64×64: 32, 16, 8, 4
        widths = level_widths(cfg.ch, cfg.max_mult, downs)  # 64 px → 64, 128, 256, 512, 512
        blocks: list[nn.Module] = [OptimisedDownBlock(3, widths[0], norm=cfg.norm, sn=cfg.sn)]  # (B, ch, res/2, res/2)
        for c_in, c_out in zip(widths[: downs - 1], widths[1:downs]):
            blocks.append(ResDownBlock(c_in, c_out, norm=cfg.norm, sn=cfg.sn))  # (B, C', H/2, W/2)
        blocks.append(ResDownBlock(widths[downs - 1], widths[downs], down=cfg.last_down, norm=cfg.norm, sn=cfg.sn))
        self.blocks = nn.Sequential(*blocks)
        self.fc = xavier_layer(nn.Linear(widths[-1], 1), sn=cfg.sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, res, res)
        h = torch.relu(self.blocks(x))  # (B, C, 4, 4), or (B, C, 2, 2) with last_down
        h = h.sum(dim=(2, 3))  # (B, C): global sum pooling (the paper's), not the mean
        return self.fc(h).flatten()  # (B,)
