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

import math

import torch
from torch import nn

from facegan.models.blocks import ConvBlock, Norm, UpBlock
from facegan.models.registry import register


def _num_doublings(resolution: int) -> int:
    """How many ×2 steps lead from 4×4 to ``resolution`` (which must be a power of two ≥ 8)."""
    n = int(round(math.log2(resolution))) if resolution > 0 else 0
    if resolution < 8 or 2**n != resolution:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return n - 2


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


@register("generator", "dcgan")
class DCGANGenerator(nn.Module):
    """z (B, z_dim) → image (B, 3, resolution, resolution) in [-1, 1].

    Args:
        z_dim: size of the latent vector (the paper: 100).
        ngf: width of the last hidden layer; layer k from the end has ``ngf * 2**k`` channels.
        resolution: output size, a power of two ≥ 8 (the brief: 64).
        norm: normalization after each hidden transposed conv (the paper: batch).
    """

    def __init__(self, z_dim: int = 100, ngf: int = 64, resolution: int = 64, norm: Norm = "batch"):
        super().__init__()
        if z_dim < 1 or ngf < 1:
            raise ValueError(f"z_dim and ngf must be positive, got {z_dim}, {ngf}")
        self.z_dim, self.resolution = z_dim, resolution
        ups = _num_doublings(resolution)  # 4 for 64×64
        widths = [ngf * 2 ** (ups - 1 - i) for i in range(ups)]  # 64×64: 512, 256, 128, 64
        layers: list[nn.Module] = [UpBlock(z_dim, widths[0], 4, 1, 0, norm=norm)]  # (B, 8ngf, 4, 4)
        for c_in, c_out in zip(widths, widths[1:]):
            layers.append(UpBlock(c_in, c_out, 4, 2, 1, norm=norm))  # (B, C/2, 2H, 2W)
        layers.append(UpBlock(widths[-1], 3, 4, 2, 1, norm="none", act="tanh"))  # (B, 3, res, res)
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (B, z_dim, 1, 1) → (B, 3, res, res)


@register("discriminator", "dcgan")
class DCGANDiscriminator(nn.Module):
    """image (B, 3, resolution, resolution) in [-1, 1] → one real/fake logit per image (B,).

    Args:
        ndf: width of the first layer; layer k has ``ndf * 2**k`` channels.
        resolution: input size, a power of two ≥ 8.
        norm: normalization after each conv but the first (the paper: batch).
        dropout: dropout probability after each hidden layer (0: none, as in the paper).
    """

    def __init__(self, ndf: int = 64, resolution: int = 64, norm: Norm = "batch", dropout: float = 0.0):
        super().__init__()
        if ndf < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"need ndf >= 1 and 0 <= dropout < 1, got {ndf}, {dropout}")
        self.resolution = resolution
        downs = _num_doublings(resolution)
        widths = [ndf * 2**i for i in range(downs)]  # 64×64: 64, 128, 256, 512
        # No norm on the first layer (the paper): it would normalise away the input's colours.
        layers: list[nn.Module] = [ConvBlock(3, widths[0], 4, 2, 1, norm="none", act="lrelu", dropout=dropout)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers.append(ConvBlock(c_in, c_out, 4, 2, 1, norm=norm, act="lrelu", dropout=dropout))  # (B, 2C, H/2, W/2)
        layers.append(ConvBlock(widths[-1], 1, 4, 1, 0, norm="none", act="none"))  # (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()  # (B,)
