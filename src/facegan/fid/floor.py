"""The real-data floor: the FID that real photos themselves get at a given sample size.

FID at small N is biased upward (≈ ∝ 1/N1 + 1/N2), so a score means little without the figure
real photos reach under the same conditions. The floor of a real set of N images at sample size
n is defined here as: split a seeded random permutation of the set into K disjoint chunks of n
images (K = ``splits``, fewer if N is too small); score each chunk against the statistics of the
*other* N − n images; report the mean, standard deviation (ddof 1) and range over the chunks.

It costs one feature pass over the real set: the statistics of "all but chunk k" are the total
moments minus chunk k's (:meth:`~facegan.fid.features.Moments.subtract`), and each chunk is
scored from its own features with the small n × n eigenproblem.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from facegan.errors import FaceganError
from facegan.fid.distance import frechet_distance_from_features
from facegan.fid.features import Summary


@dataclass
class Floor:
    """FID of n real images vs the other N − n of the same set, over disjoint chunks."""

    mean: float
    std: float
    low: float
    high: float
    values: list[float]
    n_sample: int
    """Images per chunk (the sample size being judged)."""
    n_rest: int
    """Images in the statistics each chunk is scored against (N − n)."""
    splits: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Floor":
        """A floor from :meth:`to_dict` output (as recorded in a statistics file); fields other
        than ``mean`` and ``n_sample`` may be missing from files written by hand."""
        mean = float(d["mean"])
        values = [float(v) for v in d.get("values", [mean])]
        return cls(mean=mean, std=float(d.get("std", 0.0)), low=float(d.get("low", mean)),
                   high=float(d.get("high", mean)), values=values, n_sample=int(d["n_sample"]),
                   n_rest=int(d.get("n_rest", 0)), splits=int(d.get("splits", len(values))))

    def describe(self) -> str:
        spread = f" ± {self.std:.2f} ({self.low:.2f} … {self.high:.2f})" if self.splits > 1 else ""
        rest = f"the other {self.n_rest}" if self.n_rest else "the rest of the real set"
        return (
            f"{self.mean:.2f}{spread}: {self.n_sample} real vs {rest}, "
            f"{self.splits} disjoint split{'s' if self.splits > 1 else ''}"
        )


def floor_keep(n_sample: int, splits: int) -> int:
    """How many random rows :func:`real_floor` needs kept from the real set's pass."""
    return n_sample * splits


def real_floor(summary: Summary, n_sample: int, splits: int = 10) -> Floor:
    """The floor from one pass over the real set (``summary`` kept ≥ n_sample·splits rows)."""
    total = summary.moments
    if n_sample < 2:
        raise FaceganError(f"the floor needs a sample size of at least 2, got {n_sample}")
    if total.n - n_sample < 2:
        raise FaceganError(
            f"the real set has {total.n} images: too few for a floor at {n_sample} samples "
            f"(needs at least {n_sample + 2})"
        )
    k = min(splits, summary.kept.shape[0] // n_sample)
    if k < 1:
        raise FaceganError(f"the floor kept {summary.kept.shape[0]} features, needs {n_sample}")
    values = []
    for i in range(k):
        chunk = summary.kept[i * n_sample : (i + 1) * n_sample]
        rest = total.subtract(chunk)
        values.append(frechet_distance_from_features(chunk, rest.mean(), rest.cov()))
    v = np.asarray(values)
    return Floor(
        mean=float(v.mean()),
        std=float(v.std(ddof=1)) if k > 1 else 0.0,
        low=float(v.min()),
        high=float(v.max()),
        values=[float(x) for x in v],
        n_sample=n_sample,
        n_rest=total.n - n_sample,
        splits=k,
    )
