"""FID statistics files: mu, sigma, N and what made them.

A :class:`Stats` is saved as an ``.npz`` that pytorch-fid reads as is (``mu`` and ``sigma``,
float64) with extra keys pytorch-fid ignores: ``n``, the source it was made from, a hash of the
input images (``input_sha256``) and the Inception weights' checksum (``weights_sha256``), so a
stale file is recognised instead of silently reused; and, when known, the real-data floor of
the images it was made from (``floor_json``: what N real images score against the rest), so a
score against this file can be printed beside the figure real photos get. Files made by other
tools (only ``mu``, ``sigma``) load with those fields empty.

:meth:`Stats.load` trusts nothing in the file: wrong keys, shapes, dtypes, NaNs, a malformed
``n`` or ``floor_json``, and a ``sigma`` that is not a covariance (asymmetric, or with negative
eigenvalues beyond rounding — it would give FID 0 silently) are each refused naming the file.
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

    def size_text(self, role: str = "reference") -> str:
        """``"10000 images"``, or ``"<role> of unknown size"`` for a file without a count."""
        return f"{self.n} images" if self.n else f"{role} of unknown size"

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
        if not path.exists():
            raise FaceganError(f"{path}: no such statistics file")
        if not path.is_file():
            raise FaceganError(f"{path}: not a regular file (a folder, FIFO or device?): expected .npz statistics")
        data = _read_npz(path, dims)
        mu, sigma = data["mu"], data["sigma"]
        _check_shapes(mu, sigma, str(path))
        if dims is not None and mu.shape[0] != dims:
            raise FaceganError(
                f"{path}: statistics of {mu.shape[0]}-d features, expected {dims}-d "
                "(pool3 of the FID Inception)"
            )
        check_covariance(sigma, str(path))

        def text(key: str) -> str:
            return str(data[key]) if key in data and data[key].ndim == 0 else ""

        return cls(
            mu.astype(np.float64),
            sigma.astype(np.float64),
            _read_n(data.get("n"), path),
            source=text("source"),
            input_sha256=text("input_sha256"),
            weights_sha256=text("weights_sha256"),
            floor=_read_floor(text("floor_json"), path) if "floor_json" in data else None,
        )


#: The widest features statistics may hold (pool3 of the FID Inception: 2048).
MAX_DIMS = 4096
_TEXT_KEYS = ("source", "input_sha256", "weights_sha256", "floor_json")


def _read_npz(path: Path, dims: int | None) -> dict[str, np.ndarray]:
    """``mu``, ``sigma`` and the small keys of a statistics file, each header checked before its
    data is read (a ``sigma`` declaring 100,000 x 100,000 is refused, not allocated), every
    other key never read (see :func:`facegan.safeload.npz_arrays`)."""
    from facegan.safeload import npz_arrays

    head = _magic(path)
    if head.startswith(b"\x93NUMPY"):
        raise FaceganError(f"{path}: not a readable .npz statistics file: it is a .npy array (the image "
                           "cache?); give the .npz written by 'facegan stats'")
    if not head.startswith(b"PK"):
        raise FaceganError(f"{path}: not a readable .npz statistics file (not a zip); give the .npz "
                           "written by 'facegan stats'")
    def vector(shape):
        if len(shape) != 1 or shape[0] < 1:
            return f"mu must have shape (d,), got {shape}"
        return None if shape[0] <= MAX_DIMS else f"mu has {shape[0]:,} dimensions (at most {MAX_DIMS:,})"

    def scalar(key):
        what = "(the image count) must be a whole number of 0 or more" if key == "n" else "must be a single value"
        return lambda shape: None if shape == () else f"{key!r} {what}, got shape {shape}"

    small = npz_arrays(path, {"mu": vector, **{k: scalar(k) for k in ("n", *_TEXT_KEYS)}},
                       optional=("n", *_TEXT_KEYS), max_bytes={"mu": MAX_DIMS * 16})
    d = small["mu"].shape[0]

    def square(shape):
        return None if shape == (d, d) else f"sigma must have shape ({d}, {d}) to match mu, got {shape}"

    small.update(npz_arrays(path, {"sigma": square}, max_bytes={"sigma": d * d * 16}))
    return small


def _magic(path: Path) -> bytes:
    """The first bytes of ``path`` (what kind of file it is)."""
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError as exc:
        raise FaceganError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _read_n(value: np.ndarray | None, path: Path) -> int:
    """The image count ``n`` of a file: absent is 0 (unknown); anything but a whole number ≥ 0 is an error."""
    if value is None:
        return 0
    ok = value.ndim == 0 and (np.issubdtype(value.dtype, np.integer) or
                              (np.issubdtype(value.dtype, np.floating) and float(value).is_integer()))
    if not ok or int(value) < 0:
        raise FaceganError(f"{path}: 'n' (the image count) must be a whole number of 0 or more, "
                           f"got {value.dtype} {value.tolist()!r:.60}")
    return int(value)


_FLOOR_NUMBERS = ("mean", "std", "low", "high")


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _read_floor(text: str, path: Path) -> dict | None:
    """The recorded real-data floor (``floor_json``), checked: a dict with numbers where it matters."""
    if not text:
        return None
    try:
        floor = json.loads(text)
    except ValueError as exc:
        raise FaceganError(f"{path}: 'floor_json' is not valid JSON ({exc})") from None
    problem = None
    if not isinstance(floor, dict):
        problem = f"expected an object, got {type(floor).__name__}"
    elif "mean" not in floor or not all(_is_number(floor[k]) for k in _FLOOR_NUMBERS if k in floor):
        problem = f"needs finite numbers for {', '.join(_FLOOR_NUMBERS)} (the mean at least)"
    elif not (isinstance(floor.get("n_sample"), int) and not isinstance(floor["n_sample"], bool)
              and floor["n_sample"] >= 2):
        problem = "needs 'n_sample', the sample size it was measured at (a whole number of 2 or more)"
    if problem:
        raise FaceganError(f"{path}: 'floor_json' is not a real-data floor: {problem}")
    return floor


def check_covariance(sigma: np.ndarray, what: str) -> None:
    """Refuse a ``sigma`` that no set of features could have: asymmetric, or with negative
    eigenvalues beyond rounding (``< -sqrt(eps)·λmax`` in the file's precision).

    Such a matrix makes tr (Σ1 Σ2)^½ meaningless, and the FID came out as a clean 0.000000.
    One symmetric eigenvalue problem: ~0.3 s at 2048-d on two cores.
    """
    sigma = np.asarray(sigma)
    eps = np.finfo(sigma.dtype if np.issubdtype(sigma.dtype, np.floating) else np.float64).eps
    s = sigma.astype(np.float64)
    scale = float(np.abs(s).max()) if s.size else 0.0
    tol = np.sqrt(eps) * scale
    if float(np.abs(s - s.T).max(initial=0.0)) > tol:
        raise FaceganError(f"{what}: sigma is not symmetric, so it is not a covariance matrix "
                           "(damaged file?): rebuild it with 'facegan stats'")
    lam = np.linalg.eigvalsh((s + s.T) * 0.5)
    if lam.size and lam[0] < -np.sqrt(eps) * max(float(lam[-1]), scale):
        raise FaceganError(
            f"{what}: sigma is not a covariance matrix: it has negative eigenvalues beyond rounding "
            f"(smallest {lam[0]:.3g}, largest {lam[-1]:.3g}; {int((lam < -tol).sum())} below -{tol:.2g}), "
            "which would make the FID meaningless; rebuild it with 'facegan stats'"
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
