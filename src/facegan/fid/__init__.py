"""The FID engine: pytorch-fid's numbers, offline and fast.

In a notebook (clean-fid's shape; folders, archives, ``.npy``, ``.npz``, uint8 arrays)::

    from facegan.fid import compute_fid, compute_kid, compute_stats
    fid = compute_fid("samples/", "ref.npz")           # device="auto"

Two pure steps (see ``DESIGN.md``): uint8 images → pool3 features / statistics
(:class:`FIDScorer`, :class:`Stats`), then :func:`frechet_distance`. Typical use from the
training loop::

    from facegan.fid import FIDScorer, Stats, frechet_distance
    scorer = FIDScorer(device="cpu")                  # weights resolved offline, once
    ref = Stats.load("celeba-ref.npz")                # or load_source_stats(src, scorer)
    st = scorer.statistics(images_uint8_nhwc)         # (N, 64, 64, 3) uint8, numpy or torch
    fid = frechet_distance(st.mu, st.sigma, ref.mu, ref.sigma)

Modules: :mod:`.inception` (weights resolution, conversion, the network), :mod:`.features`
(batched features, streaming moments), :mod:`.distance` (Fréchet distance, KID),
:mod:`.stats` (the ``.npz`` record), :mod:`.sources` (folders, archives, arrays),
:mod:`.floor` (the real-data floor), :mod:`.comparison` (``facegan fid`` as a function),
:mod:`.api` (``compute_fid`` / ``compute_kid`` / ``compute_stats`` for notebooks).
Importing this package does not import torch; the names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FIDScorer": "facegan.fid.features",
    "Moments": "facegan.fid.features",
    "Stats": "facegan.fid.stats",
    "frechet_distance": "facegan.fid.distance",
    "frechet_distance_from_features": "facegan.fid.distance",
    "kid": "facegan.fid.distance",
    "load_source_stats": "facegan.fid.sources",
    "open_images": "facegan.fid.sources",
    "resolve_weights": "facegan.fid.inception",
    "real_floor": "facegan.fid.floor",
    "compare": "facegan.fid.comparison",
    "compute_fid": "facegan.fid.api",
    "compute_kid": "facegan.fid.api",
    "compute_stats": "facegan.fid.api",
    "compare_sources": "facegan.fid.api",
    "get_scorer": "facegan.fid.api",
    "FIDWarning": "facegan.fid.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'facegan.fid' has no attribute {name!r}")
