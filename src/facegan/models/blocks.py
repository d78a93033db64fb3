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

The layer arithmetic the models share is here as well: how many ×2 levels lead from 4×4 to a
resolution (:func:`num_doublings`), the doubling channel widths of DCGAN and the ResNets
(:func:`level_widths`) and a convolution's output size (:func:`conv_output_size`).

The residual blocks of the SN-GAN ResNets (Miyato et al. 2018) live here too: :class:`ResUpBlock`
for generators, :class:`ResDownBlock` and :class:`OptimisedDownBlock` for discriminators, built
with :func:`xavier_layer` (their initialisation, optionally wrapped in :func:`spectral_norm`).
"""

from __future__ import annotations

import math
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

Norm = Literal["batch", "instance", "group", "layer", "none"]
Activation = Literal["relu", "lrelu", "tanh", "none"]
NORMS: tuple[str, ...] = ("batch", "instance", "group", "layer", "none")

_BATCH = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_DECONV = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


# ----------------------------------------------------------------------------- layer arithmetic


def num_doublings(resolution: int) -> int:
    """How many ×2 steps lead from 4×4 to ``resolution`` (which must be a power of two ≥ 8):
    the up-sampling levels of a generator, the down-sampling levels of a discriminator."""
    n = int(round(math.log2(resolution))) if resolution > 0 else 0
    if resolution < 8 or 2**n != resolution:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return n - 2


def level_widths(ch: int, max_mult: int | None, levels: int) -> list[int]:
    """Channels at sizes ``res, res/2, …, res/2**levels``: ``ch * min(2**k, max_mult)``, doubling
    towards the small maps (``max_mult=None``: no cap, DCGAN's ``ch * 2**k``)."""
    return [ch * (2**k if max_mult is None else min(2**k, max_mult)) for k in range(levels + 1)]


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output size of a convolution over ``n`` inputs: ``(N - F + 2P) // S + 1`` (the lecture's
    formula; :func:`facegan.cnn.conv_output_size` is its checked, torch-free teaching version)."""
    return (n + 2 * padding - kernel) // stride + 1


# ----------------------------------------------------------------------------- layers


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


# --- spectral norm and the SN-GAN residual blocks --------------------------------------------

L = TypeVar("L", bound=nn.Module)


class _AutocastOff(nn.Module):
    """Runs a weight parametrization with autocast disabled.

    torch's spectral norm estimates σ(W) with ``torch.mv`` and ``torch.vdot``, which CUDA
    autocast runs in bf16/fp16: u, v and σ would then carry about 3 significant digits and every
    weight would be divided by a rounded σ. Here the parametrization computes in the weight's own
    dtype (fp32), and only the layer's convolution/matmul that uses W/σ runs in low precision.
    """

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not torch.amp.is_autocast_available(weight.device.type):  # e.g. meta tensors
            return self.inner(weight)
        with torch.autocast(weight.device.type, enabled=False):
            return self.inner(weight)

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return self.inner.right_inverse(value)


def spectral_norm(layer: L) -> L:
    """``layer.weight`` divided by its largest singular value, estimated by one power iteration
    per training-mode forward (:func:`torch.nn.utils.parametrizations.spectral_norm`, whose u, v
    buffers live in the state dict), with that estimate kept in fp32 under autocast."""
    parametrizations.spectral_norm(layer)
    chain = layer.parametrizations.weight  # type: ignore[union-attr]
    chain[0] = _AutocastOff(chain[0])
    return layer


def is_spectral_normed(layer: nn.Module) -> bool:
    """Whether ``layer.weight`` is parametrized by :func:`spectral_norm`."""
    chain = getattr(getattr(layer, "parametrizations", None), "weight", None)
    return chain is not None and any(isinstance(p, _AutocastOff) for p in chain)


def xavier_layer(layer: L, gain: float = 1.0, *, sn: bool = False) -> L:
    """``layer`` (a conv or linear) with Xavier-uniform weights scaled by ``gain`` and zero bias,
    then wrapped in :func:`spectral_norm` when ``sn`` — after the init, so that the power
    iteration's 15 warm-up steps start from the final weight."""
    nn.init.xavier_uniform_(layer.weight, gain)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return spectral_norm(layer) if sn else layer


# Xavier gain of the 3x3 convs on the residual path: a ReLU in front of each halves the second
# moment of its input, sqrt(2) restores it (the SN-GAN code's choice). Shortcuts and the
# models' input/output layers have no ReLU to make up for and use 1.
RESIDUAL_GAIN = math.sqrt(2.0)


def _conv(c_in: int, c_out: int, kernel: int, *, bias: bool, gain: float, sn: bool) -> nn.Conv2d:
    """A stride-1 'same' convolution, initialised by :func:`xavier_layer`."""
    return xavier_layer(nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2, bias=bias), gain, sn=sn)


class ResUpBlock(nn.Module):
    """The generator's residual block, doubling the size:
    norm → ReLU → ×2 nearest → conv3×3 → norm → ReLU → conv3×3, plus a 1×1-conv shortcut.

    The shortcut convolves before upsampling: a 1×1 conv commutes exactly with nearest-neighbour
    ×2 (each output pixel is a copy of one input pixel), and the small map costs 4× less.
    A conv directly followed by a norm has no bias (the norm would subtract it).
    """

    def __init__(self, c_in: int, c_out: int, *, norm: Norm = "batch", sn: bool = False):
        super().__init__()
        self.norm1 = make_norm(norm, c_in)
        self.conv1 = _conv(c_in, c_out, 3, bias=norm == "none", gain=RESIDUAL_GAIN, sn=sn)
        self.norm2 = make_norm(norm, c_out)
        self.conv2 = _conv(c_out, c_out, 3, bias=True, gain=RESIDUAL_GAIN, sn=sn)
        self.shortcut = _conv(c_in, c_out, 1, bias=True, gain=1.0, sn=sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, H, W)
        # Not in place: with norm "none" this ReLU would overwrite x, which the shortcut reads.
        h = F.relu(self.norm1(x))  # (B, C_in, H, W)
        h = self.conv1(F.interpolate(h, scale_factor=2, mode="nearest"))  # (B, C_out, 2H, 2W)
        h = self.conv2(F.relu(self.norm2(h), inplace=True))  # (B, C_out, 2H, 2W)
        s = F.interpolate(self.shortcut(x), scale_factor=2, mode="nearest")  # (B, C_out, 2H, 2W)
        return h + s


class ResDownBlock(nn.Module):
    """The discriminator's residual block:
    norm → ReLU → conv3×3 (C_in → C_in) → norm → ReLU → conv3×3 (→ C_out) → 2×2 average pool;
    shortcut 1×1 conv + average pool, or the identity when neither the width nor the size
    changes. ``down=False`` keeps the size. SN-GAN's discriminator uses ``norm="none"``.

    The shortcut pools before its 1×1 conv: both are linear and act on different axes (space,
    channels), so the order does not change the result, and pooling first costs 4× less.
    """

    def __init__(self, c_in: int, c_out: int, *, down: bool = True, norm: Norm = "none", sn: bool = True):
        super().__init__()
        self.down = down
        self.norm1 = make_norm(norm, c_in)
        self.conv1 = _conv(c_in, c_in, 3, bias=norm == "none", gain=RESIDUAL_GAIN, sn=sn)
        self.norm2 = make_norm(norm, c_in)
        self.conv2 = _conv(c_in, c_out, 3, bias=True, gain=RESIDUAL_GAIN, sn=sn)
        learnable = down or c_in != c_out
        self.shortcut = _conv(c_in, c_out, 1, bias=True, gain=1.0, sn=sn) if learnable else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, H, W)
        # Not in place: x itself feeds the shortcut.
        h = self.conv1(F.relu(self.norm1(x)))  # (B, C_in, H, W)
        h = self.conv2(F.relu(self.norm2(h), inplace=True))  # (B, C_out, H, W)
        s = x
        if self.down:
            h = F.avg_pool2d(h, 2)  # (B, C_out, H/2, W/2)
            s = F.avg_pool2d(s, 2)  # (B, C_in, H/2, W/2)
        return h + self.shortcut(s)  # (B, C_out, H/2, W/2), or (B, C_out, H, W) without down


class OptimisedDownBlock(nn.Module):
    """The discriminator's first residual block (SN-GAN's "optimised" block), halving the size:
    conv3×3 → norm → ReLU → conv3×3 → 2×2 average pool; shortcut average pool → 1×1 conv.

    It has no leading ReLU (it would clip the input image) and its first conv already widens
    to ``c_out``: the 3-channel input is too thin to keep at full resolution.
    """

    def __init__(self, c_in: int, c_out: int, *, norm: Norm = "none", sn: bool = True):
        super().__init__()
        self.conv1 = _conv(c_in, c_out, 3, bias=norm == "none", gain=RESIDUAL_GAIN, sn=sn)
        self.norm1 = make_norm(norm, c_out)
        self.conv2 = _conv(c_out, c_out, 3, bias=True, gain=RESIDUAL_GAIN, sn=sn)
        self.shortcut = _conv(c_in, c_out, 1, bias=True, gain=1.0, sn=sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, H, W)
        h = self.conv1(x)  # (B, C_out, H, W)
        h = self.conv2(F.relu(self.norm1(h), inplace=True))  # (B, C_out, H, W)
        h = F.avg_pool2d(h, 2)  # (B, C_out, H/2, W/2)
        return h + self.shortcut(F.avg_pool2d(x, 2))  # (B, C_out, H/2, W/2)
