"""Full-state checkpoints, written atomically, read without running any code, that rebuild their
own models.

A checkpoint is one ``torch.save``\\ d dict of tensors and plain Python values only::

    format        "facegan-train-2"
    config        TrainConfig as a dict; its "method" (absent: "gan") names the training method,
                  whose keys sit beside the generic ones below. The GAN's: its "arch", "g" and
                  "d" rebuild each network alone;
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

Everything read is checked before it is used (:func:`load`): the zip's records are bounded by
the file's own size (:func:`facegan.safeload.torch_load`); the config must build its networks
on PyTorch's ``meta`` device (no memory) within :data:`MAX_PARAMS` parameters; every stored
state dict must have exactly the tensors, of the shapes, that the config's networks have; a
training checkpoint must hold the counters, optimiser and random states a resume needs. So a
1 KB file asking for a 4 TB layer, weights of another width or a config without weights is one
line naming the file, before anything large is allocated. :func:`check_finite` refuses NaN/inf
weights where they would be sampled.

Writing goes to a temporary file in the same folder, is flushed to disk, then renamed over
the target: a crash or a second Ctrl-C mid-write leaves the previous checkpoint intact. A full
disk is one line naming the file (:class:`~facegan.errors.WriteError`), whatever layer of
PyTorch noticed it.
"""

from __future__ import annotations

import errno
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
from facegan.safeload import library_reason, torch_load
# MAX_PARAMS lives with the check that enforces it; imported here (at module level, one way) so
# checkpoint_check never has to import this module back.
from facegan.train.checkpoint_check import MAX_PARAMS, check_state

FORMAT = "facegan-train-2"
#: A generator alone (``facegan export``): what sampling needs and nothing else.
EXPORT_FORMAT = "facegan-generator-1"
#: Formats this version reads.
READABLE_FORMATS = ("facegan-train-1", FORMAT, EXPORT_FORMAT)


def save_atomic(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save(state)`` to ``path`` so that ``path`` is always either the old or the new file."""

    def write(f) -> None:
        try:
            torch.save(state, f)
        except RuntimeError:  # torch's zip writer reports a full disk as "unexpected pos 576 vs 534"
            import shutil

            full = shutil.disk_usage(Path(path).parent).free < 64 * 1024 * 1024
            raise OSError(errno.ENOSPC if full else errno.EIO, "No space left on device" if full else
                          "the checkpoint could not be written") from None

    return atomic_write(path, write, fsync=True)


def _format1_globals() -> list[Any]:
    """The globals a facegan-train-1 file needs — numpy's array rebuilding (its RNG state) and
    torch's version string — and nothing else: none of them runs code."""
    from torch.torch_version import TorchVersion

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32)), TorchVersion]


def _torch_load(path: Path) -> Any:
    try:
        return torch_load(path)
    except pickle.UnpicklingError:
        pass  # maybe the previous format: try again allowing exactly what it holds
    return torch_load(path, allow=_format1_globals())


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
        if "GLOBAL" not in str(exc):  # a damaged file, not a hostile one (torch's text advises weights_only=False)
            raise FaceganError(f"{path}: not a readable checkpoint (a damaged file)") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = found.group(1)[:100] if found else "a global"
        raise FaceganError(
            f"{path}: refused: the file asks to run code on loading (it needs {what}); facegan reads "
            "checkpoints as weights only. Use a checkpoint written by 'facegan train' or 'facegan export'"
        ) from None
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise FaceganError(f"{path}: not a facegan training checkpoint (no '{FORMAT}' format tag)")
    if not isinstance(state.get("config"), dict):
        raise FaceganError(f"{path}: damaged checkpoint: its config is {type(state.get('config')).__name__}, not a dict")
    if state["format"] == "facegan-train-1":
        from facegan.train.config import upgrade_config

        try:
            state["config"] = upgrade_config(state["config"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FaceganError(f"{path}: damaged checkpoint: its config cannot be read ({library_reason(exc)})") from None
    check_state(state, path)
    state["path"] = str(path)
    return state


def check_finite(state_dict: dict[str, torch.Tensor], path: str | os.PathLike, what: str = "generator") -> None:
    """Refuse weights holding NaN or infinity: they would sample blank images without a word."""
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise FaceganError(f"{path}: the {what}'s weights hold NaN or infinite values ({key}); "
                               "the run diverged before this was saved: use an earlier checkpoint")


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
    from facegan.train.methods import DEFAULT_METHOD, method_of

    if method_of(state["config"]) != DEFAULT_METHOD:
        raise FaceganError(f"{state['path']}: trained by the method {method_of(state['config'])!r}; only a GAN's "
                           "generator can be exported (sample the checkpoint itself)")
    _refuse_overwriting_a_training_checkpoint(out, state["path"])
    key = {"ema": "G_ema", "g": "G"}[which]
    if state.get(key) is None:
        raise FaceganError(f"{state['path']}: has no {'EMA ' if which == 'ema' else ''}generator to export"
                           + (" (trained with --no-ema); use --which g" if which == "ema" else ""))
    check_finite(state[key], state["path"])
    cfg = state["config"]
    small = {"format": EXPORT_FORMAT, "config": {"arch": cfg["arch"], "g": cfg["g"], "resolution": cfg.get("resolution")},
             key: state[key], "which": which, "source": state["path"], "nimg": state.get("nimg"),
             "step": state.get("step")}
    return save_atomic(small, out)


def _refuse_overwriting_a_training_checkpoint(out: str | os.PathLike, source: str) -> None:
    """``export run/last.pt -o run/last.pt`` would lose the optimiser, D and random states."""
    out = Path(out)
    if not out.is_file():
        return
    if out.resolve() == Path(source).resolve():
        raise FaceganError(f"{out}: is the checkpoint being exported; writing over it would lose the run's "
                           "optimiser, discriminator and random states. Choose another -o (e.g. g.pt)")
    try:
        import zipfile

        with zipfile.ZipFile(out) as zf:  # the format tag is the pickle's first key: a peek finds it
            names = [n for n in zf.namelist() if n.endswith("/data.pkl")]
            head = zf.open(names[0]).read(4096) if names else b""
        tagged = any(tag.encode() in head for tag in ("facegan-train-1", FORMAT))
    except (OSError, zipfile.BadZipFile, ValueError, KeyError):
        return
    if tagged:
        raise FaceganError(f"{out}: is a training checkpoint; writing over it would lose the run's optimiser, "
                           "discriminator and random states. Choose another -o (e.g. g.pt)")
