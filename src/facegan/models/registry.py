"""The model registry: every generator and discriminator is a named entry.

The training loop, the sampler and checkpoints only ever say ``create_generator(name, **cfg)``,
so a stronger network is one new module with ``@register("generator", "my-net")`` and nothing
else changes. Built-in modules are imported on first use, which keeps ``import facegan`` light.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Literal

from torch import nn

from facegan.errors import FaceganError

Kind = Literal["generator", "discriminator"]
#: Modules whose import registers the built-in models.
BUILTIN_MODULES: tuple[str, ...] = ("facegan.models.dcgan",)

_REGISTRY: dict[str, dict[str, Callable[..., nn.Module]]] = {"generator": {}, "discriminator": {}}
_loaded = False


def register(kind: Kind, name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: make ``name`` build this network (``kind``: generator/discriminator)."""
    if kind not in _REGISTRY:
        raise ValueError(f"kind must be 'generator' or 'discriminator', not {kind!r}")

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        old = _REGISTRY[kind].get(name)
        if old is not None and old is not factory and old.__qualname__ != factory.__qualname__:
            raise ValueError(f"{kind} {name!r} is already registered to {old.__qualname__}")
        _REGISTRY[kind][name] = factory
        return factory

    return deco


def _ensure_builtins() -> None:
    global _loaded
    if not _loaded:
        for mod in BUILTIN_MODULES:
            importlib.import_module(mod)
        _loaded = True


def list_models(kind: Kind = "generator") -> list[str]:
    """The registered names of ``kind``, sorted."""
    _ensure_builtins()
    return sorted(_REGISTRY[kind])


def _create(kind: Kind, name: str, cfg: dict[str, Any]) -> nn.Module:
    _ensure_builtins()
    factory = _REGISTRY[kind].get(name)
    if factory is None:
        valid = ", ".join(sorted(_REGISTRY[kind])) or "(none)"
        raise FaceganError(f"unknown {kind} {name!r}; registered {kind}s: {valid}")
    params = inspect.signature(factory).parameters
    unknown = sorted(k for k in cfg if k not in params)
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = ", ".join(k for k in params if k != "self")
        raise FaceganError(f"{kind} {name!r} has no option(s) {', '.join(unknown)}; it takes: {valid}")
    try:
        return factory(**cfg)
    except ValueError as exc:  # constructors validate their sizes with ValueError
        raise FaceganError(f"{kind} {name!r}: {exc}") from None


def create_generator(name: str, **cfg: Any) -> nn.Module:
    """Build the generator registered as ``name``: ``(B, z_dim) -> (B, 3, H, W)`` in [-1, 1]."""
    return _create("generator", name, cfg)


def create_discriminator(name: str, **cfg: Any) -> nn.Module:
    """Build the discriminator registered as ``name``: ``(B, 3, H, W) -> (B,)`` logits."""
    return _create("discriminator", name, cfg)
