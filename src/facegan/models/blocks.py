"""The lecture's building blocks: convolution → normalization → activation (→ dropout).

Every network in facegan — the GAN generators and discriminators and the lecture's small
1-D/3-D CNNs — is assembled from these, so a ``norm`` option means the same thing everywhere:

======== ====================================================================================
batch    BatchNorm: per-channel statistics over (B, H, W); batch statistics in train mode,
         running averages in eval mode (so the two modes give different outputs).
instance InstanceNorm: per-sample, per-channel statistics over (H, W) — no batch dependence.
group    GroupNorm: per-sample statistics over groups of channels (and H, W).
layer    LayerNorm over (C, H, W) of each sample, written as GroupNorm with a single group.
none     no normalization (the convolution then keeps its bias).
======== ====================================================================================
"""

from __future__ import annotations

from typing import Literal

from torch import nn

Norm = Literal["batch", "instance", "group", "layer", "none"]
Activation = Literal["relu", "lrelu", "tanh", "none"]
NORMS: tuple[str, ...] = ("batch", "instance", "group", "layer", "none")

_BATCH = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_DECONV = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def num_groups(channels: int, preferred: int = 32) -> int:
    """The largest group count <= ``preferred`` that divides ``channels`` (GroupNorm needs it)."""
    for g in range(min(preferred, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def make_norm(kind: Norm, channels: int, dims: int = 2) -> nn.Module:
    """A normalization layer for ``channels`` feature maps of ``dims`` spatial dimensions."""
    if kind == "batch":
        return _BATCH[dims](channels)
    if kind == "instance":
        return _INSTANCE[dims](channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(num_groups(channels), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # one group = normalise over all of (C, *spatial)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def make_activation(kind: Activation, slope: float = 0.2) -> nn.Module:
    """ReLU, LeakyReLU(``slope``), Tanh or identity."""
    table = {
        "relu": lambda: nn.ReLU(inplace=True),
        "lrelu": lambda: nn.LeakyReLU(slope, inplace=True),
        "tanh": nn.Tanh,
        "none": nn.Identity,
    }
    if kind not in table:
        raise ValueError(f"unknown activation {kind!r}; choose one of {', '.join(table)}")
    return table[kind]()


class ConvBlock(nn.Sequential):
    """conv(F, S, P) → norm → activation → dropout; output size ``(N - F + 2P) / S + 1``.

    The convolution has a bias only when there is no normalization after it: a norm layer
    subtracts the mean, which would cancel the bias anyway.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        stride: int = 1,
        padding: int = 1,
        *,
        norm: Norm = "batch",
        act: Activation = "relu",
        dropout: float = 0.0,
        dims: int = 2,
    ):
        layers: list[nn.Module] = [
            _CONV[dims](c_in, c_out, kernel, stride, padding, bias=norm == "none"),
            make_norm(norm, c_out, dims),
            make_activation(act),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*[m for m in layers if not isinstance(m, nn.Identity)])


class UpBlock(nn.Sequential):
    """transposed conv(F, S, P) → norm → activation; output size ``(N - 1)S - 2P + F``."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 4,
        stride: int = 2,
        padding: int = 1,
        *,
        norm: Norm = "batch",
        act: Activation = "relu",
        dims: int = 2,
    ):
        layers = [
            _DECONV[dims](c_in, c_out, kernel, stride, padding, bias=norm == "none"),
            make_norm(norm, c_out, dims),
            make_activation(act),
        ]
        super().__init__(*[m for m in layers if not isinstance(m, nn.Identity)])
