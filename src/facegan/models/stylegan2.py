"""StyleGAN2 for small images (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"; the training recipe of "Training GANs with Limited Data"), written from the papers.

Generator: z → *mapping* (z normalised to unit second moment, ``map_layers`` fully connected
layers with leaky ReLU, learning rate × ``map_lr_mul`` = 0.01) → w, one copy per layer ("ws";
two different w's past a random crossover layer with style mixing, in training only). The
*synthesis* starts from a learned 4×4 constant; each level has modulated 3×3 convolutions (the
first of each level after 4×4 upsamples ×2), per-pixel noise with a learned strength (starting
at 0), a bias and leaky ReLU(0.2) × √2, and a 1×1 modulated "toRGB" whose output is added to the
upsampled RGB of the level below ("skip" outputs).

Discriminator: "residual": fromRGB 1×1 at full size, then per level conv3×3 → ×½ → conv3×3
plus a 1×1 shortcut of the pooled input, summed and × √½; at 4×4 a minibatch-stddev channel,
a conv3×3, a fully connected layer and the logit.

Equalized learning rate everywhere: each weight is stored as N(0, 1) (÷ lr_mul) and multiplied
at run time by ``lr_mul / sqrt(fan_in)``, so Adam's per-weight steps are the same relative size
in every layer; biases are stored ÷ lr_mul and multiplied back.

Modulation and demodulation (the paper's eq. 1-3), written without a per-sample weight: with
style s (B, C_in) and the shared weight W (C_out, C_in, k, k), the per-sample weight
``W'[b] = W · s[b]`` over C_in, and ``W''[b] = W'[b] / sqrt(Σ W'[b]² + ε)`` over (C_in, k, k).
Convolving x[b] with W''[b] equals scaling x by s[b] per input channel, convolving with the one
shared W, and scaling the output by ``d[b, o] = 1 / sqrt(Σ_i s[b, i]² Σ_k W[o, i, k]² + ε)``
per output channel — one ordinary convolution for the batch instead of a grouped one per sample
(slow on CPUs). A test checks the two agree.

Resampling: G's upsampling convs are a stride-2 transposed conv of the small map followed by the
[1, 3, 3, 1] low-pass filter (:func:`upsample_conv`: a quarter of the cost of upsampling first);
its skip RGB is upsampled bilinearly (the same filter away from the borders). D pools 2×2 before
its downsampling convs (the papers blur, then convolve with stride 2: the same cost). A per-channel
style scale commutes with all of it, so G modulates on the smaller map.

In eval mode (sampling, FID, grids) the noise inputs are fixed buffers, so an image depends on
its seed alone, and the output is clamped to [-1, 1] (the generator has no tanh: in training D
sees the unclamped output, as in the paper).

Widths: a level of size r has ``min(channel_base / r, channel_max)`` channels in G and D. The
narrow default (2048 / 256: 256, 256, 128, 64, 32 channels at 4 … 64 px) runs on a CPU;
``channel_base=16384, channel_max=512`` is the limited-data paper's 64-px network (512 channels
down to 32 px, 256 at 64 px) for GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facegan.models.blocks import num_doublings
from facegan.models.registry import DISCRIMINATORS, GENERATORS

SQRT2 = math.sqrt(2.0)


def equalized_lr_scale(fan_in: int, lr_mul: float = 1.0) -> float:
    """The run-time weight scale of equalized learning rate: ``lr_mul / sqrt(fan_in)`` (He's
    constant, applied in the forward pass instead of at initialisation)."""
    return lr_mul / math.sqrt(fan_in)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU(0.2) × √2: keeps the second moment of a unit-variance input near 1."""
    return F.leaky_relu(x, 0.2) * SQRT2


def _autocast_on(x: torch.Tensor) -> bool:
    return torch.amp.is_autocast_available(x.device.type) and torch.is_autocast_enabled(x.device.type)


def _fp32(x: torch.Tensor):
    """A context with autocast off on ``x``'s device (styles, demodulation and the mapping stay fp32)."""
    if torch.amp.is_autocast_available(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    import contextlib

    return contextlib.nullcontext()


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """x in fp32, or in float64 when it already is (the tests check the maths in float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _clamp(x: torch.Tensor, limit: float | None) -> torch.Tensor:
    """Clamp activations to ±limit under autocast only (the limited-data paper's guard for its
    reduced-precision layers; in fp32 a sane run never gets near it, so it is left out)."""
    return x.clamp(-limit, limit) if limit is not None and _autocast_on(x) else x


def widths_for(channel_base: int, channel_max: int, resolution: int) -> dict[int, int]:
    """Channels at each size 4, 8, …, resolution: ``min(channel_base // size, channel_max)``, at least 1."""
    return {4 * 2**k: max(1, min(channel_base // (4 * 2**k), channel_max)) for k in range(num_doublings(resolution) + 1)}


# --- equalized-learning-rate layers ---------------------------------------------------------------

class EqualLinear(nn.Module):
    """y = x · (W · lr_mul / √fan_in)ᵀ + b · lr_mul, W stored as N(0, 1) / lr_mul; optional lrelu × √2."""

    def __init__(self, c_in: int, c_out: int, *, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.act = equalized_lr_scale(c_in, lr_mul), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in) -> (B, c_out)
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return _lrelu(y) if self.act else y


class EqualConv2d(nn.Module):
    """A stride-1 'same' k×k convolution with W stored as N(0, 1), used as W / √(c_in·k·k);
    optional bias (starting at 0) and lrelu × √2."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, bias: bool = True, act: bool = False,
                 clamp: float | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale, self.act, self.clamp, self.pad = equalized_lr_scale(c_in * kernel * kernel), act, clamp, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, H, W) -> (B, c_out, H, W)
        y = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)
        return _clamp(_lrelu(y) if self.act else y, self.clamp)


# --- generator --------------------------------------------------------------------------------------

def _fir_kernel(channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The [1, 3, 3, 1] ⊗ [1, 3, 3, 1] filter, normalised to sum 4 (×2 upsampling in 2-D inserts
    three zeros per pixel), one copy per channel for a depthwise conv: (C, 1, 4, 4)."""
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float32, device=device)
    k = torch.outer(f, f) * (4.0 / 64.0)
    return k.to(dtype)[None, None].expand(channels, 1, 4, 4)


def upsample_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """×2 upsampling followed by a 3×3 conv, at a quarter of its cost: a stride-2 transposed
    conv of the small map (its zero-inserting upsample and the conv in one, 2H+1 wide), then the
    [1, 3, 3, 1] low-pass filter, cropped back to 2H. Both are linear and shift-invariant, so the
    order does not matter; the transposed conv flips the kernel, which a learned kernel does
    not notice. x (B, C_in, H, W), weight (C_out, C_in, 3, 3) → (B, C_out, 2H, 2W)."""
    y = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)  # (B, C_out, 2H+1, 2W+1)
    return F.conv2d(y, _fir_kernel(y.shape[1], y.dtype, y.device), padding=1, groups=y.shape[1])

class ModulatedConv2d(nn.Module):
    """A k×k convolution modulated per sample by a style from w (and demodulated when ``demod``);
    ``up`` upsamples ×2 first. Written as input scaling → one shared conv → output scaling."""

    def __init__(self, c_in: int, c_out: int, kernel: int, w_dim: int, *, demod: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)  # styles start at 1: the plain conv
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.scale, self.demod, self.up, self.pad = equalized_lr_scale(c_in * kernel * kernel), demod, up, kernel // 2

    def styles_and_demod(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Styles s (B, c_in) and demodulation factors d (B, c_out) (None without demod), in fp32."""
        with _fp32(w):
            s = self.affine(_at_least_fp32(w))  # (B, c_in)
            if not self.demod:
                return s, None
            wsq = (_at_least_fp32(self.weight) * self.scale).square().sum(dim=(2, 3))  # (c_out, c_in)
            d = torch.rsqrt(s.square() @ wsq.t() + 1e-8)  # (B, c_out)
        return s, d

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # x (B, c_in, H, W), w (B, w_dim)
        s, d = self.styles_and_demod(w)
        x = x * s[:, :, None, None].to(x.dtype)  # modulate the input: per input channel
        weight = (self.weight * self.scale).to(x.dtype)
        if self.up:  # one shared conv for the batch, on the small map (see upsample_conv)
            y = upsample_conv(x, weight)  # (B, c_out, 2H, 2W)
        else:
            y = F.conv2d(x, weight, padding=self.pad)  # (B, c_out, H, W)
        return y if d is None else y * d[:, :, None, None].to(y.dtype)  # demodulate: per output channel


class NoiseInput(nn.Module):
    """Adds ``strength`` × per-pixel N(0, 1) noise (one map shared by the channels); the strength
    is learned and starts at 0. Training draws fresh noise; eval uses a fixed map (a buffer)."""

    def __init__(self, size: int):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("fixed", torch.randn(1, 1, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        else:
            noise = self.fixed.to(x.dtype)
        return x + noise * self.strength.to(x.dtype)


class StyleLayer(nn.Module):
    """Modulated conv → noise (unless ``noise`` is off) → bias → lrelu × √2 (→ clamp under autocast)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, size: int, *, up: bool, clamp: float | None,
                 noise: bool = True):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, 3, w_dim, up=up)
        self.noise = NoiseInput(size) if noise else nn.Identity()
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.clamp = clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = self.noise(self.conv(x, w)) + self.bias[None, :, None, None]
        return _clamp(_lrelu(y), self.clamp)


class ToRGB(nn.Module):
    """Modulated 1×1 conv to RGB, without demodulation (the output's scale is the point), + bias."""

    def __init__(self, c_in: int, w_dim: int, clamp: float | None):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, 3, 1, w_dim, demod=False)
        self.bias = nn.Parameter(torch.zeros(3))
        self.clamp = clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return _clamp(self.conv(x, w) + self.bias[None, :, None, None], self.clamp)


class MappingNetwork(nn.Module):
    """z (B, z_dim) → w (B, w_dim): z / rms(z), then ``layers`` FC + lrelu × √2 at lr × ``lr_mul``."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.fcs = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims, dims[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        with _fp32(z):  # a few tiny matrix products: fp32 costs nothing and keeps w exact
            x = _at_least_fp32(z)
            x = x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)
            for fc in self.fcs:
                x = fc(x)
        return x


@dataclass
class StyleGAN2GeneratorConfig:
    """The StyleGAN2 generator's options (narrow widths for CPUs by default)."""

    z_dim: int = 512
    """size of the latent vector z"""
    w_dim: int = 512
    """size of the intermediate latent w (the styles' source)"""
    map_layers: int = 2
    """fully connected layers of the mapping network (2: the limited-data paper's small-image choice; 8 in the StyleGAN2 paper)"""
    map_lr_mul: float = 0.01
    """learning-rate multiplier of the mapping network (the paper's 0.01)"""
    channel_base: int = 2048
    """width: a level of size r has min(channel_base / r, channel_max) channels (16384 with channel_max 512: the paper's 64-px GPU network)"""
    channel_max: int = 256
    """cap on a level's channels"""
    noise: bool = True
    """per-pixel noise inputs with learned strengths (false: none; see bench/RESULTS.md, "StyleGAN2's noise inputs")"""
    mixing: float = 0.9
    """style mixing: probability that a training image takes a second z's w from a random layer on (0: off)"""
    conv_clamp: float | None = 256.0
    """under autocast, clamp activations to +-this (reduced precision's overflow guard; none: never)"""
    resolution: int = 64
    """output size, a power of two >= 8 (set from the training config's --resolution)"""

    def __post_init__(self) -> None:
        if min(self.z_dim, self.w_dim, self.map_layers, self.channel_base, self.channel_max) < 1:
            raise ValueError("z_dim, w_dim, map_layers, channel_base and channel_max must be at least 1")
        if not self.map_lr_mul > 0 or not 0.0 <= self.mixing <= 1.0:
            raise ValueError(f"need map_lr_mul > 0 and 0 <= mixing <= 1, got {self.map_lr_mul}, {self.mixing}")
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise ValueError(f"conv_clamp must be positive or None, got {self.conv_clamp}")
        num_doublings(self.resolution)


@GENERATORS.register("stylegan2", config=StyleGAN2GeneratorConfig)
class StyleGAN2Generator(nn.Module):
    """z (B, z_dim) → image (B, 3, resolution, resolution); options in :class:`StyleGAN2GeneratorConfig`.
    Clamped to [-1, 1] in eval mode only (see the module's docstring)."""

    def __init__(self, cfg: StyleGAN2GeneratorConfig | None = None):
        super().__init__()
        cfg = cfg or StyleGAN2GeneratorConfig()
        self.z_dim, self.w_dim, self.resolution, self.mixing = cfg.z_dim, cfg.w_dim, cfg.resolution, cfg.mixing
        ch = widths_for(cfg.channel_base, cfg.channel_max, cfg.resolution)
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.map_layers, cfg.map_lr_mul)
        self.const = nn.Parameter(torch.randn(1, ch[4], 4, 4))
        # Layers in order of the w they read: 4x4 conv (w0), then per level up-conv, conv; each
        # toRGB shares its w with the next level's first conv (so 2·log2(res) − 2 w's in all).
        layer = dict(w_dim=cfg.w_dim, clamp=cfg.conv_clamp, noise=cfg.noise)
        self.convs = nn.ModuleList([StyleLayer(ch[4], ch[4], size=4, up=False, **layer)])
        self.to_rgbs = nn.ModuleList([ToRGB(ch[4], cfg.w_dim, cfg.conv_clamp)])
        for size in list(ch)[1:]:
            self.convs.append(StyleLayer(ch[size // 2], ch[size], size=size, up=True, **layer))
            self.convs.append(StyleLayer(ch[size], ch[size], size=size, up=False, **layer))
            self.to_rgbs.append(ToRGB(ch[size], cfg.w_dim, cfg.conv_clamp))
        self.num_ws = len(self.convs) + 1

    def make_ws(self, z: torch.Tensor) -> torch.Tensor:
        """(B, num_ws, w_dim): one w per layer. In training with ``mixing`` > 0, each image mixes
        with probability ``mixing``: from a random layer 1 … num_ws−1 on, the w of a fresh z."""
        w = self.mapping(z)  # (B, w_dim)
        ws = w[:, None, :].expand(-1, self.num_ws, -1)
        if not (self.training and self.mixing > 0):
            return ws
        b = z.shape[0]
        w2 = self.mapping(torch.randn_like(z))[:, None, :].expand(-1, self.num_ws, -1)
        cut = torch.randint(1, self.num_ws, (b,), device=z.device)
        cut = torch.where(torch.rand(b, device=z.device) < self.mixing, cut, torch.full_like(cut, self.num_ws))
        layer = torch.arange(self.num_ws, device=z.device)[None, :, None]  # (1, num_ws, 1)
        return torch.where(layer >= cut[:, None, None], w2, ws)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """(B, num_ws, w_dim) → images (B, 3, res, res), not clamped."""
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.convs[0](x, ws[:, 0])
        rgb = self.to_rgbs[0](x, ws[:, 1])  # (B, 3, 4, 4)
        for k, to_rgb in enumerate(self.to_rgbs[1:]):
            i = 1 + 2 * k  # this level's first conv (reads w i, shared with the toRGB below)
            x = self.convs[i](x, ws[:, i])  # (B, C, 2H, 2W)
            x = self.convs[i + 1](x, ws[:, i + 1])
            rgb = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + to_rgb(x, ws[:, i + 2])
        return rgb

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        img = self.synthesis(self.make_ws(z))
        return img if self.training else img.clamp(-1.0, 1.0)


# --- discriminator ----------------------------------------------------------------------------------

def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """x (N, C, H, W) → (N, C+1, H, W): the extra channel holds, for each group of consecutive
    images, the std over the group of every feature, averaged over (C, H, W). The group is the
    largest divisor of N not above ``group_size`` (consecutive groups keep real and fake apart
    in a joint forward of a batch whose halves are multiples of it)."""
    n, c, h, w = x.shape
    g = max(k for k in range(1, min(group_size, n) + 1) if n % k == 0)
    y = _at_least_fp32(x).reshape(n // g, g, c, h, w)
    std = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (N/g,)
    extra = std.repeat_interleave(g)[:, None, None, None].expand(n, 1, h, w).to(x.dtype)
    return torch.cat([x, extra], dim=1)


class DBlock(nn.Module):
    """conv3×3 → ×½ → conv3×3 (both lrelu × √2), plus a 1×1 shortcut of the pooled input; × √½."""

    def __init__(self, c_in: int, c_out: int, clamp: float | None):
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_in, 3, act=True, clamp=clamp)
        self.conv1 = EqualConv2d(c_in, c_out, 3, act=True, clamp=clamp)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, H, W) -> (B, c_out, H/2, W/2)
        h = self.conv1(F.avg_pool2d(self.conv0(x), 2))
        return (h + self.skip(F.avg_pool2d(x, 2))) * (1.0 / SQRT2)


@dataclass
class StyleGAN2DiscriminatorConfig:
    """The StyleGAN2 residual discriminator's options (narrow widths for CPUs by default)."""

    channel_base: int = 2048
    """width: a level of size r has min(channel_base / r, channel_max) channels"""
    channel_max: int = 256
    """cap on a level's channels"""
    mbstd_group: int = 4
    """minibatch-stddev group size (a divisor of the batch is used when it does not divide it)"""
    conv_clamp: float | None = 256.0
    """under autocast, clamp activations to +-this (none: never)"""
    resolution: int = 64
    """input size, a power of two >= 8 (set from the training config's --resolution)"""

    def __post_init__(self) -> None:
        if min(self.channel_base, self.channel_max, self.mbstd_group) < 1:
            raise ValueError("channel_base, channel_max and mbstd_group must be at least 1")
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise ValueError(f"conv_clamp must be positive or None, got {self.conv_clamp}")
        num_doublings(self.resolution)


@DISCRIMINATORS.register("stylegan2", config=StyleGAN2DiscriminatorConfig)
class StyleGAN2Discriminator(nn.Module):
    """image (B, 3, resolution, resolution) → one logit per image (B,); options in
    :class:`StyleGAN2DiscriminatorConfig`."""

    def __init__(self, cfg: StyleGAN2DiscriminatorConfig | None = None):
        super().__init__()
        cfg = cfg or StyleGAN2DiscriminatorConfig()
        self.resolution, self.mbstd_group = cfg.resolution, cfg.mbstd_group
        ch = widths_for(cfg.channel_base, cfg.channel_max, cfg.resolution)
        sizes = sorted(ch, reverse=True)  # 64, 32, 16, 8, 4
        self.from_rgb = EqualConv2d(3, ch[sizes[0]], 1, act=True, clamp=cfg.conv_clamp)
        self.blocks = nn.Sequential(*[DBlock(ch[s], ch[s // 2], cfg.conv_clamp) for s in sizes[:-1]])
        c4 = ch[4]
        self.conv = EqualConv2d(c4 + 1, c4, 3, act=True, clamp=cfg.conv_clamp)
        self.fc = EqualLinear(c4 * 16, c4, act=True)
        self.out = EqualLinear(c4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, res, res)
        h = self.blocks(self.from_rgb(x))  # (B, C4, 4, 4)
        h = self.conv(minibatch_stddev(h, self.mbstd_group))  # (B, C4, 4, 4)
        return _at_least_fp32(self.out(self.fc(h.flatten(1))).flatten())  # (B,)
