"""Seeds → faces: image ``i`` is made from seed ``i``, so any image can be made again alone.

``z_i = randn(z_dim)`` from a generator seeded with ``i``; the generator runs in eval mode, where
each image depends on its own ``z`` only (BatchNorm uses fixed statistics), so batching changes
nothing but speed. Images leave the model once, rounded to uint8 (N, H, W, 3).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from facegan.errors import FaceganError


def noise_for_seeds(seeds: Iterable[int], z_dim: int) -> torch.Tensor:
    """(N, z_dim) float32: row k is ``randn(z_dim)`` from a CPU generator seeded with ``seeds[k]``."""
    g = torch.Generator()
    rows = [torch.randn(z_dim, generator=g.manual_seed(int(s))) for s in seeds]
    return torch.stack(rows) if rows else torch.empty(0, z_dim)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] → uint8 (B, H, W, 3): the model's door out, rounded once."""
    x = (x.float() + 1.0) * 127.5
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def generate(
    generator: nn.Module, seeds: Sequence[int], *, batch_size: int = 250, device: torch.device | str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """uint8 (len(seeds), H, W, 3) images from ``generator`` in eval mode, one per seed, batched.

    The generator is put in eval mode for the call and given back in the mode it came in.
    """
    if device is None:
        device = next(generator.parameters()).device
    with _exact_fp32(torch.device(device)):
        return _generate(generator, seeds, batch_size, device, progress)


@contextlib.contextmanager
def _exact_fp32(device: torch.device):
    """On GPUs, full fp32 convolutions while sampling: TF32's 10-bit mantissa lets the choice of
    kernel (which depends on the batch size) move a pixel by one level; in fp32 it (almost) never does."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@torch.inference_mode()
def _generate(generator, seeds, batch_size, device, progress) -> np.ndarray:
    was_training = generator.training
    generator.eval()
    out = []
    starts = range(0, len(seeds), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="sample", unit="batch", disable=None)  # None: off when not a terminal
    try:
        for i in starts:
            z = noise_for_seeds(seeds[i : i + batch_size], generator.z_dim).to(device)
            out.append(to_uint8(generator(z)))
    finally:
        generator.train(was_training)
    res = generator.resolution
    return np.concatenate(out) if out else np.empty((0, res, res, 3), np.uint8)


def load_generator(
    ckpt: str | os.PathLike, which: Literal["ema", "g"] = "ema", device: torch.device | str = "cpu"
) -> nn.Module:
    """The generator of a ``facegan train`` checkpoint (or run folder), in eval mode on ``device``.

    ``which="ema"`` takes the moving-average weights (with the BatchNorm statistics that were
    re-estimated for them when the checkpoint was written); ``"g"`` the raw generator.
    """
    from facegan.train.checkpoint import build_models, load

    state = load(ckpt)
    key = {"ema": "G_ema", "g": "G"}.get(which)
    if key is None:
        raise FaceganError(f"--which must be 'ema' or 'g', not {which!r}")
    if state.get(key) is None:
        raise FaceganError(f"{state['path']}: has no EMA generator (trained with --no-ema); use --which g")
    generator, _ = build_models(state["config"])
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
    seeds = list(range(first_seed, first_seed + n))
    images = generate(generator, seeds, batch_size=batch_size, device=device, progress=progress)
    return write_pngs(images, out, first_seed, digits)
