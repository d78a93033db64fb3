"""Statistics of a large image set that survive an interruption: ``facegan stats`` on a CPU.

The FID statistics of all 202,599 CelebA photos take hours on a 2-core CPU (~22 images/s). So
the pass saves its state beside the output every couple of minutes — the running moments, how
many entries of the (sorted) source are done, the input hash of those entries, the images
skipped so far — in ``<out>.partial.npz``. Rerunning the same command checks that the saved
state belongs to the same source prefix and the same Inception weights, and continues from
there; the final statistics equal those of one uninterrupted pass (the sums are the same sums
in the same order) and the partial file is removed. A Ctrl-C loses at most the time since the
last save.

For ``facegan stats --floor`` the pass also keeps the features of a seeded random subset of the
images (:func:`resumable_summary`, the same subset as :func:`~facegan.fid.features.summarize`
would keep), saved with the moments, from which the real-data floor is computed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facegan.fileio import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from facegan.fid.features import FIDScorer, Summary
    from facegan.fid.sources import ImageSet
    from facegan.fid.stats import Stats

#: The partial file's format marker.
FORMAT = 1


def partial_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial.npz")


def _save(path: Path, moments_state: dict, meta: dict) -> None:
    atomic_write(path, lambda f: np.savez(f, meta_json=np.array(json.dumps(meta)), **moments_state))


#: What a partial file's meta must hold, and the type of each value.
_META_TYPES = {"position": int, "prefix_sha256": str, "skipped": list}


def _load(path: Path, keep: int) -> tuple[dict, dict] | None:
    """The moments' state and the meta of a partial file, or ``None`` when it is damaged.

    The file is facegan's own, but read back as untrusted: every array's header is checked
    against the shape it must have before it is read (:func:`facegan.safeload.npz_arrays`), and
    the meta must be an object with the right types; anything else means "start over".
    """
    from facegan.errors import FaceganError
    from facegan.fid.features import FEATURE_DIMS
    from facegan.safeload import npz_arrays

    d = FEATURE_DIMS
    want = {"meta_json": (), "n": (), "has_shift": (), "shift": (d,), "s1": (d,), "s2": (d, d)}
    if keep:
        want["kept"] = (keep, d)
    try:
        data = npz_arrays(path, {k: (lambda shape, k=k, v=v: None if shape == v else f"{k} has shape {shape}")
                                 for k, v in want.items()},
                          max_bytes={k: 64 << 20 if not v else 8 * int(np.prod(v)) for k, v in want.items()})
        meta = json.loads(str(data.pop("meta_json")))
    except (FaceganError, ValueError, TypeError):
        return None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), t) for k, t in _META_TYPES.items()):
        return None
    if not all(isinstance(x, list) and len(x) == 2 and all(isinstance(v, str) for v in x) for x in meta["skipped"]):
        return None
    return data, meta


def resumable_statistics(images: "ImageSet", scorer: "FIDScorer", out: str | os.PathLike, *,
                         strict: bool = False, workers: int = 2, save_every_s: float = 120.0,
                         progress: bool = True) -> "Stats":
    """The :class:`~facegan.fid.stats.Stats` of ``images``, resuming from ``<out>.partial.npz``.

    The partial state is used only if it was made with the same weights and options from a
    source whose first entries hash the same; otherwise the pass starts over (and says so on
    stderr). The caller removes the partial file once the statistics are saved.
    """
    stats, _ = resumable_summary(images, scorer, out, strict=strict, workers=workers,
                                 save_every_s=save_every_s, progress=progress)
    return stats


def resumable_summary(images: "ImageSet", scorer: "FIDScorer", out: str | os.PathLike, *,
                      keep: int = 0, seed: int = 0, strict: bool = False, workers: int = 2,
                      save_every_s: float = 120.0, progress: bool = True) -> tuple["Stats", "Summary"]:
    """:func:`resumable_statistics` that also keeps the features of ``keep`` random images
    (seeded; for the real-data floor), saved and resumed with the moments."""
    from tqdm import tqdm

    from facegan.errors import FaceganError
    from facegan.fid.features import FEATURE_DIMS, Moments, Summary
    from facegan.fid.stats import Stats

    partial = partial_path(out)
    partial.parent.mkdir(parents=True, exist_ok=True)
    start, moments, hasher = 0, Moments(), hashlib.sha256()
    keep = max(0, min(keep, images.count))
    order = np.random.default_rng(seed).permutation(images.count)[:keep]
    slot = np.full(images.count, -1, np.int64)
    slot[order] = np.arange(keep)  # where image row i goes in ``kept`` (-1: not kept)
    kept = np.zeros((keep, FEATURE_DIMS), np.float32)
    base = {"format": FORMAT, "weights_sha256": scorer.weights_sha256, "kind": images.kind,
            "count": images.count, "strict": strict, "keep": keep, "seed": seed}
    loaded = _load(partial, keep) if partial.is_file() else None
    if loaded is None and partial.is_file():
        print(f"facegan: warning: {partial}: damaged (not as facegan writes it): starting over", file=sys.stderr)
    if loaded is not None:
        state, meta = loaded
        prefix = images.hash_prefix(int(meta["position"])) if all(meta.get(k) == v for k, v in base.items()) else None
        if prefix is not None and images.prefix_digest(prefix) == meta.get("prefix_sha256"):
            start, hasher = int(meta["position"]), prefix
            if keep:
                kept = np.array(state.pop("kept"), np.float32)
            moments = Moments.from_state(state)
            images.skipped = [tuple(x) for x in meta["skipped"]]
            print(f"facegan: resuming {partial.name}: {start} of {images.count} entries already done",
                  file=sys.stderr)
        else:
            print(f"facegan: {partial}: from other images, weights or options: starting over", file=sys.stderr)

    last_save = time.monotonic()
    bar = tqdm(total=images.count, initial=start, unit="img", desc="inception",
               disable=None if progress else True, dynamic_ncols=True)
    try:
        for batch in images.batches(scorer.batch_size, strict=strict, workers=workers, start=start, hasher=hasher):
            feats = scorer.batch_features(batch)
            if keep:
                s = slot[moments.n : moments.n + len(feats)]
                kept[s[s >= 0]] = feats[s >= 0]
            moments.update(feats)
            bar.update(images.position - bar.n)
            if time.monotonic() - last_save >= save_every_s and images.position < images.count:
                meta = {**base, "position": images.position, "prefix_sha256": images.prefix_digest(hasher),
                        "skipped": [list(x) for x in images.skipped]}
                _save(partial, {**moments.state(), **({"kept": kept} if keep else {})}, meta)
                last_save = time.monotonic()
    finally:
        bar.close()
    if moments.n < 2:
        raise FaceganError(f"{images.path}: FID needs at least 2 images, found {moments.n}")
    stats = Stats(moments.mean(), moments.cov(), moments.n, source=str(images.path),
                  input_sha256=images.sha256, weights_sha256=scorer.weights_sha256)
    valid = order < moments.n  # images skipped while reading: their slots stay empty
    return stats, Summary(moments, kept[valid], order[valid])
