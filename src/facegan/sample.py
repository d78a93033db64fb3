"""``facegan sample``'s library side: a checkpoint's sampler → PNGs, image ``i`` from seed ``i``.

The seed → image rule itself is :mod:`facegan.models.sampling` (shared with training's grids and
FID); the sampler of a checkpoint comes from the training method its config names
(:func:`facegan.train.methods.load_sampler`); this module adds writing the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from facegan.errors import FaceganError
from facegan.models.sampling import Sampler, generate, noise_for_seeds, to_uint8  # noqa: F401  (the public names)


def load_generator(
    ckpt: str | os.PathLike, which: Literal["ema", "g"] = "ema", device: torch.device | str = "cpu"
) -> nn.Module:
    """The generator of a GAN's ``facegan train`` checkpoint (or run folder), in eval mode on ``device``.

    ``which="ema"`` takes the moving-average weights (with the BatchNorm statistics that were
    re-estimated for them when the checkpoint was written); ``"g"`` the raw generator.
    """
    from facegan.train.checkpoint import load
    from facegan.train.methods import DEFAULT_METHOD, method_of
    from facegan.train.methods.gan import load_generator as from_state

    state = load(ckpt)
    if method_of(state["config"]) != DEFAULT_METHOD:
        raise FaceganError(f"{state['path']}: trained by the method {method_of(state['config'])!r}, which has no "
                           "GAN generator; sample it with load_sampler / 'facegan sample'")
    return from_state(state, which, device)


def load_sampler(ckpt: str | os.PathLike, which: Literal["ema", "g"] = "ema", device: torch.device | str = "cpu",
                 batch_size: int = 250) -> Sampler:
    """The :class:`~facegan.models.sampling.Sampler` of a ``facegan train`` checkpoint (or run
    folder), built by the training method its config names (none named: the GAN's generator)."""
    from facegan.train.checkpoint import load
    from facegan.train.methods import load_sampler as from_state

    return from_state(load(ckpt), which, device, batch_size)


def write_pngs(images: np.ndarray, out: str | os.PathLike, start: int = 0, digits: int = 4) -> list[Path]:
    """Write image k as ``out/{start + k:0{digits}d}.png``."""
    from facegan.images import save_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, img in enumerate(images):
        p = out / f"{start + k:0{digits}d}.png"
        save_png(img, p)
        paths.append(p)
    return paths


def sample_to_folder(
    ckpt: str | os.PathLike,
    out: str | os.PathLike,
    n: int = 1000,
    *,
    which: Literal["ema", "g"] = "ema",
    device: torch.device | str = "cpu",
    first_seed: int = 0,
    batch_size: int = 250,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """``n`` PNGs in ``out``: ``{i:04d}.png`` from seed ``first_seed + i``. Returns their paths.

    Refuses a folder that already holds images unless ``overwrite`` (then only files of the same
    names are replaced; any other images there are reported as an error, since a submission
    folder must hold exactly the samples).
    """
    from facegan.images import is_image_name

    if n < 1:
        raise FaceganError(f"-n must be at least 1, got {n}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FaceganError(f"{out}: exists and is not a folder")
    digits = max(4, len(str(first_seed + n - 1)))
    names = {f"{first_seed + i:0{digits}d}.png" for i in range(n)}
    if out.is_dir():
        existing = sorted(p.name for p in out.iterdir() if is_image_name(p.name))
        if existing and not overwrite:
            raise FaceganError(f"{out}: already holds {len(existing)} images; use an empty folder or --overwrite")
        others = [e for e in existing if e not in names]
        if others:
            raise FaceganError(f"{out}: holds other images ({others[0]} ...) that are not part of these samples; "
                               "remove them or use an empty folder")
    sampler = load_sampler(ckpt, which, device, batch_size)
    from tqdm.auto import tqdm

    # Written batch by batch, so memory does not grow with n (-n 100000 held 1.2 GB of pixels twice).
    paths: list[Path] = []
    with tqdm(total=n, desc="sample", unit="img", disable=None if progress else True) as bar:
        for start in range(first_seed, first_seed + n, batch_size):
            seeds = list(range(start, min(start + batch_size, first_seed + n)))
            paths += write_pngs(sampler(seeds), out, start, digits)
            bar.update(len(seeds))
    return paths
