"""A registry of the lecture's architectures: ``create_model(name, **kw)``, ``list_models()``.

torchvision already has VGG, GoogLeNet and the ResNets; they are reused as they are (always
with ``weights=None``: nothing is downloaded). What torchvision lacks is written here:

* **LeNet-5** in its classic form (32×32 input, C1 6@5×5, S2, C3 16@5×5, S4, C5 120, F6 84,
  10 outputs) with tanh and average-pool subsampling. Simplifications, as in most textbooks:
  C3 is fully connected to S2's six maps (LeCun et al. used a sparse table: 1,516 weights
  instead of 2,416), subsampling has no trainable coefficients, and the output is a plain
  linear layer instead of RBF units: 61,706 parameters ("about 60k").
* **AlexNet** as the lecture draws it: 227×227 input, CONV1 = 96 11×11 filters at stride 4,
  pad 0 → 55×55×96, ... FC8 → 1000. torchvision's ``alexnet`` is the later "one weird trick"
  variant (64/192/384/256/256 filters, 224 input padded by 2, an adaptive pool), so it does
  not reproduce the lecture's table. ``groups=2`` splits CONV2/4/5 across the paper's two GPUs.
* Small **1-D** (sequences: ``(B, C, L)``) and **3-D** (volumes or video clips:
  ``(B, C, D, H, W)``) CNNs assembled from :class:`facegan.models.blocks.ConvBlock`, whose
  ``norm`` picks batch/instance/group/layer/none normalisation.

Each entry records the input the architecture was drawn for (``input_shape``, without the batch
dimension) and the smallest input it accepts (``small_input``), used for quick checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from facegan.errors import FaceganError
from facegan.models.blocks import ConvBlock, Norm
from facegan.registry import Registry

_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_GLOBAL_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry."""

    name: str
    build: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    """The input the architecture was designed for, without the batch dimension."""
    small_input: tuple[int, ...]
    """The smallest input it accepts (for fast forward/backward checks)."""
    description: str


#: The lecture's architectures (entries: builder functions; meta: input shapes, description).
MODELS: Registry = Registry("model")


def register(
    name: str, *, input_shape: tuple[int, ...], small_input: tuple[int, ...], description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder ``(**kw) -> nn.Module`` to the registry under ``name``."""
    return MODELS.register(name, input_shape=tuple(input_shape), small_input=tuple(small_input),
                           description=description)


def list_models() -> list[str]:
    """Registered names, in registration order (the lecture's order)."""
    return MODELS.names()


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name is a :class:`FaceganError` listing the valid ones."""
    e = MODELS.get(name)
    return ModelSpec(e.name, e.obj, **e.meta)


def create_model(name: str, **kw) -> nn.Module:
    """Build a fresh, randomly initialised ``name`` (options ``kw`` go to its builder)."""
    spec = get_spec(name)
    try:
        return spec.build(**kw)
    except (TypeError, ValueError) as exc:
        raise FaceganError(f"model {spec.name}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Written here: LeNet-5, the lecture's AlexNet, small 1-D/3-D CNNs.


class LeNet5(nn.Sequential):
    """LeNet-5 (LeCun et al., 1998).

    32×32 → C1 6@28×28 → S2 6@14×14 → C3 16@10×10 → S4 16@5×5 → C5 120 → F6 84 → 10 outputs.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        # Named like the paper's layers so that state_dict keys read "c1.0.weight", "f6.weight"...
        self.c1 = ConvBlock(in_channels, 6, 5, 1, 0, norm="none", act="tanh")
        self.s2 = nn.AvgPool2d(2)
        self.c3 = ConvBlock(6, 16, 5, 1, 0, norm="none", act="tanh")
        self.s4 = nn.AvgPool2d(2)
        # C5 is a convolution whose 5x5 filters cover all of S4's 5x5 maps: a 1x1x120 output.
        self.c5 = ConvBlock(16, 120, 5, 1, 0, norm="none", act="tanh")
        self.flatten = nn.Flatten()
        self.f6 = nn.Linear(120, 84)
        self.f6_act = nn.Tanh()
        self.output = nn.Linear(84, num_classes)


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al., 2012) as in the lecture's table, for 227×227×3 inputs.

    CONV1 96 11×11/4 → MAX POOL1 3×3/2 → NORM1 → CONV2 256 5×5 pad 2 → MAX POOL2 → NORM2 →
    CONV3 384 3×3 → CONV4 384 3×3 → CONV5 256 3×3 → MAX POOL3 → FC6 4096 → FC7 4096 → FC8.
    ``groups=2`` restores the paper's two-GPU split of CONV2, CONV4 and CONV5 (fewer weights).
    """

    def __init__(self, num_classes: int = 1000, groups: int = 1, dropout: float = 0.5):
        super().__init__()
        if groups not in (1, 2):
            raise ValueError(f"groups must be 1 or 2 (the paper's two GPUs), got {groups}")

        def conv(c_in: int, c_out: int, f: int, s: int, p: int, g: int = 1) -> nn.Module:
            block = ConvBlock(c_in, c_out, f, s, p, norm="none", act="relu")
            if g > 1:  # ConvBlock has no groups option; swap in the grouped convolution
                block[0] = nn.Conv2d(c_in, c_out, f, s, p, groups=g)
            return block

        def lrn() -> nn.Module:
            # The paper's b = a / (k + alpha * sum a^2)^beta with n=5, k=2, alpha=1e-4, beta=0.75;
            # PyTorch divides alpha by n, so pass n * alpha.
            return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)

        self.features = nn.Sequential(
            conv(3, 96, 11, 4, 0),  # 227 -> 55
            nn.MaxPool2d(3, 2),  # 55 -> 27 (overlapping pooling)
            lrn(),
            conv(96, 256, 5, 1, 2, groups),  # 27 -> 27
            nn.MaxPool2d(3, 2),  # 27 -> 13
            lrn(),
            conv(256, 384, 3, 1, 1),  # 13 -> 13 (CONV3 sees both GPUs' maps: never grouped)
            conv(384, 384, 3, 1, 1, groups),
            conv(384, 256, 3, 1, 1, groups),
            nn.MaxPool2d(3, 2),  # 13 -> 6
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(6 * 6 * 256, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class SmallCNN(nn.Sequential):
    """A small CNN for ``dims``-dimensional inputs: ``depth`` ConvBlocks, doubling the width and
    halving the size after each but the last, then global average pooling and a linear layer.

    ``dims=1`` for sequences ``(B, C, L)`` (audio, sensor signals, text embeddings), ``dims=3``
    for volumes or video clips ``(B, C, D, H, W)``; ``norm`` is any of
    :data:`facegan.models.blocks.NORMS`.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 32,
        depth: int = 3,
        kernel: int = 3,
        norm: Norm = "batch",
        dropout: float = 0.0,
    ):
        if dims not in _MAXPOOL:
            raise ValueError(f"dims must be 1, 2 or 3, got {dims}")
        if depth < 1 or width < 1 or kernel < 1 or kernel % 2 == 0:
            raise ValueError("depth and width must be >= 1 and kernel a positive odd number")
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(depth):
            out = width * 2**i
            # 'same' padding: only the pools change the size.
            layers.append(ConvBlock(c, out, kernel, 1, kernel // 2, norm=norm, act="relu", dims=dims))
            if i < depth - 1:
                layers.append(_MAXPOOL[dims](2))
            c = out
        layers += [_GLOBAL_POOL[dims](1), nn.Flatten()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(c, num_classes))
        super().__init__(*layers)
        self.dims = dims


@register(
    "lenet5",
    input_shape=(1, 32, 32),
    small_input=(1, 32, 32),
    description="LeNet-5 (1998): 32x32 digits, C1-S2-C3-S4-C5-F6-output, tanh, ~60k parameters",
)
def lenet5(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    return LeNet5(in_channels, num_classes)


@register(
    "alexnet",
    input_shape=(3, 227, 227),
    small_input=(3, 227, 227),
    description="AlexNet (2012) as in the lecture: 227x227, CONV1 96 11x11/4 ... FC8 1000; "
    "groups=2 for the 2-GPU split",
)
def alexnet(num_classes: int = 1000, groups: int = 1, dropout: float = 0.5) -> nn.Module:
    return AlexNet(num_classes, groups, dropout)


# --------------------------------------------------------------------------------------------
# Reused from torchvision (weights=None: random initialisation, no download).


def _torchvision(fn_name: str, **fixed) -> Callable[..., nn.Module]:
    def build(**kw) -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm, fn_name)(weights=None, **{**fixed, **kw})

    build.__name__ = fn_name
    build.__doc__ = f"torchvision.models.{fn_name}(weights=None, **kw)"
    return build


_VGG = "VGG-{n} (2014): 3x3 convs only, {c} conv + 3 FC layers{bn} (torchvision)"
for _n, _c in ((16, 13), (19, 16)):
    register(f"vgg{_n}", input_shape=(3, 224, 224), small_input=(3, 32, 32),
             description=_VGG.format(n=_n, c=_c, bn=""))(_torchvision(f"vgg{_n}"))
for _n, _c in ((16, 13), (19, 16)):
    register(f"vgg{_n}-bn", input_shape=(3, 224, 224), small_input=(3, 32, 32),
             description=_VGG.format(n=_n, c=_c, bn=", BatchNorm after each conv"))(
        _torchvision(f"vgg{_n}_bn"))

register(
    "googlenet",
    input_shape=(3, 224, 224),
    small_input=(3, 32, 32),
    description="GoogLeNet (2014): 9 Inception modules, 2 auxiliary heads (aux_logits=False drops "
    "them), BN variant (torchvision)",
)(_torchvision("googlenet", aux_logits=True, init_weights=True))

for _n, _kind in ((18, "basic"), (34, "basic"), (50, "bottleneck"), (101, "bottleneck"), (152, "bottleneck")):
    register(f"resnet{_n}", input_shape=(3, 224, 224), small_input=(3, 32, 32),
             description=f"ResNet-{_n} (2015): residual {_kind} blocks, BatchNorm (torchvision)")(
        _torchvision(f"resnet{_n}"))


@register(
    "cnn1d",
    input_shape=(1, 128),
    small_input=(1, 16),
    description="1-D CNN for sequences (B, C, L): ConvBlocks(dims=1) + pooling; "
    "options width, depth, kernel, norm",
)
def cnn1d(in_channels: int = 1, num_classes: int = 10, width: int = 32, depth: int = 3,
          kernel: int = 5, norm: Norm = "batch", dropout: float = 0.0) -> nn.Module:
    return SmallCNN(1, in_channels, num_classes, width, depth, kernel, norm, dropout)


@register(
    "cnn3d",
    input_shape=(3, 16, 112, 112),
    small_input=(3, 4, 8, 8),
    description="3-D CNN for volumes/video (B, C, D, H, W): ConvBlocks(dims=3) + pooling; "
    "options width, depth, kernel, norm",
)
def cnn3d(in_channels: int = 3, num_classes: int = 10, width: int = 32, depth: int = 3,
          kernel: int = 3, norm: Norm = "batch", dropout: float = 0.0) -> nn.Module:
    return SmallCNN(3, in_channels, num_classes, width, depth, kernel, norm, dropout)


# --------------------------------------------------------------------------------------------
# The GAN networks (facegan.models.registry), so that one `facegan cnn summary` shows them all.

_GAN_SUFFIX = {"-g": "generator", "-d": "discriminator"}


def gan_models() -> list[str]:
    """``NAME-g`` / ``NAME-d`` for each generator / discriminator in :mod:`facegan.models.registry`."""
    try:
        from facegan.models import registry
    except ImportError:  # the GAN registry is optional for the lecture's tools
        return []
    return [f"{n}{suffix}" for suffix, kind in _GAN_SUFFIX.items() for n in registry.list_models(kind)]


def build_model(name: str, **kw) -> tuple[nn.Module, tuple[int, ...]]:
    """Build ``name`` from this registry or, for ``NAME-g`` / ``NAME-d``, the GAN registry.

    Returns the model and its natural input shape (without batch): the registry's
    ``input_shape``, ``(z_dim,)`` for a generator, ``(3, resolution, resolution)`` for a
    discriminator. Unknown names raise :class:`FaceganError` listing every valid one.
    """
    if name in MODELS:
        return create_model(name, **kw), get_spec(name).input_shape
    base, suffix = name[:-2], name[-2:].lower()
    if suffix in _GAN_SUFFIX and name in gan_models():
        from facegan.models import registry

        if _GAN_SUFFIX[suffix] == "generator":
            model = registry.create_generator(base, **kw)
            return model, (int(model.z_dim),)
        model = registry.create_discriminator(base, **kw)
        res = int(getattr(model, "resolution", 64))
        return model, (3, res, res)
    raise FaceganError(
        f"unknown model {name!r}; choose one of: {', '.join(list_models() + gan_models())}"
    )
