"""``facegan fid`` as a library call: FID, KID and the real-data floor of two sources.

Each image source is read once (:func:`~facegan.fid.sources.summarize_source`), keeping the
features of a bounded random subset of its images for what needs features: KID (both sides
images), the floor (the real set) and the small-N Fréchet problem (a side of ≤ 2048 images).
A floor source that is one of the two sides reuses that side's pass. Without a floor source, the
floor recorded in a statistics side (``facegan stats --floor``) is reported when it was measured
at A's sample size.

A side is a path (folder, archive, ``.npy``, ``.npz``), an in-memory uint8 ``(N, H, W, 3)``
array or tensor, or a :class:`~facegan.fid.stats.Stats`. The result's warnings say when a side
has fewer than 2,048 images (the covariance is rank-deficient: FID is still exact, but biased
upwards, so the floor is the figure to read it against) or images that are not 64×64.

With a :class:`~facegan.copycheck.CopyIndex` of the training photos, A's images are also
checked for (near-)copies of them (:class:`CopyCount`) in the same pass that scores them: the
batches on their way to the network are the images checked, none is read twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from facegan.errors import FaceganError
from facegan.fid.distance import frechet_distance, frechet_distance_from_features, kid
from facegan.fid.features import FEATURE_DIMS, FIDScorer, Summary
from facegan.fid.floor import Floor, floor_keep, real_floor
from facegan.fid.sources import ImageSet, check_count, is_stats_file, open_images, summarize_source
from facegan.fid.stats import Stats, check_covariance

if TYPE_CHECKING:  # pragma: no cover
    from facegan.copycheck import CopyIndex

#: At most this many feature rows are kept per side for KID (float32: 80 MB at 10,000).
KID_MAX_KEPT = 10_000
#: The image size the brief's FID is measured at (width, height).
BRIEF_SIZE = (64, 64)
#: Copies shown by name in :attr:`CopyCount.examples`.
COPY_EXAMPLES = 5
#: Images of A gathered before one copy search (one search costs a pass over the index).
_COPY_BLOCK = 1024


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
class CopyCount:
    """The copy check of A: how many of its images are (near-)copies of training photos."""

    train: str
    """The training photos checked against (their file)."""
    checked: int = 0
    """Images of A compared with them."""
    copies: int = 0
    """Images of A found to be copies (exact, mirrored, re-encoded, shifted a pixel or two)."""
    examples: list[str] = field(default_factory=list)
    """The first few copies: ``NAME ≈ training photo #K ...`` (an array's are ``row I``)."""
    other_size: int = 0
    """Images of A of another size than the training photos: not checked."""

    def to_dict(self) -> dict:
        return {"train_images": self.train, "checked": self.checked, "copies": self.copies,
                "examples": list(self.examples), "not_checked_other_size": self.other_size}

    def describe(self) -> str:
        """One line: the count, the training photos, the first example."""
        text = f"{self.copies} of {self.checked} images of A are (near-)copies of training photos ({self.train})"
        if self.examples:
            text += f", e.g. {self.examples[0]}"
        if self.other_size:
            text += f"; {self.other_size} of another size not checked"
        return text


class _CopyTap:
    """Sees A's batches on their way to the network and counts the copies among them."""

    def __init__(self, index: "CopyIndex", images: ImageSet):
        self.index, self.images = index, images
        self.count = CopyCount(index.source or "training images")
        self.shape = tuple(index.train.shape[1:])
        self.block: list[np.ndarray] = []
        self.names: list[str] = []
        self.seen = 0  # images of A so far (an array's row numbers)

    def __call__(self, batch: np.ndarray) -> None:
        names = self.images.batch_names or [f"row {self.seen + i}" for i in range(len(batch))]
        self.seen += len(batch)
        if tuple(batch.shape[1:]) != self.shape:
            self.count.other_size += len(batch)
            return
        self.block.append(batch)
        self.names += names
        if sum(len(b) for b in self.block) >= _COPY_BLOCK:
            self.flush()

    def flush(self) -> CopyCount:
        """Check what is gathered; the count so far."""
        from facegan.safetext import shown

        if self.block:
            found = self.index.find_copies(np.concatenate(self.block))
            for c in found[: max(0, COPY_EXAMPLES - len(self.count.examples))]:
                self.count.examples.append(
                    f"{shown(self.names[c.image])} ≈ training photo #{c.train}" + (" mirrored" if c.flipped else "")
                    + (f", shifted {c.shift}" if c.shift != (0, 0) else "") + f" (similarity {c.similarity:.3f})")
            self.count.copies += len(found)
            self.count.checked += len(self.names)
            self.block, self.names = [], []
        return self.count


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
    floor_origin: str = ""
    """Where the floor comes from: ``"measured on REAL"`` or ``"recorded in ref.npz"``."""
    copies: CopyCount | None = None
    """The copy check of A (``None``: not asked for)."""

    def to_dict(self) -> dict:
        return {
            "fid": self.fid,
            "kid": self.kid,
            "kid_note": self.kid_note,
            "n": {"a": self.a.stats.n, "b": self.b.stats.n},
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "floor": self.floor.to_dict() if self.floor else None,
            "floor_origin": self.floor_origin or None,
            "weights": self.weights,
            "warnings": self.warnings,
            "copies": self.copies.to_dict() if self.copies else None,
        }


def _same_source(p: Any, q: Any) -> bool:
    if not isinstance(p, (str, os.PathLike)) or not isinstance(q, (str, os.PathLike)):
        return p is q  # the same in-memory array
    try:
        return Path(p).resolve() == Path(q).resolve()
    except OSError:
        return False


def _is_path(src: Any) -> bool:
    return isinstance(src, (str, os.PathLike))


def _size_warning(key: str, label: str, images: ImageSet, expect: tuple[int, int]) -> str | None:
    other = {size: n for size, n in images.sizes.items() if size != tuple(expect)}
    if not other:
        return None
    shown = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sorted(other.items(), key=lambda kv: -kv[1])[:3])
    return (f"{key.upper()} ({label}): images of {shown}, not {expect[0]}x{expect[1]}: the brief's FID is on "
            f"{expect[0]}x{expect[1]} images; the network resizes every image to 299x299, so a score "
            "at another size is not comparable with the course's")


def _count_warning(small: list[tuple[str, str, int]], have_floor: bool) -> str:
    """One short line for every side with fewer images than the features have dimensions."""
    who = " and ".join(f"{key.upper()} ({label}) {n}" for key, label, n in small)
    hint = "read it against the real-data floor" if have_floor else "compare it with the real-data floor (--floor REAL)"
    return f"{who} images, fewer than {FEATURE_DIMS}: FID is exact but biased upwards at this size; {hint}"


def _check_weights(src: str, stats: Stats, scorer: FIDScorer, warnings: list[str]) -> None:
    if not stats.weights_sha256:
        warnings.append(f"{src}: no provenance (made by another tool?): cannot check its weights")
    elif stats.weights_sha256 != scorer.weights_sha256:
        warnings.append(
            f"{src}: made with other Inception weights ({stats.weights_sha256[:12]}, these are "
            f"{scorer.weights_sha256[:12]}): scores are not comparable; rebuild it with 'facegan stats'"
        )


@dataclass(frozen=True)
class CompareOptions:
    """The knobs of one comparison that every part of it reads (see :func:`compare`)."""

    kid_subsets: int = 100
    kid_subset_size: int = 1000
    floor_splits: int = 10
    strict: bool = False
    seed: int = 0
    workers: int = 2
    expect_size: tuple[int, int] | None = BRIEF_SIZE


@dataclass
class _Input:
    """One side found and checked, before any network work: its images, or its statistics."""

    label: str
    images: ImageSet | None = None
    stats: Stats | None = None


@dataclass
class _FloorPlan:
    """Where the floor's real images come from: a side's pass (``side``) or their own (``real``)."""

    src: Any
    side: str | None
    real: ImageSet | None
    n: int | None
    """The floor's sample size (None: A's image count, known after A's pass)."""


def compare(
    a: Any,
    b: Any,
    scorer: FIDScorer | Callable[[], FIDScorer],
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    floor_src: Any = None,
    floor_splits: int = 10,
    floor_n: int | None = None,
    strict: bool = False,
    seed: int = 0,
    workers: int = 2,
    expect_size: tuple[int, int] | None = BRIEF_SIZE,
    copy_index: "CopyIndex | Callable[[], CopyIndex] | None" = None,
) -> Comparison:
    """FID (and KID, floor) between sources ``a`` (the samples) and ``b`` (the reference).

    Each source is a folder, ``.zip``/``.tar(.gz)``, uint8 ``.npy``, ``.npz`` statistics, an
    in-memory uint8 (N, H, W, 3) array/tensor or a :class:`Stats`. KID needs images on both
    sides (``kid_subsets=0`` turns it off). ``floor_src``: the real images whose floor at
    ``floor_n`` samples (default: the size of ``a``) is reported; without it, a floor recorded in
    a statistics side at that sample size is. ``expect_size``: warn about images of any other
    size (``None``: don't). ``scorer`` may be a function that makes one: it is then called only
    once every input has been found and checked, so a wrong path fails at once, before the
    network is loaded. ``copy_index`` (or a function that makes one, called at the same point):
    the training photos; the result's :attr:`~Comparison.copies` counts A's images that are
    (near-)copies of them, found in the pass that scores A (A must be images, not statistics).
    """
    opts = CompareOptions(kid_subsets, kid_subset_size, floor_splits, strict, seed, workers, expect_size)
    warnings: list[str] = []
    # 1. find and check every input (cheap), before any network work
    inputs = {"a": _open_input("a", a), "b": _open_input("b", b)}
    want_kid, kid_note = _kid_plan(opts.kid_subsets, inputs)
    plan = _plan_floor(floor_src, floor_n, {"a": a, "b": b}, inputs) if floor_src is not None else None
    tap = None
    if copy_index is not None:
        copy_index, tap = _copy_tap(copy_index, inputs["a"])
    if not hasattr(scorer, "iter_features"):  # a function that makes one (or a stand-in: tests)
        scorer = scorer()

    # 2. one pass per image source
    sides = _score_sides(inputs, scorer, opts, want_kid, plan, tap, warnings)
    sa, sb = sides["a"], sides["b"]

    # 3. the numbers (the floor at the sample size being judged: floor_n, else A's count)
    value = _frechet(sa, sb)
    kid_result = _kid_of(sa, sb, opts) if want_kid else None
    if plan is not None:
        floor, floor_origin = _measured_floor(plan, plan.n, sides, scorer, opts)  # plan.n: set by A's pass
    else:
        floor, floor_origin = _recorded_floor((sb, sa), floor_n or sa.stats.n, warnings)
    warnings += _side_warnings(sa, sb, floor is not None, opts.expect_size)
    copies = tap.flush() if tap is not None else None
    if copies is not None and copies.other_size:
        warnings.append(f"A ({inputs['a'].label}): {copies.other_size} image(s) not of the training photos' size "
                        f"{copy_index.train.shape[2]}x{copy_index.train.shape[1]}: not checked for copies")
    return Comparison(
        fid=float(value),
        a=sa,
        b=sb,
        kid=kid_result,
        kid_note=kid_note,
        floor=floor,
        weights={"origin": scorer.weights.origin, "sha256": scorer.weights_sha256},
        warnings=warnings,
        floor_origin=floor_origin,
        copies=copies,
    )


def _open_input(key: str, src: Any) -> _Input:
    """Side ``key``'s source found and checked: statistics loaded, images opened and counted."""
    if isinstance(src, Stats):
        label = src.source or f"statistics {key.upper()}"
        if src.dims != FEATURE_DIMS:
            raise FaceganError(f"{label}: statistics of {src.dims}-d features, expected {FEATURE_DIMS}-d")
        check_covariance(src.sigma, label)
        return _Input(label, stats=src)
    if _is_path(src) and is_stats_file(src):
        return _Input(str(src), stats=Stats.load(src, dims=FEATURE_DIMS))
    images = open_images(src)
    check_count(images, images.count)
    return _Input(str(src) if _is_path(src) else str(images.path), images=images)


def _kid_plan(kid_subsets: int, inputs: dict[str, _Input]) -> tuple[bool, str]:
    """Whether KID is computed, and if not, why (the result's ``kid_note``)."""
    if kid_subsets > 0 and all(i.images is not None for i in inputs.values()):
        return True, ""
    return False, "off" if kid_subsets <= 0 else "needs images on both sides (statistics files hold no features)"


def _plan_floor(floor_src: Any, floor_n: int | None, sources: dict[str, Any], inputs: dict[str, _Input]) -> _FloorPlan:
    """The floor's real images (a side's pass when it is the same source) and its sample size,
    refused now when they are statistics or too few, not after every image has been scored."""
    if isinstance(floor_src, Stats) or (_is_path(floor_src) and is_stats_file(floor_src)):
        raise FaceganError(f"{floor_src if _is_path(floor_src) else 'the floor source'}: "
                           "the floor needs the real images, not statistics")
    side = next((k for k in ("b", "a") if inputs[k].images and _same_source(sources[k], floor_src)), None)
    real = None
    if side is None:
        real = open_images(floor_src)
        check_count(real, real.count)
    if floor_n is None and inputs["a"].images is None:
        floor_n = inputs["a"].stats.n
        if not floor_n:
            raise FaceganError(f"{inputs['a'].label}: sample count unknown; give the floor's sample size")
    n_sample = floor_n if floor_n is not None else inputs["a"].images.count
    n_real = (inputs[side].images if side is not None else real).count
    if n_real - n_sample < 2:
        raise FaceganError(
            f"{floor_src}: {n_real} real images: too few for a floor at {n_sample} samples (needs at least "
            f"{n_sample + 2}: {n_sample} scored like the samples, the rest as the reference)")
    return _FloorPlan(floor_src, side, real, floor_n)


def _copy_tap(copy_index: "CopyIndex | Callable[[], CopyIndex]", a: _Input) -> tuple["CopyIndex", _CopyTap]:
    """The copy index (made now if given as a function) and the tap that checks A's batches."""
    if a.images is None:
        raise FaceganError(f"{a.label}: statistics hold no images: the copy check (--train-images) "
                           "needs A's images")
    if not hasattr(copy_index, "find_copies"):
        copy_index = copy_index()
    tap = _CopyTap(copy_index, a.images)
    _check_copy_sizes(a.label, a.images, copy_index)
    return copy_index, tap


def _keep(key: str, img: ImageSet, want_kid: bool, plan: _FloorPlan | None, floor_splits: int) -> int:
    """How many feature rows side ``key``'s pass keeps: all of a small side (N×N Fréchet
    problem), KID's subset, and the floor's when the floor reuses this side."""
    keep = img.count if img.count <= FEATURE_DIMS else 0
    if want_kid:
        keep = max(keep, min(img.count, KID_MAX_KEPT))
    if plan is not None and plan.side == key:
        keep = max(keep, floor_keep(plan.n or img.count, floor_splits))
    return keep


def _score_sides(inputs: dict[str, _Input], scorer: FIDScorer, opts: CompareOptions, want_kid: bool,
                 plan: _FloorPlan | None, tap: _CopyTap | None, warnings: list[str]) -> dict[str, Side]:
    """One pass per side of images (A's batches through ``tap``); a statistics side's weights
    checked. Sets ``plan.n`` to A's count when the floor's sample size was left open."""
    sides: dict[str, Side] = {}
    for key in ("a", "b"):
        src, img = inputs[key].label, inputs[key].images
        if img is None:
            _check_weights(src, inputs[key].stats, scorer, warnings)
            sides[key] = Side(src, inputs[key].stats)
            continue
        stats, summary = summarize_source(
            img, scorer, keep=_keep(key, img, want_kid, plan, opts.floor_splits), seed=opts.seed,
            strict=opts.strict, workers=opts.workers, on_batch=tap if key == "a" else None,
        )
        sides[key] = Side(src, stats, img, summary)
        if img.skipped:
            name, why = img.skipped[0]
            warnings.append(f"{img.path}: skipped {len(img.skipped)} file(s), e.g. {name}: {why}")
        if key == "a" and plan is not None and plan.n is None:
            plan.n = stats.n  # the floor at the sample size being judged
    return sides


def _frechet(sa: Side, sb: Side) -> float:
    """FID of the two sides: from the kept features of a small side (exact where the covariance
    is rank-deficient), else from both sides' statistics."""
    if sa.stats.n and sa.stats.n <= FEATURE_DIMS and sa.all_kept:
        return frechet_distance_from_features(sa.summary.kept, sb.stats.mu, sb.stats.sigma)
    if sb.stats.n and sb.stats.n <= FEATURE_DIMS and sb.all_kept:
        return frechet_distance_from_features(sb.summary.kept, sa.stats.mu, sa.stats.sigma)
    return frechet_distance(sa.stats.mu, sa.stats.sigma, sb.stats.mu, sb.stats.sigma)


def _kid_of(sa: Side, sb: Side, opts: CompareOptions) -> dict:
    """KID of the two sides' kept features, with how it was estimated."""
    mean, std, m = kid(sa.summary.kept, sb.summary.kept,
                       subsets=opts.kid_subsets, subset_size=opts.kid_subset_size, seed=opts.seed)
    return {"mean": mean, "std": std, "subsets": opts.kid_subsets, "subset_size": m}


def _measured_floor(plan: _FloorPlan, n: int, sides: dict[str, Side], scorer: FIDScorer,
                    opts: CompareOptions) -> tuple[Floor, str]:
    """The real-data floor at ``n`` samples, from a side's pass or the real images' own."""
    if plan.side is not None:
        real_summary = sides[plan.side].summary
    else:
        _, real_summary = summarize_source(plan.real, scorer, keep=floor_keep(n, opts.floor_splits), seed=opts.seed,
                                           strict=opts.strict, workers=opts.workers)
    where = str(plan.src) if _is_path(plan.src) else (sides[plan.side].src if plan.real is None else str(plan.real.path))
    return real_floor(real_summary, n, opts.floor_splits), f"measured on {where}"


def _side_warnings(sa: Side, sb: Side, have_floor: bool, expect_size: tuple[int, int] | None) -> list[str]:
    """The small-sample line (once, for both sides) and each side's image-size warning."""
    out = []
    small = [(key, side.src, side.stats.n) for key, side in (("a", sa), ("b", sb))
             if side.stats.n and side.stats.n < FEATURE_DIMS]
    if small:  # said once for both sides, in one short line
        out.append(_count_warning(small, have_floor))
    for key, side in (("a", sa), ("b", sb)):
        if expect_size is not None and side.images is not None:
            w = _size_warning(key, side.src, side.images, expect_size)
            if w:
                out.append(w)
    return out


def _check_copy_sizes(label: str, images: ImageSet, index: "CopyIndex") -> None:
    """An array of A's whose images are not the training photos' size: refused before scoring
    (a folder's sizes are known only once decoded: those images are counted as not checked)."""
    h, w = index.train.shape[1:3]
    other = [size for size in images.sizes if size != (w, h)]
    if images.kind in ("npy", "array") and other:
        raise FaceganError(f"{label}: images of {other[0][0]}x{other[0][1]}, but the training photos "
                           f"({index.source or 'given'}) are {w}x{h}: the copy check needs images of the "
                           "same size (give the 'facegan prepare' cache of that size)")


def _recorded_floor(sides: tuple[Side, ...], n: int, warnings: list[str]) -> tuple[Floor | None, str]:
    """The floor recorded in a statistics side (the first that has one) at sample size ``n``."""
    for side in sides:
        rec = side.stats.floor if side.images is None else None
        if not rec:
            continue
        if n and rec["n_sample"] == n:
            return Floor.from_dict(rec), f"recorded in {side.src}"
        at = f"not at A's {n}: not shown (--floor REAL measures it at {n})" if n else \
            "and A's sample count is unknown: not shown"
        warnings.append(f"{side.src} records the real-data floor at {rec['n_sample']} samples, {at}")
        break
    return None, ""
