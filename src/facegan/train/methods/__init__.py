"""Training methods: what is trained and how, behind one seam the loop knows by role only.

NVlabs edm's ``training_loop`` knows ``net``, ``loss_fn`` and ``optimizer`` by role; facegan's
loop knows one object, a :class:`TrainingMethod`, built from the run's config. The GAN
(:mod:`.gan`: G, D, two optimisers, augmentation, the EMA of G) is one entry; a method that is not
a GAN (a diffusion model, say) is another file registering itself, with no edit to the loop, the
checkpoints, ``facegan sample`` or the CLI::

    @dataclass
    class MyOptions:
        steps: int = 4
        \"\"\"sampling steps\"\"\"

    @register_method("mine", config=MyOptions)
    class MyMethod:
        def __init__(self, cfg: TrainConfig, options: MyOptions, info: DistInfo): ...
        # the TrainingMethod members below, plus two static methods for checkpoints:
        @staticmethod
        def check_checkpoint(state: dict, path: Path) -> None: ...    # refuse a damaged one
        @staticmethod
        def load_sampler(state: dict, which: str, device, batch_size: int) -> Sampler: ...

``--method mine`` picks it; its options are ``--m.NAME`` (``TrainConfig.method_options``,
validated by the options dataclass). The registry finds its built-in entries itself: every
public module of this package is imported on the first lookup.

The loop's side of the contract: it seeds Python, numpy and torch with ``cfg.seed``, builds the
method (on every rank alike), then the batch loader (``cfg.batch // world`` images per rank,
in the method's memory format), restores both from a checkpoint, and for each step calls
``method.step(next_real)``; it counts ``images_per_step`` images and one step. It writes the
generic checkpoint keys (format, config, counters, loader, random states, best FID) beside
``method.state_dict()``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from facegan.errors import FaceganError
from facegan.registry import Entry, Registry

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from facegan.data.loader import BatchLoader
    from facegan.models.sampling import Sampler
    from facegan.train.distributed import DistInfo

METHODS: Registry[type] = Registry("method", package="facegan.train.methods")

#: A checkpoint (or config) without a ``method`` key was written by the GAN, the only method then.
DEFAULT_METHOD = "gan"


@runtime_checkable
class TrainingMethod(Protocol):
    """What the loop, the speed check and the benchmarks rely on in a built method."""

    noise: "torch.Generator"
    """the method's own random generator on this rank (saved and restored with the process's
    random states, so a resumed run draws what an uninterrupted one would)"""
    channels_last: bool
    """whether the real batches should come in NHWC memory format"""
    images_per_step: int
    """real images one :meth:`step` consumes over all ranks (counted as the run's progress)"""
    sync_module: "nn.Module"
    """the module whose weights every rank must hold alike (checksummed into each checkpoint)"""

    def step(self, next_real: Callable[[], "torch.Tensor"]) -> dict[str, "torch.Tensor | float"]:
        """One training step; ``next_real()`` gives the next real batch (B, 3, H, W) in [-1, 1].
        Returns named scalars (tensors are averaged over a tick, plain numbers keep the latest)."""
        ...

    def set_lr_scale(self, scale: float) -> None:
        """Multiply every base learning rate by ``scale`` (the loop's decay schedule)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The method's checkpoint keys (tensors and plain values only), ready to sample from."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a whole checkpoint (its generic keys ``nimg``/``step`` included)."""
        ...

    def sampler(self, say: Callable[[str], None] | None = None) -> "Sampler":
        """Seeds -> uint8 images from the weights as they are now (grids, FID, ``on_tick``);
        ``say``: where a preparation that takes a while is announced. An optional ``label``
        attribute on the sampler is shown in the grids' caption."""
        ...

    def describe(self) -> str:
        """One line: what is trained and how it computes (for the run's first message)."""
        ...


def register_method(name: str, *, config: type | None = None, **meta: Any) -> Callable[[type], type]:
    """Decorator: register a method class as ``name``; ``config``: its options dataclass
    (``--m.NAME`` on the command line), or None for a method without options of its own."""
    return METHODS.register(name, config=config, **meta)


def method_names() -> list[str]:
    """The registered methods, in registration order."""
    return METHODS.names()


def get_method(name: str) -> Entry[type]:
    """The registry entry of method ``name`` (unknown names: a FaceganError listing the valid ones)."""
    return METHODS.get(name)


def method_options(name: str, values: Any = None) -> Any:
    """The options dataclass of method ``name`` from ``values`` (a dict, an instance or None);
    None for a method without options. Unknown fields and bad values are a clear error."""
    cls = get_method(name).config
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        values = dataclasses.asdict(values)
    if cls is None:
        if values:
            raise FaceganError(f"method {name!r} takes no --m.* options, got {', '.join(sorted(values))}")
        return None
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(k for k in (values or {}) if k not in fields)
    if unknown:
        raise FaceganError(f"method {name!r} has no option(s) {', '.join(unknown)}; it takes: {', '.join(fields)}")
    try:
        return cls(**(values or {}))
    except (TypeError, ValueError) as exc:
        raise FaceganError(f"method {name!r}: {exc}") from None


def method_of(config: dict[str, Any]) -> str:
    """The method named by a checkpoint's config dict (none named: the GAN)."""
    name = config.get("method", DEFAULT_METHOD)
    if name is None:
        return DEFAULT_METHOD
    if not isinstance(name, str):
        raise FaceganError(f"its config names no method ('method' is {type(name).__name__})")
    return name


def build_method(cfg: Any, info: "DistInfo") -> TrainingMethod:
    """A fresh method of ``cfg.method`` on ``info``'s device, every global random generator
    seeded with ``cfg.seed`` first (the same initial weights on every rank)."""
    import random

    import numpy as np
    import torch

    random.seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    torch.manual_seed(cfg.seed)
    entry = get_method(cfg.method)
    return entry.obj(cfg, method_options(cfg.method, cfg.method_options), info)


def build_loader(cfg: Any, images: "np.ndarray", info: "DistInfo", method: TrainingMethod) -> "BatchLoader":
    """The batch loader of a run: ``cfg.batch // world`` images per rank, in the method's layout."""
    from facegan.data.loader import BatchLoader

    return BatchLoader(images, cfg.batch // info.world_size, device=info.device, flip=cfg.flip, seed=cfg.seed,
                       rank=info.rank, world_size=info.world_size, channels_last=method.channels_last)


def build_training(cfg: Any, images: "np.ndarray", info: "DistInfo") -> tuple[TrainingMethod, "BatchLoader"]:
    """The method and the loader of a fresh run (what the loop, the speed check and the
    benchmarks time): one way to build them, so every timing measures the same step."""
    method = build_method(cfg, info)
    return method, build_loader(cfg, images, info, method)


def check_checkpoint(state: dict[str, Any], path: Any) -> None:
    """Let the checkpoint's method check its own keys (called by :func:`facegan.train.checkpoint.load`)."""
    name = method_of(state["config"])
    entry = get_method(name)
    entry.obj.check_checkpoint(state, path)


def load_sampler(state: dict[str, Any], which: str = "ema", device: Any = "cpu", batch_size: int = 250) -> "Sampler":
    """The :class:`~facegan.models.sampling.Sampler` of a loaded checkpoint, built by the method
    its config names (``which``: ``"ema"`` or ``"g"``, for methods that keep both)."""
    return get_method(method_of(state["config"])).obj.load_sampler(state, which, device, batch_size)
