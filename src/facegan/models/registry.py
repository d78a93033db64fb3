"""The GAN model registry: every generator and discriminator is a named entry with its own config.

A model module says, for each network::

    @dataclass
    class MyGConfig:
        z_dim: int = 128
        \"\"\"size of the latent vector\"\"\"
        resolution: int = 64
        \"\"\"output size (set from the training config's --resolution)\"\"\"

    @GENERATORS.register("mynet", config=MyGConfig)
    class MyGenerator(nn.Module):
        def __init__(self, cfg: MyGConfig): ...

and nothing else changes: the registry imports every module of :mod:`facegan.models` itself,
``facegan train --arch mynet`` offers the config's fields as ``--g.NAME`` options (their
docstrings are the help), checkpoints store the config and rebuild the network from it alone.

The interfaces every entry keeps are written down as :class:`Generator` and
:class:`Discriminator`; a test checks every registered generator and discriminator against them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from facegan.errors import FaceganError
from facegan.registry import Registry

Kind = Literal["generator", "discriminator"]

GENERATORS: Registry[type[nn.Module]] = Registry("generator", package="facegan.models")
DISCRIMINATORS: Registry[type[nn.Module]] = Registry("discriminator", package="facegan.models")
_BY_KIND: dict[str, Registry] = {"generator": GENERATORS, "discriminator": DISCRIMINATORS}


@runtime_checkable
class Generator(Protocol):
    """What the loop, the sampler and checkpoints rely on in a generator."""

    z_dim: int
    """size of the latent vector z"""
    resolution: int
    """output height and width"""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, z_dim) -> images (B, 3, resolution, resolution) in [-1, 1]."""
        ...


@runtime_checkable
class Discriminator(Protocol):
    """What the loop relies on in a discriminator."""

    resolution: int
    """input height and width"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images (B, 3, resolution, resolution) in [-1, 1] -> real/fake logits (B,)."""
        ...


def registry(kind: Kind) -> Registry:
    """The registry of ``kind`` ("generator" or "discriminator")."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise ValueError(f"kind must be 'generator' or 'discriminator', not {kind!r}") from None


def list_models(kind: Kind = "generator") -> list[str]:
    """The registered names of ``kind``, in registration order."""
    return registry(kind).names()


def config_class(kind: Kind, name: str) -> type:
    """The config dataclass of the ``kind`` registered as ``name``."""
    entry = registry(kind).get(name)
    if entry.config is None:
        raise FaceganError(f"{kind} {name!r} was registered without a config dataclass")
    return entry.config


def model_config(kind: Kind, name: str, values: Any = None, **overrides: Any) -> Any:
    """The config of ``kind`` ``name`` from ``values`` (a dict, an instance of its config class
    or None for the defaults) with ``overrides`` on top; unknown fields are a clear error."""
    cls = config_class(kind, name)
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        values = dataclasses.asdict(values)
    data = {**(values or {}), **overrides}
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(k for k in data if k not in fields)
    if unknown:
        raise FaceganError(f"{kind} {name!r} has no option(s) {', '.join(unknown)}; it takes: {', '.join(fields)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:  # configs validate their values with ValueError
        raise FaceganError(f"{kind} {name!r}: {exc}") from None


def build(kind: Kind, name: str, cfg: Any = None) -> nn.Module:
    """A fresh network: ``kind`` ``name`` built from its config (an instance, a dict or None)."""
    entry = registry(kind).get(name)
    cfg = model_config(kind, name, cfg)
    try:
        return entry.obj(cfg)
    except ValueError as exc:  # constructors check sizes with ValueError
        raise FaceganError(f"{kind} {name!r}: {exc}") from None


def create_generator(name: str, **cfg: Any) -> nn.Module:
    """Build the generator ``name`` with config fields ``cfg``: ``(B, z_dim) -> (B, 3, H, W)``."""
    return build("generator", name, cfg)


def create_discriminator(name: str, **cfg: Any) -> nn.Module:
    """Build the discriminator ``name`` with config fields ``cfg``: ``(B, 3, H, W) -> (B,)``."""
    return build("discriminator", name, cfg)
