"""Training: the config (:mod:`.config`), the one entry (:mod:`.entry`), the loop (:mod:`.loop`),
the methods it trains (:mod:`.methods`: the GAN, :mod:`.methods.gan`, and any registered other)
and the helpers — EMA (:mod:`.ema`), checkpoints (:mod:`.checkpoint`), logs and plots
(:mod:`.monitor`), FID while training (:mod:`.scoring`) and DDP (:mod:`.distributed`).

``from facegan.train import TrainConfig, training_loop`` is the public entry point. Names are
resolved lazily so that the CLI can read :class:`TrainConfig` without importing torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainConfig", "TrainResult", "training_loop", "config_for_resume"]


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from facegan.train.config import TrainConfig

        return TrainConfig
    if name in ("TrainResult", "training_loop"):
        from facegan.train import loop

        return getattr(loop, name)
    if name == "config_for_resume":
        from facegan.train.entry import config_for_resume

        return config_for_resume
    raise AttributeError(f"module 'facegan.train' has no attribute {name!r}")
