"""FID while training: ``fid_n`` samples (seeds 0…n−1, exactly what ``facegan sample`` would
write) against the reference statistics of ``--ref``.

The FID engine lives in :mod:`facegan.fid` and is imported only when a score is asked for, so
training works without it. Any object with ``statistics(uint8 (N, H, W, 3)) -> stats`` (having
``mu`` and ``sigma``) can stand in for the scorer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facegan.errors import FaceganError


def _read_ref(path: Path) -> Any:
    """The reference statistics, through facegan.fid's loader when it is there."""
    try:
        from facegan.fid import Stats
    except ImportError:
        Stats = None
    if Stats is not None:
        return Stats.load(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return _PlainStats(z["mu"], z["sigma"], {k: z[k] for k in z.files if k not in ("mu", "sigma")})
    except (OSError, KeyError, ValueError) as exc:
        raise FaceganError(f"{path}: not FID statistics (an .npz with mu and sigma): {exc}") from None


class _PlainStats:
    def __init__(self, mu: np.ndarray, sigma: np.ndarray, meta: dict[str, Any]):
        self.mu, self.sigma, self.meta = mu, sigma, meta


def _distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    try:
        from facegan.fid import frechet_distance
    except ImportError:  # before facegan.fid exists: pytorch-fid's implementation of the same formula
        from pytorch_fid.fid_score import calculate_frechet_distance as frechet_distance
    return float(frechet_distance(mu1, s1, mu2, s2))


def ref_floor(ref: Any, n: int) -> float | None:
    """The real-vs-real FID at ``n`` samples if the reference statistics record it, else None."""
    floor = getattr(ref, "floor", None)
    if floor is not None and getattr(floor, "n_sample", n) == n:
        value = getattr(floor, "mean", floor)
        if isinstance(value, (int, float, np.floating)):
            return float(value)
    meta = getattr(ref, "meta", None) or getattr(ref, "metadata", None) or {}
    for key in (f"floor_{n}", f"fid_floor_{n}", "floor", "fid_floor"):
        v = meta.get(key) if isinstance(meta, dict) else None
        if v is not None:
            try:
                return float(np.asarray(v))
            except (TypeError, ValueError):
                continue
    return None


class FidHook:
    """Scores a generator: ``hook(G) -> float`` FID@``n`` against ``ref``.

    Args:
        ref: path of the reference statistics (.npz).
        device: where the scorer and the generator run.
        n: samples per score.
        scorer: a stand-in for ``facegan.fid.FIDScorer(device)`` (tests); built lazily if None.
    """

    def __init__(self, ref: str | os.PathLike, device: torch.device, n: int = 1000, scorer: Any = None):
        self.ref_path = Path(ref)
        if not self.ref_path.is_file():
            raise FaceganError(f"{self.ref_path}: no such FID statistics file (--ref)")
        self.device, self.n = device, n
        self.ref = _read_ref(self.ref_path)
        self.floor = ref_floor(self.ref, n)
        self._scorer = scorer

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            try:
                from facegan.fid import FIDScorer
            except ImportError as exc:
                raise FaceganError(f"--ref needs the FID engine (facegan.fid), which cannot be imported: {exc}") from None
            self._scorer = FIDScorer(self.device)
        return self._scorer

    def __call__(self, generator: nn.Module) -> float:
        from facegan.sample import generate

        images = generate(generator, list(range(self.n)), device=self.device)
        stats = self.scorer.statistics(images)
        return _distance(np.asarray(stats.mu), np.asarray(stats.sigma), np.asarray(self.ref.mu), np.asarray(self.ref.sigma))
