"""FID while training: ``fid_n`` samples against the reference statistics of ``--ref``.

The samples come from seeds :data:`~facegan.models.sampling.SELECTION_SEED_BASE` and up, never
the 0 … n-1 that ``facegan sample`` hands in: the score picks ``best.pt``, and the submitted
images must not have chosen their own checkpoint.

The FID engine (:mod:`facegan.fid`) is imported only when a score is asked for, so training
without ``--ref`` never loads the Inception network. Any object with ``statistics(uint8
(N, H, W, 3)) -> stats`` (having ``mu`` and ``sigma``) can stand in for the scorer in tests.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from facegan.errors import FaceganError
from facegan.models.sampling import Sampler, selection_seeds


class FidHook:
    """Scores a sampler: ``hook(sampler) -> float`` FID@``n`` against ``ref``
    (any :class:`~facegan.models.sampling.Sampler`: a GAN's generator, a diffusion model's steps).

    Args:
        ref: path of the reference statistics (.npz).
        device: where the scorer runs.
        n: samples per score.
        scorer: a stand-in for ``facegan.fid.FIDScorer(device)`` (tests); built lazily if None.
    """

    def __init__(self, ref: str | os.PathLike, device: torch.device, n: int = 1000, scorer: Any = None):
        self.ref_path = Path(ref)
        if not self.ref_path.is_file():
            raise FaceganError(f"{self.ref_path}: no such FID statistics file (--ref)")
        self.device, self.n = device, n
        self.seeds = selection_seeds(n)
        from facegan.fid import Stats

        self.ref = Stats.load(self.ref_path)
        self.floor = self.ref.floor_at(n)
        self._scorer = scorer
        self.last_s: float | None = None
        """seconds the last score took (None before the first)"""
        self._probed: float | None = None

    def describe_ref(self) -> str:
        """``ref.npz (10000 photos)``, or ``(reference of unknown size)`` for a bare pytorch-fid file."""
        n = getattr(self.ref, "n", None)
        return f"{self.ref_path.name} ({n} photos)" if n else f"{self.ref_path.name} (reference of unknown size)"

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            from facegan.fid import FIDScorer

            self._scorer = FIDScorer(self.device)
        return self._scorer

    def estimate_s(self, sampler: Sampler) -> float:
        """Seconds one score should take: the last one's, else measured on a few images (the
        first call also loads the Inception network, which is not counted)."""
        if self.last_s is not None:
            return self.last_s
        if self._probed is None:
            scorer = self.scorer
            k = min(self.n, PROBE_IMAGES)
            t = time.perf_counter()
            if k >= 2:
                scorer.statistics(sampler(self.seeds[:k]))
            self._probed = (time.perf_counter() - t) * self.n / max(k, 1)
        return self._probed

    def __call__(self, sampler: Sampler) -> float:
        from facegan.fid import frechet_distance

        t = time.perf_counter()
        images = sampler(self.seeds)
        stats = self.scorer.statistics(images)
        fid = frechet_distance(np.asarray(stats.mu), np.asarray(stats.sigma), self.ref.mu, self.ref.sigma)
        self.last_s = time.perf_counter() - t
        return fid


#: Images sampled and scored to estimate how long a whole score takes.
PROBE_IMAGES = 16


def inception_seconds(scorer: Any, n: int, size: int = 64) -> float:
    """About how many seconds ``scorer`` needs for ``n`` images of ``size`` px: a few are timed
    (blank ones: the network's cost does not depend on the pixels)."""
    k = min(max(n, 2), PROBE_IMAGES)
    shown = getattr(scorer, "progress", None)
    if shown:
        scorer.progress = False  # no flash of a progress bar for a few images
    try:
        t = time.perf_counter()
        scorer.statistics(np.zeros((k, size, size, 3), np.uint8))
        return (time.perf_counter() - t) * n / k
    finally:
        if shown:
            scorer.progress = shown
