"""Fold eval-mode BatchNorm layers into the convolutions that feed them.

In eval mode a BatchNorm is a fixed per-channel affine map, ``y = γ (x - μ) / √(σ² + ε) + β``,
and a convolution is linear, so the two compose into one convolution with rescaled filters and
a new bias: the same outputs (to float rounding) with one layer, and one pass over the feature
map, fewer. The maths is :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`; this module finds the
pairs in any module tree and swaps the modules.

How a "BatchNorm right after a conv" is detected (a module's attributes alone do not say in
which order its ``forward`` uses them):

1. **torch.fx**: the module is traced symbolically; a pair is a ``call_module`` BatchNorm node
   whose only input is a ``call_module`` convolution node that has no other user (so nothing
   else sees the un-normalised output) and where each module is called exactly once. This
   covers Sequentials, torchvision's ResNets (``conv1``/``bn1`` attributes), and the
   ``BasicConv2d`` pattern (``self.conv``, ``self.bn`` applied in ``forward``) of pytorch-fid's
   and torchvision's Inception networks and GoogLeNet.
2. Submodules the trace never entered (GoogLeNet's auxiliary heads, skipped in eval mode) are
   traced on their own.
3. If a module cannot be traced (data-dependent control flow in its ``forward``), its children
   are tried one by one, and an untraceable plain ``nn.Sequential`` still gets its consecutive
   (conv, BatchNorm) children fused — its ``forward`` chains them by definition. Pairs across
   the boundary of an untraceable module are left alone: conservative, never wrong.

The folded conv takes the conv's place; the BatchNorm's place gets an ``nn.Identity`` (module
names of everything else stay valid). TorchScript modules cannot be edited this way; for them
``torch.jit.freeze`` does the same folding.
"""

from __future__ import annotations

import copy
from typing import Iterator, NamedTuple

import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_DECONV = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class FuseResult(NamedTuple):
    """What :func:`fuse_conv_bn` returns: ``model, fused, skipped = fuse_conv_bn(net)``."""

    model: nn.Module
    """The model with BatchNorms folded (a copy unless ``inplace=True``)."""
    fused: list[tuple[str, str]]
    """``(conv name, batchnorm name)`` of each folded pair."""
    skipped: list[str]
    """``"name: reason"`` for each BatchNorm after a conv that was left alone (train mode...)."""


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _traced_pairs(module: nn.Module, prefix: str) -> list[tuple[str, str]] | None:
    """Pairs found by tracing ``module``, or None when it cannot be traced."""
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception:  # any failure to trace just means "look inside instead"
        return None
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs: list[tuple[str, str]] = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(module.get_submodule(node.target), _BN):
            continue
        if len(node.args) != 1 or node.kwargs:
            continue
        prev = node.args[0]
        if not (isinstance(prev, torch.fx.Node) and prev.op == "call_module"):
            continue
        if not isinstance(module.get_submodule(prev.target), _CONV + _DECONV):
            continue
        # The conv's raw output must feed only this BatchNorm, and neither module may run twice
        # (folding changes the module for every call site).
        if len(prev.users) == 1 and calls[prev.target] == 1 and calls[node.target] == 1:
            pairs.append((_join(prefix, prev.target), _join(prefix, node.target)))
    # Submodules the trace never entered (GoogLeNet's auxiliary heads when traced in eval
    # mode, branches behind a Python-level flag) are looked at on their own.
    entered = {""}
    for target in calls:
        parts = target.split(".")
        entered.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    for name, child in module.named_modules():
        parent = name.rpartition(".")[0]
        if name not in entered and parent in entered and next(child.children(), None) is not None:
            pairs.extend(_find_pairs(child, _join(prefix, name)))
    return pairs


def _find_pairs(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(conv name, bn name) for every BatchNorm applied directly to a conv's output."""
    traced = _traced_pairs(module, prefix)
    if traced is not None:
        yield from traced
        return
    children = list(module.named_children())
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        for (a_name, a), (b_name, b) in zip(children, children[1:]):
            if isinstance(a, _CONV + _DECONV) and isinstance(b, _BN):
                yield _join(prefix, a_name), _join(prefix, b_name)
    for name, child in children:
        yield from _find_pairs(child, _join(prefix, name))


def _why_not(conv: nn.Module, bn: nn.Module) -> str | None:
    """Why this (conv, bn) pair cannot be folded, or None if it can."""
    if bn.training:
        return "BatchNorm is in train mode (it uses batch statistics); call model.eval() first"
    if bn.running_mean is None or bn.running_var is None:
        return "BatchNorm has no running statistics (track_running_stats=False)"
    if conv.out_channels != bn.num_features:
        return f"conv has {conv.out_channels} channels but BatchNorm {bn.num_features}"
    if isinstance(conv, _DECONV) and conv.groups != 1:
        return "grouped transposed convolutions are not folded"
    return None


def fuse_conv_bn(model: nn.Module, *, inplace: bool = False) -> FuseResult:
    """Fold every eval-mode BatchNorm that directly follows a convolution into it.

    Returns a :class:`FuseResult`: the fused model (a deep copy unless ``inplace``), the fused
    pairs, and the skipped ones with reasons. Inference outputs equal the original's to float
    rounding (~1e-6 relative); a model in train mode is returned unchanged with every pair in
    ``skipped``, since its BatchNorms normalise with batch statistics. Works on any module
    tree, see the module docstring for how pairs are detected.
    """
    target = model if inplace else copy.deepcopy(model)
    owners: dict[int, int] = {}
    for _, m in target.named_modules(remove_duplicate=False):
        owners[id(m)] = owners.get(id(m), 0) + 1
    fused: list[tuple[str, str]] = []
    skipped: list[str] = []
    for conv_name, bn_name in list(_find_pairs(target)):
        conv, bn = target.get_submodule(conv_name), target.get_submodule(bn_name)
        reason = _why_not(conv, bn)
        if reason is None and (owners[id(conv)] > 1 or owners[id(bn)] > 1):
            reason = "the conv or BatchNorm module is shared by several places in the model"
        if reason:
            skipped.append(f"{bn_name}: {reason}")
            continue
        was_training = conv.training
        conv.eval()  # fuse_conv_bn_eval insists; a conv computes the same in both modes
        folded = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, _DECONV))
        folded.train(was_training)
        _replace(target, conv_name, folded)
        _replace(target, bn_name, nn.Identity())
        fused.append((conv_name, bn_name))
    return FuseResult(target, fused, skipped)


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name), attr, new)
