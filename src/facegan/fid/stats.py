"""FID statistics files: mu, sigma, N and what made them.

A :class:`Stats` is saved as an ``.npz`` that pytorch-fid reads as is (``mu`` and ``sigma``,
float64) with extra keys pytorch-fid ignores: ``n``, the source it was made from, a hash of the
input images (``input_sha256``) and the Inception weights' checksum (``weights_sha256``), so a
stale file is recognised instead of silently reused; and, when known, the real-data floor of
the images it was made from (``floor_json``: what N real images score against the rest), so a
score against this file can be printed beside the figure real photos get. Files made by other
tools (only ``mu``, ``sigma``) load with those fields empty.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegan.errors import FaceganError
from facegan.fileio import atomic_write

#: Format marker stored in each file facegan writes.
FORMAT = 1


@dataclass
class Stats:
    """Mean and covariance of pool3 features of N images, and their provenance."""

    mu: np.ndarray
    """(d,) float64 mean of the features."""
    sigma: np.ndarray
    """(d, d) float64 covariance (N − 1 normalisation, as ``np.cov``)."""
    n: int
    """Number of images (0 when unknown: a file made by another tool)."""
    source: str = ""
    """What the statistics were computed from (a path)."""
    input_sha256: str = ""
    """Hash of the input images (see :mod:`facegan.fid.sources`), '' when unknown."""
    weights_sha256: str = ""
    """:func:`facegan.fid.inception.weights_sha256` of the network used, '' when unknown."""
    floor: dict | None = None
    """The real-data floor of these images (:meth:`facegan.fid.floor.Floor.to_dict`), if measured."""

    def __post_init__(self) -> None:
        self.mu = np.asarray(self.mu, np.float64)
        self.sigma = np.asarray(self.sigma, np.float64)
        _check_shapes(self.mu, self.sigma, "statistics")
        self.n = int(self.n)

    def floor_at(self, n: int) -> float | None:
        """The recorded floor's mean FID when it was measured at ``n`` samples, else ``None``."""
        if self.floor and self.floor.get("n_sample") == n:
            return float(self.floor["mean"])
        return None

    @property
    def dims(self) -> int:
        return int(self.mu.shape[0])

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to ``path`` (an ``.npz`` readable by ``python -m pytorch_fid``)."""
        from facegan import __version__

        # a file object: np.savez adds no '.npz' suffix
        return atomic_write(path, lambda f: np.savez(
            f,
            mu=self.mu,
            sigma=self.sigma,
            n=np.int64(self.n),
            source=np.str_(self.source),
            input_sha256=np.str_(self.input_sha256),
            weights_sha256=np.str_(self.weights_sha256),
            floor_json=np.str_(json.dumps(self.floor) if self.floor else ""),
            facegan_version=np.str_(__version__),
            facegan_format=np.int64(FORMAT),
        ))

    @classmethod
    def load(cls, path: str | os.PathLike, dims: int | None = None) -> "Stats":
        """Read a facegan or pytorch-fid ``.npz``; wrong keys, shapes or values name the file."""
        path = Path(path)
        if not path.is_file():
            raise FaceganError(f"{path}: no such statistics file")
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError) as exc:
            raise FaceganError(f"{path}: not a readable .npz statistics file ({exc})") from None
        missing = [k for k in ("mu", "sigma") if k not in data]
        if missing:
            raise FaceganError(
                f"{path}: not FID statistics: missing {', '.join(missing)} (has {sorted(data)})"
            )
        mu, sigma = data["mu"], data["sigma"]
        try:
            _check_shapes(mu, sigma, str(path))
        except FaceganError:
            raise
        if dims is not None and mu.shape[0] != dims:
            raise FaceganError(
                f"{path}: statistics of {mu.shape[0]}-d features, expected {dims}-d "
                "(pool3 of the FID Inception)"
            )

        def text(key: str) -> str:
            return str(data[key]) if key in data and data[key].ndim == 0 else ""

        n = int(data["n"]) if "n" in data and data["n"].ndim == 0 else 0
        return cls(
            mu.astype(np.float64),
            sigma.astype(np.float64),
            n,
            source=text("source"),
            input_sha256=text("input_sha256"),
            weights_sha256=text("weights_sha256"),
            floor=json.loads(text("floor_json")) if text("floor_json") else None,
        )


def _check_shapes(mu: np.ndarray, sigma: np.ndarray, what: str) -> None:
    if mu.ndim != 1 or mu.shape[0] < 1:
        raise FaceganError(f"{what}: mu must have shape (d,), got {mu.shape}")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise FaceganError(f"{what}: sigma must have shape ({d}, {d}) to match mu, got {sigma.shape}")
    if not (np.issubdtype(mu.dtype, np.floating) and np.issubdtype(sigma.dtype, np.floating)):
        raise FaceganError(f"{what}: mu and sigma must be floating point, got {mu.dtype}, {sigma.dtype}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise FaceganError(f"{what}: mu or sigma contains NaN or infinity")
