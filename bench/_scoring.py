"""Scoring helpers shared by the quality benchmarks: FID@n of uint8 arrays against the shared
statistics, the real-data floor beside it, and a pixel-space copy check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from _common import SHARED

REF = SHARED / "celeba-10k-stats.npz"
FLOOR_1K = 16.43  # celeba-10k-figures.md: 1,000 real vs the other 9,000, mean of 10 splits


class Scorer:
    """FID of uint8 (N, 64, 64, 3) arrays against ``ref`` with one Inception network."""

    def __init__(self, ref: Path = REF, device: str = "cpu"):
        from facegan.fid import FIDScorer, Stats

        self.ref_path = ref
        self.ref = Stats.load(ref)
        self.scorer = FIDScorer(device)

    def fid(self, images: np.ndarray) -> float:
        from facegan.fid import frechet_distance

        s = self.scorer.statistics(images)
        return float(frechet_distance(s.mu, s.sigma, self.ref.mu, self.ref.sigma))


def nearest_distances(queries: np.ndarray, pool: np.ndarray, exclude_self: bool = False, chunk: int = 250) -> np.ndarray:
    """For each query image, the RMS pixel distance (0-255 scale) to its nearest image in ``pool``."""
    p = torch.from_numpy(np.asarray(pool.reshape(len(pool), -1), dtype=np.float32))
    p_sq = (p * p).sum(1)
    out = []
    for i in range(0, len(queries), chunk):
        q = torch.from_numpy(np.asarray(queries[i : i + chunk].reshape(-1, p.shape[1]), dtype=np.float32))
        d2 = (q * q).sum(1, keepdim=True) + p_sq[None] - 2 * q @ p.T  # |q-p|^2 without the (N, M, D) tensor
        if exclude_self:
            d2[torch.arange(len(q)), torch.arange(i, i + len(q))] = float("inf")
        out.append(d2.clamp_min(0).min(1).values)
    return (torch.cat(out) / p.shape[1]).sqrt().numpy()


_REAL_CACHE: dict[tuple[int, int, int], np.ndarray] = {}


def _real_distances(train: np.ndarray, n_real: int) -> np.ndarray:
    """Real photos' distances to their nearest other photo: the same for every sample set, so
    computed once per training set (keyed by its identity and size) and process."""
    key = (id(train), len(train), n_real)
    if key not in _REAL_CACHE:
        rng = np.random.default_rng(0)
        idx = rng.choice(len(train), size=min(n_real, len(train)), replace=False)
        pool = np.concatenate([train[idx], np.delete(train, idx, axis=0)])  # queries first: "self" is index i
        _REAL_CACHE[key] = nearest_distances(train[idx], pool, exclude_self=True)
    return _REAL_CACHE[key]


def copy_check(samples: np.ndarray, train: np.ndarray, n_real: int = 1000) -> dict[str, float]:
    """Median / 1st percentile / min of the samples' nearest-training-photo distances, beside the
    same for real photos to their nearest *other* photo (a copier would sit far below)."""
    fake = nearest_distances(samples, train)
    real = _real_distances(train, n_real)
    return {"fake_median": float(np.median(fake)), "fake_p1": float(np.percentile(fake, 1)), "fake_min": float(fake.min()),
            "real_median": float(np.median(real)), "real_p1": float(np.percentile(real, 1)), "real_min": float(real.min())}
