"""The brief's DCGAN (Radford et al. 2015; the PyTorch DCGAN tutorial), at any power-of-two size.

Generator: z → 4×4 by a transposed conv (stride 1, no padding), then 4×4 stride-2 transposed
convs that double the size and halve the width, BatchNorm + ReLU between them, Tanh at the end.
Discriminator: the mirror image — 4×4 stride-2 convs with LeakyReLU(0.2), BatchNorm on every
layer but the first, down to 4×4, then one 4×4 conv to a single logit (no sigmoid: the losses
take logits, which is numerically safer than BCE on probabilities).

Both are assembled from :mod:`facegan.models.blocks`, so ``norm`` means the same as everywhere
else in facegan; weights start from N(0, 0.02) as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facegan.models.blocks import ConvBlock, Norm, UpBlock, level_widths, num_doublings
from facegan.models.registry import DISCRIMINATORS, GENERATORS


def init_dcgan_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@dataclass
class DCGANGeneratorConfig:
    """The DCGAN generator's options (the paper's values by default)."""

    z_dim: int = 100
    """size of the generator's latent vector z"""
    ngf: int = 64
    """generator width (channels of its last hidden layer; doubled per layer towards z)"""
    norm: Norm = "batch"
    """normalization after each hidden transposed conv (batch, instance, group, layer, none)"""
    resolution: int = 64
    """output size, a power of two >= 8 (set from the training config's --resolution)"""

    def __post_init__(self) -> None:
        if self.z_dim < 1 or self.ngf < 1:
            raise ValueError(f"z_dim and ngf must be at least 1, got {self.z_dim}, {self.ngf}")
        num_doublings(self.resolution)


@dataclass
class DCGANDiscriminatorConfig:
    """The DCGAN discriminator's options (the paper's values by default)."""

    ndf: int = 64
    """discriminator width (channels of its first layer; doubled per layer)"""
    norm: Norm = "batch"
    """normalization after each conv but the first (batch, instance, group, layer, none)"""
    dropout: float = 0.0
    """dropout probability after each hidden layer (0: none, as in the paper)"""
    resolution: int = 64
    """input size, a power of two >= 8 (set from the training config's --resolution)"""

    def __post_init__(self) -> None:
        if self.ndf < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"need ndf >= 1 and 0 <= dropout < 1, got {self.ndf}, {self.dropout}")
        num_doublings(self.resolution)


@GENERATORS.register("dcgan", config=DCGANGeneratorConfig)
class DCGANGenerator(nn.Module):
    """z (B, z_dim) → image (B, 3, resolution, resolution) in [-1, 1]; options in
    :class:`DCGANGeneratorConfig`. Layer k from the end has ``ngf * 2**k`` channels."""

    def __init__(self, cfg: DCGANGeneratorConfig | None = None):
        super().__init__()
        cfg = cfg or DCGANGeneratorConfig()
        z_dim, ngf, resolution, norm = cfg.z_dim, cfg.ngf, cfg.resolution, cfg.norm
        self.z_dim, self.resolution = z_dim, resolution
        ups = num_doublings(resolution)  # 4 for 64×64
        widths = level_widths(ngf, None, ups - 1)[::-1]  # 64×64: 512, 256, 128, 64
        layers: list[nn.Module] = [UpBlock(z_dim, widths[0], 4, 1, 0, norm=norm)]  # (B, 8ngf, 4, 4)
        for c_in, c_out in zip(widths, widths[1:]):
            layers.append(UpBlock(c_in, c_out, 4, 2, 1, norm=norm))  # (B, C/2, 2H, 2W)
        layers.append(UpBlock(widths[-1], 3, 4, 2, 1, norm="none", act="tanh"))  # (B, 3, res, res)
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (B, z_dim, 1, 1) → (B, 3, res, res)


@DISCRIMINATORS.register("dcgan", config=DCGANDiscriminatorConfig)
class DCGANDiscriminator(nn.Module):
    """image (B, 3, resolution, resolution) in [-1, 1] → one real/fake logit per image (B,);
    options in :class:`DCGANDiscriminatorConfig`. Layer k has ``ndf * 2**k`` channels."""

    def __init__(self, cfg: DCGANDiscriminatorConfig | None = None):
        super().__init__()
        cfg = cfg or DCGANDiscriminatorConfig()
        ndf, resolution, norm, dropout = cfg.ndf, cfg.resolution, cfg.norm, cfg.dropout
        self.resolution = resolution
        downs = num_doublings(resolution)
        widths = level_widths(ndf, None, downs - 1)  # 64×64: 64, 128, 256, 512
        # No norm on the first layer (the paper): it would normalise away the input's colours.
        layers: list[nn.Module] = [ConvBlock(3, widths[0], 4, 2, 1, norm="none", act="lrelu", dropout=dropout)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers.append(ConvBlock(c_in, c_out, 4, 2, 1, norm=norm, act="lrelu", dropout=dropout))  # (B, 2C, H/2, W/2)
        layers.append(ConvBlock(widths[-1], 1, 4, 1, 0, norm="none", act="none"))  # (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()  # (B,)
