"""Full-state checkpoints, written atomically, read without running any code, that rebuild their
own models.

A checkpoint is one ``torch.save``\\ d dict of tensors and plain Python values only::

    format        "facegan-train-2"
    config        TrainConfig as a dict; its "arch", "g" and "d" rebuild each network alone
    G, D, G_ema   state dicts (G_ema None when the run has no EMA)
    opt_g, opt_d  Adam states
    nimg, step    images shown to D so far, generator steps so far
    elapsed       seconds of training so far (for --minutes across resumes)
    loader        the batch loader's position (epoch, position, seed)
    augment       the augmentation's probability and random state (None without augmentation)
    rng           every random state: python, numpy (as plain lists), torch CPU, CUDA, and each
                  rank's noise generator
    best_fid      best FID so far, or None; best_kimg: where it was scored

Reading uses ``torch.load(weights_only=True)``: a crafted file cannot run code, whatever it
holds (students swap checkpoints; staff load them). The previous format, ``facegan-train-1``,
held numpy arrays; it is still read, allowing exactly numpy's array reconstruction, and its
config is upgraded (:func:`facegan.train.config.upgrade_config`).

Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over
the target: a crash or a second Ctrl-C mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facegan.errors import FaceganError
from facegan.fileio import atomic_write

FORMAT = "facegan-train-2"
#: A generator alone (``facegan export``): what sampling needs and nothing else.
EXPORT_FORMAT = "facegan-generator-1"
#: Formats this version reads.
READABLE_FORMATS = ("facegan-train-1", FORMAT, EXPORT_FORMAT)


def save_atomic(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save(state)`` to ``path`` so that ``path`` is always either the old or the new file."""
    return atomic_write(path, lambda f: torch.save(state, f), fsync=True)


def _format1_globals() -> list[Any]:
    """The globals a facegan-train-1 file needs — numpy's array rebuilding (its RNG state) and
    torch's version string — and nothing else: none of them runs code."""
    from torch.torch_version import TorchVersion

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32)), TorchVersion]


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # maybe the previous format: try again allowing exactly what it holds
    with torch.serialization.safe_globals(_format1_globals()):
        return torch.load(path, map_location="cpu", weights_only=True)


def resolve_path(path: str | os.PathLike) -> Path:
    """A checkpoint file, or the ``best.pt`` (else ``last.pt``) of a run folder."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise FaceganError(f"{path}: a folder without best.pt or last.pt; pass a checkpoint file")
    if not path.is_file():
        raise FaceganError(f"{path}: no such checkpoint")
    return path


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``facegan train`` onto the CPU, or raise a clear error.

    Nothing in the file is executed: a pickle that asks for any global beyond tensors, plain
    Python values (and, for the previous format, numpy arrays) is refused.
    """
    path = resolve_path(path)
    try:
        state = _torch_load(path)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # a damaged file, not a hostile one
            raise FaceganError(f"{path}: not a readable checkpoint (UnpicklingError: {str(exc)[:200]})") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = found.group(1)[:100] if found else "a global"
        raise FaceganError(
            f"{path}: refused: the file asks to run code on loading (it needs {what}); facegan reads "
            "checkpoints as weights only. Use a checkpoint written by 'facegan train' or 'facegan export'"
        ) from None
    except Exception as exc:  # zip and torch errors all mean "not a readable checkpoint"
        raise FaceganError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise FaceganError(f"{path}: not a facegan training checkpoint (no '{FORMAT}' format tag)")
    if state["format"] == "facegan-train-1":
        from facegan.train.config import upgrade_config

        state["config"] = upgrade_config(state["config"])
    state["path"] = str(path)
    return state


def build_generator(config: dict[str, Any]) -> nn.Module:
    """A fresh generator from a checkpoint's config dict alone (its ``arch`` and ``g``)."""
    from facegan.models.registry import build

    return build("generator", config["arch"], config["g"])


def build_discriminator(config: dict[str, Any]) -> nn.Module:
    """A fresh discriminator from a checkpoint's config dict alone (its ``arch`` and ``d``)."""
    from facegan.models.registry import build

    return build("discriminator", config["arch"], config["d"])


def rng_state(noise: torch.Generator) -> dict[str, Any]:
    """Every random state this process uses, as tensors and plain values (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "noise": noise.get_state(),
        "noise_device": str(noise.device),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], noise: torch.Generator) -> None:
    """Restore what :func:`rng_state` captured (the CUDA part only when the devices match)."""
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if state.get("noise_device", "cpu") == str(noise.device):
        noise.set_state(state["noise"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _tuples(x: Any) -> Any:
    """random.setstate wants tuples where a round trip may have made lists."""
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def export_generator(ckpt: str | os.PathLike, out: str | os.PathLike, which: str = "ema") -> Path:
    """Write the generator of a training checkpoint alone (``which``: the EMA or G) to ``out``:
    its config and weights, a fraction of the full checkpoint's size, readable by ``facegan sample``."""
    state = load(ckpt)
    key = {"ema": "G_ema", "g": "G"}[which]
    if state.get(key) is None:
        raise FaceganError(f"{state['path']}: has no {'EMA ' if which == 'ema' else ''}generator to export"
                           + (" (trained with --no-ema); use --which g" if which == "ema" else ""))
    cfg = state["config"]
    small = {"format": EXPORT_FORMAT, "config": {"arch": cfg["arch"], "g": cfg["g"], "resolution": cfg.get("resolution")},
             key: state[key], "which": which, "source": state["path"], "nimg": state.get("nimg"),
             "step": state.get("step")}
    return save_atomic(small, out)
