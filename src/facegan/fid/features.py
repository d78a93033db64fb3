"""Pool3 features of uint8 images, batched, and their streaming float64 moments.

:class:`FIDScorer` turns uint8 images ``(N, H, W, 3)`` into the 2048-d pool3 features exactly as
pytorch-fid does — 8-bit RGB → float ``/255`` in [0, 1] → bilinear resize to 299×299
(``align_corners=False``, no antialias) → ``2x − 1`` → its ``InceptionV3`` — and summarises
them in one pass with :class:`Moments` (float64 sums, bounded memory for any N).

Speed on CPU, all fp32 (see ``bench/fid_speed.py``): channels_last activations (a uint8 NHWC
batch is already channels_last once permuted, so no copy is made), BatchNorm folded into the
convolutions, ``torch.inference_mode``, flush-denormal, and no per-image Python work.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from facegan.errors import FaceganError
# The width is a fact of the network (its pool3 layer), so it is stated once, in inception.py
# (importing it loads no torch); every other fid module takes it from here or there.
from facegan.fid.inception import FEATURE_DIMS

if TYPE_CHECKING:  # pragma: no cover
    from facegan.fid.stats import Stats

INCEPTION_SIZE = 299


class Moments:
    """Streaming mean and covariance of feature rows, in float64.

    Sums are taken around a fixed shift ``c`` (the mean of the first rows): Σ(x−c) and
    Σ(x−c)(x−c)ᵀ. With c near the mean, ``S2 − n·m mᵀ`` does not cancel catastrophically,
    whatever N; memory is one d × d matrix however many rows pass through. Rows are buffered
    up to :attr:`CHUNK` before the d × d update: a rank-8 update per batch of 8 would stream the
    32 MB matrix through memory 125 times per 1,000 images (~10 ms/image); rank-256 updates
    are proper matrix products.
    """

    CHUNK = 256

    def __init__(self, dims: int = FEATURE_DIMS):
        self.dims = dims
        self.shift: np.ndarray | None = None
        self._n = 0
        self._s1 = np.zeros(dims, np.float64)
        self._s2 = np.zeros((dims, dims), np.float64)
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    def update(self, feats: np.ndarray) -> None:
        """Add rows ``feats`` (B, d)."""
        x = np.asarray(feats, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dims:
            raise ValueError(f"expected (B, {self.dims}) features, got {x.shape}")
        if x.shape[0] == 0:
            return
        if self.shift is None:
            self.shift = x.mean(axis=0)
        self._pending.append(x - self.shift)
        self._pending_rows += x.shape[0]
        if self._pending_rows >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        x = np.concatenate(self._pending)
        self._pending, self._pending_rows = [], 0
        self._n += x.shape[0]
        self._s1 += x.sum(axis=0)
        self._s2 += x.T @ x

    @property
    def n(self) -> int:
        return self._n + self._pending_rows

    def state(self) -> dict[str, np.ndarray]:
        """Arrays from which :meth:`from_state` rebuilds these moments exactly (to save a pass)."""
        self._flush()
        shift = self.shift if self.shift is not None else np.zeros(self.dims)
        return {"n": np.array(self._n), "shift": shift, "s1": self._s1, "s2": self._s2,
                "has_shift": np.array(self.shift is not None)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "Moments":
        out = cls(int(np.asarray(state["s1"]).shape[0]))
        out._n = int(state["n"])
        out._s1 = np.array(state["s1"], np.float64)
        out._s2 = np.array(state["s2"], np.float64)
        out.shift = np.array(state["shift"], np.float64) if bool(state["has_shift"]) else None
        return out

    def subtract(self, feats: np.ndarray) -> "Moments":
        """A copy of these moments without the rows ``feats`` (which must have been added)."""
        self._flush()
        x = np.asarray(feats, np.float64) - self.shift
        out = Moments(self.dims)
        out.shift = self.shift
        out._n = self._n - x.shape[0]
        out._s1 = self._s1 - x.sum(axis=0)
        out._s2 = self._s2 - x.T @ x
        return out

    def mean(self) -> np.ndarray:
        self._flush()
        return self.shift + self._s1 / self._n

    def cov(self) -> np.ndarray:
        """Unbiased covariance (N − 1), as ``np.cov`` and pytorch-fid."""
        self._flush()
        if self._n < 2:
            raise FaceganError(f"need at least 2 images for a covariance, got {self._n}")
        d = self._s1 / self._n
        c = (self._s2 - self._n * np.outer(d, d)) / (self._n - 1)
        return (c + c.T) * 0.5


def _batches(images: Any) -> Iterator[Any]:
    """One uint8 (N, H, W, 3) array/tensor, or an iterable of such batches → batches."""
    if hasattr(images, "shape") and hasattr(images, "dtype"):
        yield images
        return
    try:
        iterator = iter(images)
    except TypeError:
        raise TypeError(
            f"expected a uint8 (N, H, W, 3) array or tensor, or an iterable of them; got {type(images)}"
        ) from None
    yield from iterator


def _check_batch(batch: Any) -> None:
    shape, dtype = tuple(batch.shape), str(batch.dtype)
    if len(shape) != 4 or shape[-1] != 3 or "uint8" not in dtype:
        raise FaceganError(
            f"images must be uint8 of shape (N, H, W, 3) (RGB, 0..255); got {dtype} {shape}. "
            "Convert generator output once with ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)"
        )


class FIDScorer:
    """pool3 features, statistics and FID inputs of uint8 images with the FID Inception.

    Args:
        device: where the network runs: "cpu", "cuda", "cuda:N", "auto" or a torch.device
            (:func:`facegan.devices.pick_device`: "cuda" without a GPU is a FaceganError).
        weights: explicit weights file, or ``None`` for the resolution order of
            :func:`facegan.fid.inception.resolve_weights`, or an already resolved
            :class:`~facegan.fid.inception.Weights`.
        batch_size: images per forward pass; ``None``: 8 on CPU (larger batches only add page
            faults: their 100+ MB activations are fresh mmaps each time), 100 on GPUs.
        fuse: fold BatchNorm into the convolutions (same numbers to ~1e-6 relative, faster).
        progress: show a tqdm bar on long work.
    """

    def __init__(
        self,
        device: Any = "cpu",
        weights: Any = None,
        batch_size: int | None = None,
        *,
        fuse: bool = True,
        progress: bool = False,
        download: bool = True,
    ):
        from facegan.fid.inception import Weights, build_inception, resolve_weights

        from facegan.devices import pick_device

        self.device = pick_device(str(device))  # "auto", "cpu", "cuda[:N]" or a torch.device
        if batch_size is None:
            batch_size = 8 if self.device.type == "cpu" else 100
        if batch_size < 1:
            raise FaceganError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.progress = progress
        self.weights = weights if isinstance(weights, Weights) else resolve_weights(weights, download=download)
        self.model = build_inception(self.weights.state_dict, fuse=fuse, device=str(self.device))

    @property
    def weights_sha256(self) -> str:
        return self.weights.sha256

    def _forward(self, batch) -> np.ndarray:
        """uint8 (B, H, W, 3) → float32 (B, 2048) pool3 features (numpy)."""
        import torch
        import torch.nn.functional as F

        from facegan.fid.inception import pool3

        x = torch.as_tensor(batch) if not isinstance(batch, torch.Tensor) else batch
        # NHWC uint8 viewed as NCHW is exactly channels_last: one conversion pass, no reorder.
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        x = x.to(torch.float32).div_(255)  # ToTensor(): /255 in fp32, as pytorch-fid
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        x = x.mul_(2).sub_(1).contiguous(memory_format=torch.channels_last)
        return pool3(self.model, x).float().cpu().numpy()

    def iter_features(self, images: Any, total: int | None = None) -> Iterator[np.ndarray]:
        """Yield float32 (B, 2048) feature blocks for ``images`` (see :meth:`statistics`)."""
        from tqdm import tqdm

        bar = tqdm(total=total, unit="img", desc="inception", disable=None if self.progress else True, leave=False)  # None: off when not a terminal
        try:
            for batch in _batches(images):
                for feats in self._chunk_features(batch):
                    yield feats
                    bar.update(len(feats))
        finally:
            bar.close()

    def _run(self, chunk) -> np.ndarray:
        """:meth:`_forward` under inference mode (and fp32 cuDNN), entered per batch so that no
        mode leaks to the caller's code between the generator's yields."""
        import torch

        cuda = self.device.type == "cuda"
        # fp32, not TF32 (cuDNN's default on Ampere+ rounds conv inputs to 10-bit mantissas)
        fp32 = torch.backends.cudnn.flags(enabled=True, allow_tf32=False) if cuda else contextlib.nullcontext()
        with torch.inference_mode(), fp32:
            return self._forward(chunk)

    def _chunk_features(self, batch: Any) -> Iterator[np.ndarray]:
        """Features of one uint8 batch, ``batch_size`` images per forward pass."""
        _check_batch(batch)
        for i in range(0, int(batch.shape[0]), self.batch_size):
            yield self._run(batch[i : i + self.batch_size])

    def batch_features(self, batch: Any) -> np.ndarray:
        """float32 (B, 2048) features of one uint8 (B, H, W, 3) batch (no progress bar)."""
        return np.concatenate(list(self._chunk_features(batch)))

    def features(self, images: Any) -> np.ndarray:
        """All pool3 features (N, 2048) float64 — memory grows with N: prefer :meth:`statistics`."""
        blocks = list(self.iter_features(images))
        if not blocks:
            return np.zeros((0, FEATURE_DIMS), np.float64)
        return np.concatenate(blocks).astype(np.float64)

    def statistics(self, images: Any, *, total: int | None = None, **provenance: Any) -> "Stats":
        """mu, sigma (float64) and N of uint8 images (N, H, W, 3), numpy or torch, or an
        iterable of such batches; memory stays bounded for any N.

        Keyword arguments (``source``, ``input_sha256``) are stored in the :class:`Stats`.
        """
        from facegan.fid.stats import Stats

        acc = Moments()
        for f in self.iter_features(images, total=total):
            acc.update(f)
        if acc.n < 2:
            raise FaceganError(f"need at least 2 images for FID statistics, got {acc.n}")
        return Stats(acc.mean(), acc.cov(), acc.n, weights_sha256=self.weights_sha256, **provenance)


@dataclass
class Summary:
    """One pass over a source: its moments, plus the features of a seeded random subset of rows.

    ``kept`` holds the features (float32) of rows ``kept_index`` (positions in the source),
    in the order of a seeded permutation: any prefix is a uniform random subset, and
    consecutive chunks are disjoint random subsets (used by KID and the real-data floor).
    """

    moments: Moments
    kept: np.ndarray
    kept_index: np.ndarray = field(repr=False)


def summarize(
    feature_blocks: Iterable[np.ndarray],
    n_total: int,
    keep: int,
    seed: int = 0,
    dims: int = FEATURE_DIMS,
) -> Summary:
    """Moments of all rows and the features of ``min(keep, n_total)`` randomly chosen rows."""
    keep = max(0, min(keep, n_total))
    order = np.random.default_rng(seed).permutation(n_total)[:keep]
    slot = np.full(n_total, -1, np.int64)
    slot[order] = np.arange(keep)  # where row i goes in ``kept`` (-1: not kept)
    kept = np.zeros((keep, dims), np.float32)
    acc = Moments(dims)
    start = 0
    for block in feature_blocks:
        acc.update(block)
        end = start + block.shape[0]
        if end > n_total:
            raise FaceganError(f"source yielded more than the {n_total} images it listed")
        s = slot[start:end]
        sel = s >= 0
        kept[s[sel]] = block[sel]
        start = end
    if start < n_total:  # images skipped while reading: drop their empty slots
        valid = order < start
        return Summary(acc, kept[valid], order[valid])
    return Summary(acc, kept, order)
