"""Convolutions on small feature maps as one matrix product — a CPU speed-up, same maths.

A convolution is a matrix product in disguise: cut the (padded) input into its F×F windows
("im2col"), one row per output position, and multiply by the filters laid out as a matrix:

    cols (B·H_out·W_out, F·F·C_in) @ W (F·F·C_in, C_out) → y (B·H_out·W_out, C_out)

A transposed convolution is the same product read backwards: each input position times the
filters gives an F×F patch of output, and overlapping patches are summed ("col2im").

Why bother, when PyTorch has ``conv2d``: on this project's CPU (Xeon with AMX, oneDNN 3.x) the
direct kernels are slow where the maps are tiny and the channels many — the DCGAN's 256→512
conv onto 4×4 maps and its 512→256 transposed conv from 4×4 ran forward+backward in 66 ms and
70 ms, against 26 ms and 23 ms as matrix products (bf16, batch 128), while on 8×8 maps and
larger the direct kernels win (``bench/matmul_conv_speed.py``, results in ``bench/RESULTS.md``). ``torch.nn.functional.unfold``
does im2col too, but only in the (B, C·F·F, L) layout, which costs a transposing copy each
way: 24 ms for the forward alone here. So the windows are taken as a strided view of the
channels-last input, and the backward pass is written out (autograd through ``as_strided``
is generic and was 3x slower).

:func:`use_matmul_convs` swaps a model's ``Conv2d``/``ConvTranspose2d`` layers for subclasses
that take this path when the small side of the map has at most ``max_pixels`` pixels, and the
library's kernel otherwise. Parameters and ``state_dict`` keys are unchanged, so checkpoints
and everything that loads them see the ordinary layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facegan.models.blocks import conv_output_size

__all__ = ["conv2d_mm", "conv_transpose2d_mm", "MatmulConv2d", "MatmulConvTranspose2d", "matmul_convs_on", "use_matmul_convs"]


def _windows(xp: torch.Tensor, k: int, s: int, h_out: int, w_out: int) -> torch.Tensor:
    """im2col: the k×k windows at stride s of a padded NHWC tensor, one per row.

    xp: (B, Hp, Wp, C) contiguous → (B·h_out·w_out, k·k·C), columns ordered (ky, kx, c).
    """
    b, _, _, c = xp.shape
    sb, sh, sw, sc = xp.stride()
    view = xp.as_strided((b, h_out, w_out, k, k, c), (sb, s * sh, s * sw, sh, sw, sc))
    return view.reshape(b * h_out * w_out, k * k * c)  # the one copy: (B, Ho, Wo, k, k, C)


def _overlap_add(cols: torch.Tensor, b: int, h_in: int, w_in: int, k: int, s: int, p: int, dtype: torch.dtype) -> torch.Tensor:
    """col2im: sum the k×k patches of ``cols`` (B·h_in·w_in, k·k·C) into an NHWC map, crop p.

    Patches overlap (k > s), so the sums run in at least float32 and are rounded once, as the
    library's kernels do; the result is (B, (h_in-1)s + k - 2p, (w_in-1)s + k - 2p, C).
    """
    c = cols.shape[1] // (k * k)
    if h_in == w_in == 1:  # one patch per image (z → 4×4 in the DCGAN): nothing overlaps
        return cols.view(b, k, k, c)[:, p : k - p, p : k - p].to(dtype)
    acc = torch.promote_types(cols.dtype, torch.float32)
    out = cols.new_zeros(b, (h_in - 1) * s + k, (w_in - 1) * s + k, c, dtype=acc)
    patches = cols.view(b, h_in, w_in, k, k, c)
    for ky in range(k):
        for kx in range(k):
            out[:, ky : ky + s * (h_in - 1) + 1 : s, kx : kx + s * (w_in - 1) + 1 : s] += patches[:, :, :, ky, kx]
    return out[:, p : out.shape[1] - p, p : out.shape[2] - p].to(dtype)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)  # (B, C, H, W) → (B, H, W, C); a free view when channels-last


def _nchw(y: torch.Tensor) -> torch.Tensor:
    return y.permute(0, 3, 1, 2)  # (B, H, W, C) → (B, C, H, W), channels-last in memory


class _ConvMM(torch.autograd.Function):
    """y = conv2d(x, w, stride=s, padding=p) as im2col(x) @ w; no bias (added outside)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, s: int, p: int) -> torch.Tensor:
        b, c_in, h, wd = x.shape
        c_out, k = w.shape[0], w.shape[-1]
        h_out, w_out = conv_output_size(h, k, s, p), conv_output_size(wd, k, s, p)
        xp = _nhwc(F.pad(x, (p, p, p, p)) if p else x).contiguous()  # (B, H+2p, W+2p, C_in)
        cols = _windows(xp, k, s, h_out, w_out)  # (B·Ho·Wo, k·k·C_in)
        w2 = _nhwc(w).reshape(c_out, k * k * c_in)  # (C_out, k·k·C_in), same column order
        ctx.save_for_backward(cols, w2)
        ctx.geometry = (b, c_in, h, wd, h_out, w_out, k, s, p, x.dtype)
        return _nchw((cols @ w2.t()).view(b, h_out, w_out, c_out))  # (B, C_out, Ho, Wo)

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        cols, w2 = ctx.saved_tensors
        b, c_in, h, wd, h_out, w_out, k, s, p, dtype = ctx.geometry
        g2 = _nhwc(gy).reshape(b * h_out * w_out, -1)  # (B·Ho·Wo, C_out)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            # dL/dcols = g @ W, then each window's gradient goes back where the window came from
            gx = _overlap_add(g2 @ w2, b, h_out, w_out, k, s, 0, dtype)  # (B, (Ho-1)s+k, ..., C_in)
            # rows/columns no window reached (when S does not divide H+2P-F) get zero gradient
            gx = F.pad(gx, (0, 0, 0, wd + 2 * p - gx.shape[2], 0, h + 2 * p - gx.shape[1]))
            gx = _nchw(gx[:, p : p + h, p : p + wd])  # (B, C_in, H, W)
        if ctx.needs_input_grad[1]:
            gw = _nchw((g2.t().contiguous() @ cols).view(-1, k, k, c_in))  # (C_out, C_in, k, k)
        return gx, gw, None, None


class _ConvTransposeMM(torch.autograd.Function):
    """y = conv_transpose2d(x, w, stride=s, padding=p) as col2im(x @ w); no bias."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, s: int, p: int) -> torch.Tensor:
        b, c_in, h, wd = x.shape
        c_out, k = w.shape[1], w.shape[-1]
        x2 = _nhwc(x).reshape(b * h * wd, c_in)  # (B·H·W, C_in)
        w2 = _nhwc(w).reshape(c_in, k * k * c_out)  # (C_in, k·k·C_out): one output patch per row
        ctx.save_for_backward(x2, w2)
        ctx.geometry = (b, c_in, h, wd, c_out, k, s, p)
        return _nchw(_overlap_add(x2 @ w2, b, h, wd, k, s, p, x.dtype))  # (B, C_out, Ho, Wo)

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        x2, w2 = ctx.saved_tensors
        b, c_in, h, wd, c_out, k, s, p = ctx.geometry
        # The adjoint of "scatter patches" is "gather windows": im2col of the padded gradient.
        gp = _nhwc(F.pad(gy, (p, p, p, p)) if p else gy).contiguous()
        gcols = _windows(gp, k, s, h, wd)  # (B·H·W, k·k·C_out)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = _nchw((gcols @ w2.t()).view(b, h, wd, c_in))
        if ctx.needs_input_grad[1]:
            gw = _nchw((x2.t().contiguous() @ gcols).view(c_in, k, k, c_out))  # (C_in, C_out, k, k)
        return gx, gw, None, None


def _run(fn: type[torch.autograd.Function], x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, s: int, p: int) -> torch.Tensor:
    device = x.device.type
    if torch.is_autocast_enabled(device):  # behave like conv2d under autocast: compute in its dtype
        dtype = torch.get_autocast_dtype(device)
        x, w = x.to(dtype), w.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    with torch.autocast(device, enabled=False):
        y = fn.apply(x, w, s, p)
        if bias is not None:
            y = y + bias.view(1, -1, 1, 1)
    # keep the caller's layout: channels-last in gives channels-last out; NCHW in, NCHW out
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return y.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def conv2d_mm(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """``F.conv2d`` (square kernel, groups 1, dilation 1, zero padding) as one matrix product.

    x: (B, C_in, H, W), w: (C_out, C_in, F, F) → (B, C_out, (H-F+2P)/S+1, (W-F+2P)/S+1).
    """
    return _run(_ConvMM, x, w, bias, stride, padding)


def conv_transpose2d_mm(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """``F.conv_transpose2d`` (square kernel, groups 1, no output padding) as one matrix product.

    x: (B, C_in, H, W), w: (C_in, C_out, F, F) → (B, C_out, (H-1)S-2P+F, (W-1)S-2P+F).
    """
    return _run(_ConvTransposeMM, x, w, bias, stride, padding)


class MatmulConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes outputs of at most ``max_pixels`` pixels by :func:`conv2d_mm`."""

    max_pixels: int = 16

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        (k, _), (s, _), (p, _) = self.kernel_size, self.stride, self.padding
        h_out, w_out = conv_output_size(x.shape[-2], k, s, p), conv_output_size(x.shape[-1], k, s, p)
        if x.dim() == 4 and h_out * w_out <= self.max_pixels:
            return conv2d_mm(x, weight, bias, s, p)
        return super()._conv_forward(x, weight, bias)


class MatmulConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that takes inputs of at most ``max_pixels`` pixels by :func:`conv_transpose2d_mm`."""

    max_pixels: int = 16

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is None and x.dim() == 4 and x.shape[-2] * x.shape[-1] <= self.max_pixels:
            return conv_transpose2d_mm(x, self.weight, self.bias, self.stride[0], self.padding[0])
        return super().forward(x, output_size)


def _eligible(m: nn.Module) -> bool:
    """Plain square convolutions the matrix-product path reproduces exactly."""
    if type(m) not in (nn.Conv2d, nn.ConvTranspose2d):
        return False
    square = len(set(m.kernel_size)) == 1 and len(set(m.stride)) == 1 and len(set(m.padding)) == 1
    plain = m.groups == 1 and m.dilation == (1, 1) and m.padding_mode == "zeros" and not isinstance(m.padding, str)
    return square and plain and getattr(m, "output_padding", (0, 0)) == (0, 0)


def matmul_convs_on(setting: str, device: torch.device) -> bool:
    """Resolve ``--matmul-convs`` for ``device``: ``auto`` means on the CPU only.

    On the CPU here (oneDNN 3.x, AMX) the matrix-product path measured 2-3x faster for the
    DCGAN's 4x4-map layers; on GPUs cuDNN's kernels are left alone (not measured there).
    """
    if setting != "auto":
        return setting == "on"
    return device.type == "cpu"


def use_matmul_convs(model: nn.Module, max_pixels: int = 16) -> int:
    """Let ``model``'s plain convolutions run on maps of ≤ ``max_pixels`` pixels as matrix products.

    Changes the layers' classes in place (their parameters, buffers and ``state_dict`` stay as
    they are, so optimizers already built keep working); returns how many layers it switched.
    ``max_pixels=16``: 4×4 maps and smaller, where it measured faster on the CPU here.
    """
    n = 0
    for m in model.modules():
        if _eligible(m):
            m.__class__ = MatmulConv2d if isinstance(m, nn.Conv2d) else MatmulConvTranspose2d
            m.max_pixels = max_pixels
            n += 1
    return n
