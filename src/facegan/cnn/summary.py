"""The lecture-style table of any ``nn.Module``: one row per layer, in the order they run.

::

    [227x227x3] INPUT
    [55x55x96] CONV1: 96 11x11 filters at stride 4, pad 0        34,944  features.0.0
    [27x27x96] MAX POOL1: 3x3 filters at stride 2                     0  features.1
    [27x27x96] NORM1: Normalization layer                             0  features.2
    ...
    [1000] FC8: 1000 neurons                                  4,097,000  classifier.7

Rows come from forward hooks on the leaf modules (and on any module owning parameters itself)
during one forward pass on a zero input, so they follow the order the network really runs,
whatever its structure (Sequentials, ResNet blocks, Inception branches, GAN generators).
Functional operations (``torch.flatten``, ``F.relu``, residual additions) have no module and no
row. Output volumes are written ``HxWxC`` as in the lecture (``DxHxWxC`` for 3-D, ``LxC`` for
1-D, ``N`` for vectors). Weight layers are numbered together as in the lecture (CONV1…CONV5,
FC6…FC8); pools and normalisations have their own counters. Element-wise layers (ReLU,
dropout, flatten…) are hidden unless ``all_layers=True``.

Passing a model built on the ``meta`` device gives the table without allocating or computing
anything (instant even for VGG-19 at 224×224).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from facegan.errors import FaceganError

#: Parameter-free element-wise layers, hidden from the default table like in the lecture.
_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softmax, nn.LogSoftmax,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.Flatten, nn.Unflatten, nn.Identity,
)  # fmt: skip
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_DECONV = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVGPOOL = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE_MAX = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_ADAPTIVE_AVG = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_POOL_DIMS = {
    1: (nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveMaxPool1d, nn.AdaptiveAvgPool1d),
    2: (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d),
    3: (nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool3d),
}
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_INSTANCENORM = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


@dataclass
class LayerRow:
    """One executed layer."""

    label: str
    """Lecture-style name with its number: ``CONV1``, ``MAX POOL2``, ``FC8``."""
    detail: str
    """Filters/size/stride/pad or neurons: ``96 11x11 filters at stride 4, pad 0``."""
    path: str
    """Qualified module name in the model (``features.0.0``); ``""`` for the input row."""
    output_shape: tuple[int, ...]
    """Output shape without the batch dimension, PyTorch order (C, H, W)."""
    params: int
    """Parameters of this module (0 on a repeated call of a module already counted)."""
    shown: bool = True
    """False for element-wise layers hidden from the default table."""

    @property
    def volume(self) -> str:
        """``HxWxC`` (channels last, as the lecture writes volumes)."""
        return volume(self.output_shape)

    @property
    def text(self) -> str:
        """``[55x55x96] CONV1: 96 11x11 filters at stride 4, pad 0``."""
        head = f"[{self.volume}] {self.label}"
        return f"{head}: {self.detail}" if self.detail else head


@dataclass
class Summary:
    """What :func:`summarize` found; :meth:`format` prints it."""

    input_shape: tuple[int, ...]
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    unused: dict[str, int] = field(default_factory=dict)
    """Top-level modules that did not run on this input (e.g. GoogLeNet's auxiliary heads in
    eval mode) and their parameter counts; they are in the totals but have no rows."""

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.rows[-1].output_shape if self.rows else self.input_shape

    def find(self, label: str) -> LayerRow:
        """The row labelled ``label`` (``"CONV1"``)."""
        for row in self.rows:
            if row.label == label:
                return row
        raise KeyError(label)

    def format(self, all_layers: bool = False) -> str:
        """The table, one row per layer, then the totals."""
        rows = [r for r in self.rows if r.shown or all_layers]
        texts = [r.text for r in rows]
        width = max(len(t) for t in texts)
        pwidth = max(len(f"{r.params:,}") for r in rows)
        pwidth = max(pwidth, len("params"))
        lines = [f"{'layer (output volume HxWxC)':<{width}}  {'params':>{pwidth}}  module"]
        for r, t in zip(rows, texts):
            lines.append(f"{t:<{width}}  {r.params:>{pwidth},}  {r.path}".rstrip())
        # The lecture's memory count: the values each listed layer outputs, for one image.
        values = sum(_numel(r.output_shape) for r in rows)
        lines.append("")
        lines.append(
            f"total parameters: {self.total_params:,} ({self.total_params / 1e6:.2f}M), "
            f"trainable {self.trainable_params:,}"
        )
        if self.unused:
            parts = ", ".join(f"{k} {v:,}" for k, v in self.unused.items())
            lines.append(f"not run on this input (counted in the total): {parts}")
        lines.append(
            f"activations listed: {values:,} values per image "
            f"(~{values * 4 / 2**20:.1f} MiB in float32, forward only)"
        )
        return "\n".join(lines)


def volume(shape: Sequence[int]) -> str:
    """Write a (C, *spatial) shape the lecture's way: ``(96, 55, 55) -> '55x55x96'``."""
    shape = tuple(shape)
    if len(shape) <= 1:
        return "x".join(map(str, shape)) or "1"
    return "x".join(map(str, (*shape[1:], shape[0])))


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _size(v: Any) -> str:
    """``11 -> '11x11'``-style text for a kernel/stride/pad tuple (one number when all equal)."""
    t = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    return str(t[0]) if len(set(t)) == 1 else "x".join(map(str, t))


def _kernel(v: Any, dims: int) -> str:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v,) * dims
    if len(t) == 1:
        return f"size-{t[0]}"
    return "x".join(map(str, t))


def _pool_dims(m: nn.Module) -> int:
    return next(d for d, classes in _POOL_DIMS.items() if isinstance(m, classes))


def _describe(m: nn.Module) -> tuple[str, str]:
    """(label kind, detail) of one module; the kind gets its number later."""
    if isinstance(m, _CONV + _DECONV):
        dims = len(m.kernel_size)
        pad = m.padding if isinstance(m.padding, str) else _size(m.padding)
        filters = f"{m.out_channels} {_kernel(m.kernel_size, dims)} filters"
        detail = f"{filters} at stride {_size(m.stride)}, pad {pad}"
        if any(d != 1 for d in m.dilation):
            detail += f", dilation {_size(m.dilation)}"
        if m.groups != 1:
            detail += f", groups {m.groups}"
        if isinstance(m, _DECONV):
            if any(m.output_padding):
                detail += f", output pad {_size(m.output_padding)}"
            return "DECONV", detail
        return "CONV", detail
    if isinstance(m, nn.Linear):
        return "FC", f"{m.out_features} neurons"
    if isinstance(m, _MAXPOOL + _AVGPOOL):
        dims = _pool_dims(m)
        stride = m.stride if m.stride is not None else m.kernel_size
        detail = f"{_kernel(m.kernel_size, dims)} filters at stride {_size(stride)}"
        if any(p != 0 for p in (m.padding if isinstance(m.padding, (tuple, list)) else (m.padding,))):
            detail += f", pad {_size(m.padding)}"
        if m.ceil_mode:
            detail += ", ceil mode"
        return ("MAX POOL" if isinstance(m, _MAXPOOL) else "AVG POOL"), detail
    if isinstance(m, _ADAPTIVE_MAX + _ADAPTIVE_AVG):
        size = m.output_size
        size = tuple(size) if isinstance(size, (tuple, list)) else (size,) * _pool_dims(m)
        kind = "MAX" if isinstance(m, _ADAPTIVE_MAX) else "AVG"
        return f"ADAPTIVE {kind} POOL", "to " + "x".join(str(v) for v in size)
    if isinstance(m, nn.LocalResponseNorm):
        return "NORM", "Normalization layer"
    if isinstance(m, _BATCHNORM):
        return "NORM", "BatchNorm"
    if isinstance(m, _INSTANCENORM):
        return "NORM", "InstanceNorm"
    if isinstance(m, nn.GroupNorm):
        g = m.num_groups
        return "NORM", "GroupNorm, 1 group (LayerNorm)" if g == 1 else f"GroupNorm, {g} groups"
    if isinstance(m, nn.LayerNorm):
        return "NORM", "LayerNorm"
    if isinstance(m, nn.Embedding):
        return "EMBEDDING", f"{m.num_embeddings} x {m.embedding_dim}"
    if isinstance(m, nn.Upsample):
        how = f"x{_size(m.scale_factor)}" if m.scale_factor else f"to {_size(m.size)}"
        return "UPSAMPLE", f"{how} {m.mode}"
    return type(m).__name__.upper(), ""


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    if isinstance(out, dict):
        return _first_tensor(list(out.values()))
    return None


def _unused_modules(model: nn.Module, called: set[str]) -> dict[str, int]:
    """Highest modules none of whose parts ran, with their parameter counts."""
    ran: set[str] = {""}
    for path in called:
        parts = path.split(".")
        ran.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    unused: dict[str, int] = {}
    for path, m in model.named_modules():
        if path in ran or any(path.startswith(u + ".") for u in unused):
            continue
        n = sum(p.numel() for p in m.parameters())
        if n:
            unused[path] = n
    return unused


def summarize(
    model: nn.Module, input_shape: Sequence[int], *, batch: int = 1, name: str | None = None
) -> Summary:
    """Run ``model`` once (eval mode, no grad) on zeros of shape ``(batch, *input_shape)`` and
    record one :class:`LayerRow` per module call. The model's train/eval modes are restored.

    The input goes on the device and floating dtype of the model's first parameter (CPU
    float32 for a parameter-free model). A shape the model does not accept raises
    :class:`FaceganError` naming ``name`` (default: the model's class) and the input.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s < 1 for s in input_shape):
        raise FaceganError(f"input shape must be positive sizes like 3x227x227, got {input_shape}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32

    rows: list[LayerRow] = []
    counters: dict[str, int] = {}
    seen: set[int] = set()
    called: set[str] = set()

    def hook_for(path: str):
        def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
            kind, detail = _describe(module)
            # The lecture numbers weight layers together (CONV1..CONV5, FC6..FC8).
            key = "weight" if kind in ("CONV", "DECONV", "FC") else kind
            counters[key] = counters.get(key, 0) + 1
            params = 0
            if id(module) not in seen:
                seen.add(id(module))
                params = sum(p.numel() for p in module.parameters(recurse=False))
            t = _first_tensor(output)
            shape = tuple(t.shape[1:]) if t is not None else ()
            shown = not (isinstance(module, _ELEMENTWISE) and params == 0)
            rows.append(LayerRow(f"{kind}{counters[key]}", detail, path, shape, params, shown))
            called.add(path)

        return hook

    handles = []
    for path, m in model.named_modules():
        is_leaf = next(m.children(), None) is None
        owns = next(m.parameters(recurse=False), None) is not None
        if owns or (path and is_leaf):  # the root only for parameters of its own
            handles.append(m.register_forward_hook(hook_for(path)))
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((batch, *input_shape), device=device, dtype=dtype))
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        what = name or type(model).__name__
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FaceganError(
            f"{what} does not accept an input of {'x'.join(map(str, input_shape))}: {msg}"
        ) from exc
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.train(mode)

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    input_row = LayerRow("INPUT", "", "", input_shape, 0)
    return Summary(input_shape, [input_row, *rows], total, trainable, _unused_modules(model, called))


def summarize_by_name(name: str, input_shape: Sequence[int] | None = None, **kw: Any) -> Summary:
    """:func:`summarize` a model of :func:`facegan.cnn.zoo.build_model` (lecture or GAN registry).

    The model is built on the ``meta`` device, so no weights are allocated and no arithmetic is
    done (instant for VGG-19); should some layer lack a meta implementation, it is rebuilt on the
    CPU. ``input_shape`` defaults to the model's natural input.
    """
    from facegan.cnn.zoo import build_model

    try:
        with torch.device("meta"):
            model, natural = build_model(name, **kw)
    except RuntimeError:  # includes NotImplementedError: some init step has no meta kernel
        model = None
    if model is not None:
        try:
            return summarize(model, input_shape or natural, name=name)
        except FaceganError as exc:
            if not isinstance(exc.__cause__, RuntimeError):
                raise
    model, natural = build_model(name, **kw)
    return summarize(model, input_shape or natural, name=name)
