"""The lecture's convolutional networks.

* :mod:`.arithmetic` — output sizes (``(N - F + 2P)/S + 1`` and its transposed twin, with a
  clear "doesn't fit" error), parameter counts, receptive fields. Pure Python, no torch.
* :mod:`.zoo` — the registry of the lecture's architectures: ``create_model(name, **kw)``,
  ``list_models()`` (LeNet-5, AlexNet, VGG, GoogLeNet, ResNets, 1-D and 3-D CNNs).
* :mod:`.summary` — the lecture-style table (``[55x55x96] CONV1: 96 11x11 filters at stride 4,
  pad 0``) of any ``nn.Module``.
* :mod:`.fuse` — ``fuse_conv_bn(model)``: fold eval-mode BatchNorms into their convolutions.

The torch-based names are imported on first use, so ``facegan.cnn.conv_output_size`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from facegan.cnn.arithmetic import (
    DoesNotFitError,
    conv_output_size,
    conv_params,
    conv_transpose_output_size,
    receptive_field,
    stack_output_sizes,
)

_LAZY = {
    "create_model": "zoo", "list_models": "zoo", "get_spec": "zoo", "build_model": "zoo",
    "register": "zoo", "ModelSpec": "zoo",
    "summarize": "summary", "summarize_by_name": "summary", "Summary": "summary", "LayerRow": "summary",
    "fuse_conv_bn": "fuse", "FuseResult": "fuse",
}  # fmt: skip

__all__ = [
    "DoesNotFitError", "conv_output_size", "conv_transpose_output_size", "conv_params",
    "receptive_field", "stack_output_sizes", *_LAZY,
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"facegan.cnn.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'facegan.cnn' has no attribute {name!r}")
