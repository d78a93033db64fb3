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
from typing import Any, Callable

import numpy as np
import torch
from facegan.errors import FaceganError
from facegan.models.sampling import Sampler, selection_seeds
import facegan.train.distributed as dist_util
from facegan.train.monitor import TARGET_FID


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


class FidSchedule:
    """When to score FID while training, and what each score says and records.

    Args:
        hook: the scorer on rank 0 (None on the other ranks, and without ``--ref``).
        cfg: the run's config (``fid_n``, ``fid_share``).
        info: the process's place under DDP (every rank must agree on whether to score).
        mon: where the scores are said and logged.
        total_s: the run's length in seconds, when given in minutes.
    """

    def __init__(self, hook: FidHook | None, cfg: Any, info: Any, mon: Any, total_s: float | None):
        self.hook, self.cfg, self.info, self.mon, self.total_s = hook, cfg, info, mon, total_s
        self.spent = 0.0
        """seconds spent on FID so far in this call (scores and their timing)"""
        self.wait_said = False

    def score(self, pr: Any, sampler: Callable[[], Sampler]) -> bool:
        """FID on rank 0 (the hook is None elsewhere) of ``sampler()``, recorded in ``pr`` (the
        run's counters) when it is the best so far; every rank learns whether it improved."""
        cfg, hook = self.cfg, self.hook
        better = False
        if hook is not None:
            t = time.perf_counter()
            est = hook.last_s
            self.mon.message(f"FID@{cfg.fid_n} at kimg {pr.nimg / 1000:.1f}: sampling {cfg.fid_n} images and scoring "
                             "them with Inception" + (f" (about {est:.0f} s, like the last one)" if est else "") + " ...")
            fid = hook(sampler())
            self.spent += time.perf_counter() - t
            better = pr.best_fid is None or fid < pr.best_fid
            if better:
                pr.best_fid, pr.best_kimg = fid, pr.nimg / 1000
            self.mon.log({"kimg": pr.nimg / 1000, "fid": fid, "fid_n": cfg.fid_n, "fid_floor": hook.floor,
                          "fid_s": round(time.perf_counter() - t, 1)})
            self.mon.message(
                f"FID@{cfg.fid_n} = {fid:.2f} at kimg {pr.nimg / 1000:.1f} ({cfg.fid_n} samples, seeds "
                f"{hook.seeds[0]}+, vs {hook.describe_ref()}"
                + (f"; real-data floor {hook.floor:.1f}" if hook.floor is not None else "")
                + f"; target {TARGET_FID:g}; took {time.perf_counter() - t:.0f} s)"
                + f"{'  new best -> best.pt' if better else f'  (best {pr.best_fid:.2f})'}"
            )
        better = dist_util.any_rank(better, self.info)
        if better and hook is None:
            pr.best_kimg = pr.nimg / 1000
        return better

    def due(self, final: bool, pr: Any, sampler: Callable[[], Sampler]) -> bool:
        """Whether to score now (every rank gets the same answer).

        A score is worth its time only when it can choose: the one at the end runs only when an
        earlier score exists (else best.pt would just be last.pt). Scores along the way keep to
        ``--fid-share`` of the time, counting the one at the end: a score is estimated (timed
        on a few images the first time) and runs only when the time spent on FID so far plus
        this one and the final one fits in that share. Under torchrun (every rank must agree)
        or with ``--fid-share 0`` they come every ``--fid-kimg``.
        """
        cfg, hook = self.cfg, self.hook
        if final:
            return dist_util.any_rank(pr.best_fid is not None, self.info)
        if cfg.fid_share <= 0 or self.info.distributed or hook is None:
            return True
        if hook.last_s is None and not self.wait_said:
            self.mon.message(f"FID@{cfg.fid_n}: loading the Inception network and timing it on a few images, to "
                             f"keep scoring within --fid-share {cfg.fid_share:g} of the time ...")
        t = time.perf_counter()
        est = hook.estimate_s(sampler())
        self.spent += time.perf_counter() - t  # timing it (once) is time spent on FID too
        ok = self.spent + 2 * est <= cfg.fid_share * pr.elapsed
        if not ok and not self.wait_said:
            self.wait_said = True
            need = (self.spent + 2 * est) / cfg.fid_share
            when = (f"after about {need / 60:.0f} min of training" if self.total_s is None or need < self.total_s
                    else "not in this run's time")
            self.mon.message(f"FID@{cfg.fid_n} takes about {est:.0f} s here; --fid-share {cfg.fid_share:g} keeps "
                             f"scoring to {cfg.fid_share:.0%} of the time, so the first score comes {when}")
        return ok


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
