"""``facegan fid`` as a library call: FID, KID and the real-data floor of two sources.

Each image source is read once (:func:`~facegan.fid.sources.summarize_source`), keeping the
features of a bounded random subset of its images for what needs features: KID (both sides
images), the floor (the real set) and the small-N Fréchet problem (a side of ≤ 2048 images).
A floor source that is one of the two sides reuses that side's pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from facegan.errors import FaceganError
from facegan.fid.distance import frechet_distance, frechet_distance_from_features, kid
from facegan.fid.features import FEATURE_DIMS, FIDScorer, Summary
from facegan.fid.floor import Floor, floor_keep, real_floor
from facegan.fid.sources import ImageSet, check_count, is_stats_file, open_images, summarize_source
from facegan.fid.stats import Stats

#: At most this many feature rows are kept per side for KID (float32: 80 MB at 10,000).
KID_MAX_KEPT = 10_000


@dataclass
class Side:
    """One input of a comparison after its pass."""

    src: str
    stats: Stats
    images: ImageSet | None = None
    summary: Summary | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def all_kept(self) -> bool:
        return self.summary is not None and self.summary.kept.shape[0] == self.stats.n

    def to_dict(self) -> dict:
        d = {
            "path": self.src,
            "kind": self.images.kind if self.images else "stats",
            "n": self.stats.n,
            "input_sha256": self.stats.input_sha256,
            "weights_sha256": self.stats.weights_sha256,
        }
        if self.images is not None:
            d["skipped"] = len(self.images.skipped)
            d["skipped_examples"] = [f"{n}: {r}" for n, r in self.images.skipped[:5]]
        return d


@dataclass
class Comparison:
    fid: float
    a: Side
    b: Side
    kid: dict | None
    kid_note: str
    floor: Floor | None
    weights: dict
    warnings: list[str]

    def to_dict(self) -> dict:
        return {
            "fid": self.fid,
            "kid": self.kid,
            "kid_note": self.kid_note,
            "n": {"a": self.a.stats.n, "b": self.b.stats.n},
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "floor": self.floor.to_dict() if self.floor else None,
            "weights": self.weights,
            "warnings": self.warnings,
        }


def _same_path(p: str | os.PathLike, q: str | os.PathLike) -> bool:
    try:
        return Path(p).resolve() == Path(q).resolve()
    except OSError:
        return False


def _check_weights(src: str, stats: Stats, scorer: FIDScorer, warnings: list[str]) -> None:
    if not stats.weights_sha256:
        warnings.append(f"{src}: no provenance (made by another tool?): cannot check its weights")
    elif stats.weights_sha256 != scorer.weights_sha256:
        warnings.append(
            f"{src}: made with other Inception weights ({stats.weights_sha256[:12]}, these are "
            f"{scorer.weights_sha256[:12]}): scores are not comparable; rebuild it with 'facegan stats'"
        )


def compare(
    a: str | os.PathLike,
    b: str | os.PathLike,
    scorer: FIDScorer | Callable[[], FIDScorer],
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    floor_src: str | os.PathLike | None = None,
    floor_splits: int = 10,
    floor_n: int | None = None,
    strict: bool = False,
    seed: int = 0,
    workers: int = 2,
) -> Comparison:
    """FID (and KID, floor) between sources ``a`` (the samples) and ``b`` (the reference).

    Each source is a folder, ``.zip``/``.tar(.gz)``, uint8 ``.npy`` or ``.npz`` statistics.
    KID needs images on both sides (``kid_subsets=0`` turns it off). ``floor_src``: the real
    images whose floor at ``floor_n`` samples (default: the size of ``a``) is reported.
    ``scorer`` may be a function that makes one: it is then called only once every input has
    been found and checked, so a wrong path fails at once, before the network is loaded.
    """
    a, b = str(a), str(b)
    warnings: list[str] = []
    # 1. find and check every input (cheap), before any network work
    images: dict[str, ImageSet | None] = {}
    loaded: dict[str, Stats] = {}
    for key, src in (("a", a), ("b", b)):
        if is_stats_file(src):
            images[key] = None
            loaded[key] = Stats.load(src, dims=FEATURE_DIMS)
        else:
            images[key] = open_images(src)
            check_count(images[key], images[key].count)
    want_kid = kid_subsets > 0 and all(v is not None for v in images.values())
    kid_note = "" if want_kid else (
        "off" if kid_subsets <= 0 else "needs images on both sides (statistics files hold no features)"
    )
    floor_side, real = None, None  # the floor reuses a side's pass when it is the same path
    if floor_src is not None:
        if is_stats_file(floor_src):
            raise FaceganError(f"{floor_src}: the floor needs the real images, not statistics")
        floor_side = next(
            (k for k, p in (("b", b), ("a", a)) if images[k] and _same_path(p, floor_src)), None
        )
        if floor_side is None:
            real = open_images(floor_src)
            check_count(real, real.count)
        if floor_n is None and images["a"] is None:
            floor_n = loaded["a"].n
            if not floor_n:
                raise FaceganError(f"{a}: sample count unknown; give the floor's sample size")
    if not isinstance(scorer, FIDScorer):
        scorer = scorer()

    # 2. one pass per image source
    def keep_for(key: str, img: ImageSet) -> int:
        keep = img.count if img.count <= FEATURE_DIMS else 0  # small side: N×N Fréchet problem
        if want_kid:
            keep = max(keep, min(img.count, KID_MAX_KEPT))
        if floor_side == key:
            keep = max(keep, floor_keep(floor_n or img.count, floor_splits))
        return keep

    sides: dict[str, Side] = {}
    for key, src in (("a", a), ("b", b)):
        img = images[key]
        if img is None:
            _check_weights(src, loaded[key], scorer, warnings)
            sides[key] = Side(src, loaded[key])
            continue
        stats, summary = summarize_source(
            img, scorer, keep=keep_for(key, img), seed=seed, strict=strict, workers=workers
        )
        sides[key] = Side(src, stats, img, summary)
        if img.skipped:
            name, why = img.skipped[0]
            warnings.append(f"{img.path}: skipped {len(img.skipped)} file(s), e.g. {name}: {why}")
        if key == "a" and floor_n is None:
            floor_n = stats.n  # the floor at the sample size being judged
    sa, sb = sides["a"], sides["b"]

    # 3. the numbers
    if sa.stats.n and sa.stats.n <= FEATURE_DIMS and sa.all_kept:
        value = frechet_distance_from_features(sa.summary.kept, sb.stats.mu, sb.stats.sigma)
    elif sb.stats.n and sb.stats.n <= FEATURE_DIMS and sb.all_kept:
        value = frechet_distance_from_features(sb.summary.kept, sa.stats.mu, sa.stats.sigma)
    else:
        value = frechet_distance(sa.stats.mu, sa.stats.sigma, sb.stats.mu, sb.stats.sigma)

    kid_result = None
    if want_kid:
        mean, std, m = kid(
            sa.summary.kept, sb.summary.kept,
            subsets=kid_subsets, subset_size=kid_subset_size, seed=seed,
        )
        kid_result = {"mean": mean, "std": std, "subsets": kid_subsets, "subset_size": m}

    floor = None
    if floor_src is not None:
        if floor_side is not None:
            real_summary = sides[floor_side].summary
        else:
            keep = floor_keep(floor_n, floor_splits)
            _, real_summary = summarize_source(
                real, scorer, keep=keep, seed=seed, strict=strict, workers=workers
            )
        floor = real_floor(real_summary, floor_n, floor_splits)

    return Comparison(
        fid=float(value),
        a=sa,
        b=sb,
        kid=kid_result,
        kid_note=kid_note,
        floor=floor,
        weights={"origin": scorer.weights.origin, "sha256": scorer.weights_sha256},
        warnings=warnings,
    )
