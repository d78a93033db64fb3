"""FID, KID and statistics for notebooks, shaped like clean-fid's ``compute_fid(fdir1, fdir2)``::

    from facegan.fid import compute_fid, compute_kid, compute_stats
    compute_fid("samples/", "ref.npz")                  # a float, pytorch-fid's number
    compute_fid(fake_uint8, "data/celeba64.npy")        # (N, 64, 64, 3) uint8 numpy or torch
    mean, std = compute_kid("samples/", "real/")
    ref = compute_stats("data/celeba64.npy"); ref.save("ref.npz")

Each input is a folder of images (recursive), a ``.zip``/``.tar(.gz)``, a uint8 ``.npy``, ``.npz``
statistics, an in-memory uint8 ``(N, H, W, 3)`` numpy array or torch tensor (RGB, 0..255), or a
:class:`~facegan.fid.stats.Stats`. The numbers are those of ``facegan fid`` (and pytorch-fid);
what the command prints as warnings (fewer than 2,048 images, images that are not 64×64, other
weights) comes as :class:`FIDWarning`\\ s. The Inception network is loaded once per device and
kept for the next call.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from facegan.errors import FaceganError

if TYPE_CHECKING:  # pragma: no cover
    from facegan.fid.comparison import Comparison
    from facegan.fid.features import FIDScorer
    from facegan.fid.stats import Stats


class FIDWarning(UserWarning):
    """Something about an FID that the number alone does not say (small N, other image size...)."""


@lru_cache(maxsize=4)
def _cached_scorer(device: str, batch: int | None, weights: str | None) -> "FIDScorer":
    from facegan.fid.features import FIDScorer

    return FIDScorer(device, weights, batch)


def get_scorer(device: str = "auto", *, batch: int | None = None, weights: str | os.PathLike | None = None) -> "FIDScorer":
    """The FID Inception on ``device`` (``auto``: the GPU when there is one), made once and reused.

    ``cuda`` without a GPU raises :class:`~facegan.errors.FaceganError`.
    """
    from facegan.devices import pick_device

    return _cached_scorer(str(pick_device(device)), batch, None if weights is None else str(weights))


def _warn(texts: list[str], stacklevel: int = 3) -> None:
    for text in texts:  # stacklevel: point at the notebook line that called the API
        warnings.warn(text, FIDWarning, stacklevel=stacklevel)


def compare_sources(a: Any, b: Any, *, device: str = "auto", batch: int | None = None,
                    weights: str | os.PathLike | None = None, scorer: Any = None,
                    kid_subsets: int = 0, kid_subset_size: int = 1000, floor: Any = None,
                    floor_n: int | None = None, floor_splits: int = 10, seed: int = 0,
                    strict: bool = False, workers: int = 2,
                    expect_size: tuple[int, int] | None = (64, 64), _stacklevel: int = 3) -> "Comparison":
    """Everything ``facegan fid`` reports, as a :class:`~facegan.fid.comparison.Comparison`.

    ``scorer``: an already made :class:`~facegan.fid.features.FIDScorer` (else :func:`get_scorer`
    is called once the inputs have been found). ``floor``: real images whose floor at ``floor_n``
    samples (default: the size of ``a``) is measured. The warnings are also issued as
    :class:`FIDWarning`.
    """
    from facegan.fid.comparison import compare

    result = compare(
        a, b, scorer if scorer is not None else (lambda: get_scorer(device, batch=batch, weights=weights)),
        kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, floor_src=floor,
        floor_splits=floor_splits, floor_n=floor_n, strict=strict, seed=seed, workers=workers,
        expect_size=expect_size,
    )
    _warn(result.warnings, _stacklevel)
    return result


def compute_fid(a: Any, b: Any, *, device: str = "auto", batch: int | None = None,
                weights: str | os.PathLike | None = None, scorer: Any = None, strict: bool = False,
                workers: int = 2, expect_size: tuple[int, int] | None = (64, 64)) -> float:
    """FID between ``a`` (the samples) and ``b`` (the reference): pytorch-fid's number.

    ``device``: ``auto``, ``cpu`` or ``cuda``; ``batch``: images per forward pass; ``weights``: a
    weights file (default: found offline as for ``facegan fid``); ``strict``: an unreadable image
    is an error instead of being skipped; ``expect_size``: warn about images of another size.
    """
    return compare_sources(a, b, device=device, batch=batch, weights=weights, scorer=scorer,
                           strict=strict, workers=workers, expect_size=expect_size, _stacklevel=4).fid


def compute_kid(a: Any, b: Any, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
                device: str = "auto", batch: int | None = None, weights: str | os.PathLike | None = None,
                scorer: Any = None, strict: bool = False, workers: int = 2) -> tuple[float, float]:
    """KID ``(mean, std)`` over ``subsets`` random subsets of ``subset_size`` images per side
    (unbiased; can be slightly negative for two samples of one distribution). Both sides must be
    images: statistics files hold no features."""
    if subsets < 1:
        raise FaceganError("KID needs at least one subset")
    result = compare_sources(a, b, device=device, batch=batch, weights=weights, scorer=scorer,
                             kid_subsets=subsets, kid_subset_size=subset_size, seed=seed,
                             strict=strict, workers=workers, _stacklevel=4)
    if result.kid is None:
        raise FaceganError(f"KID {result.kid_note}")
    return result.kid["mean"], result.kid["std"]


def compute_stats(src: Any, *, device: str = "auto", batch: int | None = None,
                  weights: str | os.PathLike | None = None, scorer: Any = None, strict: bool = False,
                  workers: int = 2) -> "Stats":
    """The :class:`~facegan.fid.stats.Stats` (mu, sigma, N, provenance) of ``src``; ``.save(path)``
    writes a ``.npz`` that pytorch-fid reads. An ``.npz`` or a ``Stats`` is returned as loaded."""
    from facegan.fid.features import FEATURE_DIMS
    from facegan.fid.sources import is_stats_file, open_images, summarize_source
    from facegan.fid.stats import Stats

    if isinstance(src, Stats):
        return src
    if is_stats_file(src):
        return Stats.load(src, dims=FEATURE_DIMS)
    images = open_images(src)  # found and checked before the network is loaded
    scorer = scorer if scorer is not None else get_scorer(device, batch=batch, weights=weights)
    stats, _ = summarize_source(images, scorer, keep=0, strict=strict, workers=workers)
    if images.skipped:
        name, why = images.skipped[0]
        _warn([f"{images.path}: skipped {len(images.skipped)} file(s), e.g. {name}: {why}"])
    return stats
