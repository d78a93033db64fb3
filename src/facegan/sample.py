"""``facegan sample``'s library side: a checkpoint's generator → PNGs, image ``i`` from seed ``i``.

The seed → image rule itself is :mod:`facegan.models.sampling` (shared with training's grids and
FID); this module adds reading the generator out of a checkpoint and writing the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from facegan.errors import FaceganError
from facegan.models.sampling import generate, noise_for_seeds, to_uint8  # noqa: F401  (the public names)


def load_generator(
    ckpt: str | os.PathLike, which: Literal["ema", "g"] = "ema", device: torch.device | str = "cpu"
) -> nn.Module:
    """The generator of a ``facegan train`` checkpoint (or run folder), in eval mode on ``device``.

    ``which="ema"`` takes the moving-average weights (with the BatchNorm statistics that were
    re-estimated for them when the checkpoint was written); ``"g"`` the raw generator.
    """
    from facegan.train.checkpoint import build_generator, check_finite, load

    state = load(ckpt)
    key = {"ema": "G_ema", "g": "G"}.get(which)
    if key is None:
        raise FaceganError(f"--which must be 'ema' or 'g', not {which!r}")
    if state.get(key) is None:
        if state["format"] == "facegan-generator-1":
            other = "ema" if which == "g" else "g"
            raise FaceganError(f"{state['path']}: an exported file holding only one generator; use --which {other}")
        raise FaceganError(f"{state['path']}: has no EMA generator (trained with --no-ema); use --which g")
    check_finite(state[key], state["path"])  # NaN weights would sample blank images without a word
    generator = build_generator(state["config"])  # only G: sampling never builds D (shapes checked by load)
    generator.load_state_dict(state[key])
    return generator.to(device).eval()


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
    generator = load_generator(ckpt, which, device)
    from tqdm.auto import tqdm

    from facegan.models.sampling import GeneratorSampler

    # Written batch by batch, so memory does not grow with n (-n 100000 held 1.2 GB of pixels twice).
    sampler = GeneratorSampler(generator, device=device, batch_size=batch_size)
    paths: list[Path] = []
    with tqdm(total=n, desc="sample", unit="img", disable=None if progress else True) as bar:
        for start in range(first_seed, first_seed + n, batch_size):
            seeds = list(range(start, min(start + batch_size, first_seed + n)))
            paths += write_pngs(sampler(seeds), out, start, digits)
            bar.update(len(seeds))
    return paths
