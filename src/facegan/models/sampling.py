"""Seeds → uint8 images: the one way anything in facegan turns a model into pictures.

Grids, FID while training, BatchNorm re-estimation and ``facegan sample`` all go through this
module, so a later non-GAN sampler (a diffusion model's, say) only has to keep the
:class:`Sampler` interface: ``sampler(seeds) -> uint8 (N, H, W, 3)``, image ``k`` a pure
function of ``seeds[k]``.

For a GAN generator, ``z_i = randn(z_dim)`` from a CPU generator seeded with ``i``; the network
runs in eval mode, where each image depends on its own ``z`` only (BatchNorm uses fixed
statistics), so batching changes nothing but speed. Images leave the model once, rounded.

Seed ranges keep selection honest: ``facegan sample`` hands in seeds ``0 … n-1``; FID while
training (which picks ``best.pt``) uses seeds from :data:`SELECTION_SEED_BASE` up, so the
submitted images never chose their own checkpoint.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

#: First seed of the images scored while training (checkpoint selection): disjoint from the
#: 0 … n-1 that ``facegan sample`` writes by default.
SELECTION_SEED_BASE = 1_000_000
#: Sampling expected to take longer than this (seconds) says so after its first batch.
SAY_SAMPLING_S = 10.0
#: First seed of the noise used to re-estimate BatchNorm statistics.
BN_SEED_BASE = 2_000_000


@runtime_checkable
class Sampler(Protocol):
    """Anything that turns seeds into images."""

    resolution: int
    """height and width of the images"""

    def __call__(self, seeds: Sequence[int]) -> np.ndarray:
        """uint8 (len(seeds), resolution, resolution, 3); image k depends on seeds[k] only."""
        ...


def selection_seeds(n: int) -> list[int]:
    """The ``n`` seeds scored while training (disjoint from the handed-in 0 … n-1)."""
    return list(range(SELECTION_SEED_BASE, SELECTION_SEED_BASE + n))


def noise_for_seeds(seeds: Iterable[int], z_dim: int) -> torch.Tensor:
    """(N, z_dim) float32: row k is ``randn(z_dim)`` from a CPU generator seeded with ``seeds[k]``."""
    g = torch.Generator()
    rows = [torch.randn(z_dim, generator=g.manual_seed(int(s))) for s in seeds]
    return torch.stack(rows) if rows else torch.empty(0, z_dim)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] → uint8 (B, H, W, 3): the model's door out, rounded once."""
    x = (x.float() + 1.0) * 127.5
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class GeneratorSampler:
    """A GAN generator as a :class:`Sampler` (eval mode, batched, exact fp32 on GPUs).

    Args:
        generator: any registered generator (``z_dim``, ``resolution``, ``forward(z)``).
        device: where it runs (default: where its parameters are).
        batch_size: images per forward pass.
        progress: show a progress bar (on a terminal).
    """

    label: str = ""
    """what a grid's caption calls the images (e.g. "EMA"); optional for any Sampler"""

    def __init__(self, generator: nn.Module, *, device: torch.device | str | None = None, batch_size: int = 250,
                 progress: bool = False):
        self.generator = generator
        self.device = torch.device(device) if device is not None else next(generator.parameters()).device
        self.batch_size, self.progress = batch_size, progress
        self.resolution = int(generator.resolution)

    def __call__(self, seeds: Sequence[int]) -> np.ndarray:
        with _exact_fp32(self.device), torch.inference_mode():
            return self._run(list(seeds))

    def _run(self, seeds: list[int]) -> np.ndarray:
        g = self.generator
        was_training = g.training
        g.eval()
        out = []
        starts: Iterable[int] = range(0, len(seeds), self.batch_size)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            starts = bar = tqdm(starts, desc="sample", unit="batch", disable=None)  # None: off when not a terminal
        t0 = time.perf_counter()
        try:
            for i in starts:
                z = noise_for_seeds(seeds[i : i + self.batch_size], g.z_dim).to(self.device)
                out.append(to_uint8(g(z)))  # (B, H, W, 3)
                if self.progress and i == 0 and len(seeds) > self.batch_size:
                    total = (time.perf_counter() - t0) * len(seeds) / len(out[0])
                    if total > SAY_SAMPLING_S:  # long enough to wonder about: said once, on or off a terminal
                        text = f"sampling {len(seeds)} images: about {total:.0f} s"
                        bar.write(text) if bar is not None and not bar.disable else print(text, flush=True)
        finally:
            g.train(was_training)
        return np.concatenate(out) if out else np.empty((0, self.resolution, self.resolution, 3), np.uint8)


def generate(generator: nn.Module, seeds: Sequence[int], *, batch_size: int = 250,
             device: torch.device | str | None = None, progress: bool = False) -> np.ndarray:
    """uint8 (len(seeds), H, W, 3) from ``generator``, one image per seed (see :class:`GeneratorSampler`)."""
    return GeneratorSampler(generator, device=device, batch_size=batch_size, progress=progress)(seeds)


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


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module, *, batches: int = 16, batch_size: int = 128,
                          device: torch.device | str = "cpu",
                          after_batch: Callable[[int, float], None] | None = None) -> nn.Module:
    """Re-estimate the BatchNorm running statistics of ``generator`` for its current weights.

    Why: the weights of a moving average do not match G's running statistics, so an EMA
    generator sampled in eval mode with statistics copied from G can be far worse than G itself
    (measured here: FID 370 vs 129). ``batches`` forward passes in train mode over the noise of
    seeds from :data:`BN_SEED_BASE` (no global random state is touched, so training stays
    reproducible), with ``momentum=None`` so the statistics are the plain average over all passes.
    ``after_batch(k, seconds)``: called after batch k (0-based) with the seconds spent so far
    (the caller can tell how long the rest will take). Returns the generator in eval mode.
    """
    bns = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return generator.eval()
    saved = [m.momentum for m in bns]
    t0 = time.perf_counter()
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average instead of an exponential one
        generator.train()
        for k in range(batches):
            first = BN_SEED_BASE + k * batch_size
            generator(noise_for_seeds(range(first, first + batch_size), generator.z_dim).to(device))
            if after_batch is not None:
                after_batch(k, time.perf_counter() - t0)
    finally:  # even when abandoned (Ctrl-C): the layers keep their own momentum
        for m, mom in zip(bns, saved):
            m.momentum = mom
    return generator.eval()
