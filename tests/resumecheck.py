"""The bit-exact resume check that every trainable family shares: a run trained straight to
``kimg`` and one stopped half-way and resumed end with the same weights, bit for bit (fp32, CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from facegan.train import TrainConfig, config_for_resume, training_loop
from facegan.train.checkpoint import load


def straight_and_resumed(tmp_path: Path, base: dict[str, Any], kimg: float = 0.064) -> tuple[dict, dict]:
    """The last checkpoints of the straight run (``tmp_path/a``) and the stopped-and-resumed one (``b``)."""
    training_loop(TrainConfig(out=str(tmp_path / "a"), kimg=kimg, **base))
    training_loop(TrainConfig(out=str(tmp_path / "b"), kimg=kimg / 2, **base))
    training_loop(config_for_resume(tmp_path / "b", {"kimg": kimg}), resume=True)
    return load(tmp_path / "a" / "last.pt"), load(tmp_path / "b" / "last.pt")


def assert_same_networks(a: dict, b: dict) -> None:
    """G, D and G_ema of two checkpoints are equal tensor for tensor (buffers included)."""
    for key in ("G", "D", "G_ema"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), (key, name)
