"""Full-state checkpoints, written atomically, that rebuild their own models.

A checkpoint is one ``torch.save``\\ d dict::

    format        "facegan-train-1"
    config        TrainConfig as a dict (enough to rebuild G and D: see build_models)
    G, D, G_ema   state dicts (G_ema absent when the run has no EMA)
    opt_g, opt_d  Adam states
    nimg, step    images shown to D so far, optimizer steps so far
    elapsed       seconds of training so far (for --minutes across resumes)
    loader        the batch loader's position (epoch, position, seed)
    rng           every random state: python, numpy, torch CPU, CUDA, and each rank's noise generator
    best_fid      best FID so far, or None; best_kimg: where it was scored

Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over
the target: a crash or a second Ctrl-C mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facegan.errors import FaceganError
from facegan.fileio import atomic_write

FORMAT = "facegan-train-1"


def save_atomic(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save(state)`` to ``path`` so that ``path`` is always either the old or the new file."""
    return atomic_write(path, lambda f: torch.save(state, f), fsync=True)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``facegan train`` onto the CPU, or raise a clear error."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise FaceganError(f"{path}: a folder without best.pt or last.pt; pass a checkpoint file")
    if not path.is_file():
        raise FaceganError(f"{path}: no such checkpoint")
    try:
        # Our checkpoints hold numpy RNG state and plain Python: allow exactly that.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a readable checkpoint"
        raise FaceganError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FaceganError(f"{path}: not a facegan training checkpoint (no '{FORMAT}' format tag)")
    state["path"] = str(path)
    return state


def build_models(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """Fresh (G, D) from a checkpoint's config dict, through the model registry."""
    from facegan.config import from_dict
    from facegan.models.registry import create_discriminator, create_generator
    from facegan.train.config import TrainConfig

    cfg = from_dict(TrainConfig, config)
    g_kw, d_kw = cfg.model_kwargs()
    return create_generator(cfg.arch, **g_kw), create_discriminator(cfg.arch, **d_kw)


def rng_state(noise: torch.Generator) -> dict[str, Any]:
    """Every random state this process uses, including the training noise generator's."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "noise": noise.get_state(),
        "noise_device": str(noise.device),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], noise: torch.Generator) -> None:
    """Restore what :func:`rng_state` captured (the CUDA part only when the devices match)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("noise_device", "cpu") == str(noise.device):
        noise.set_state(state["noise"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
