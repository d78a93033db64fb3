"""The copy check: which of a submission's images are (near-)copies of training photos.

A submission of real photos beats the FID bar: 1,000 CelebA photos score ~14 against CelebA's
own statistics. :class:`CopyIndex` finds, for each submitted image, the training photo it most
resembles, and calls it a copy when the two are the same picture up to a mirror image, a shift of
up to :data:`MAX_SHIFT` pixels and re-encoding noise (JPEG quality 75 and the like). Two stages,
both a few matrix products (``bench/copycheck_quality.py`` measures recall and false alarms):

1. **Candidates.** Each image becomes an 8x8 colour thumbnail (the mean of each 8x8 block), mean
   removed, scaled to unit length: 192 numbers, little moved by a shift or JPEG noise. The
   index stores its left-right symmetric and antisymmetric halves: with ``s`` and ``a`` the
   two dot products, ``s + a`` scores a photo and ``s - a`` its mirror image, so one pass scores
   both orientations. The :data:`CANDIDATES` best photos per image go on.
2. **Verification.** Normalised cross-correlation of the 64x64 grey images — the query's
   central window against the candidate's, shifted by up to :data:`MAX_SHIFT` pixels each way,
   in the orientation stage 1 found (computed for all shifts at once through FFTs). A copy
   scores ~0.99-1.0; a different photo of another aligned face rarely beyond 0.95. At or above
   :data:`THRESHOLD` is a copy.

What it cannot catch: photos not in the training set given (another face data set, the held-out
split); copies cropped, rescaled or rotated beyond a couple of pixels, recoloured, blurred or
noised heavily, or blended with something else; and a generator that memorised its training
photos only partly. Duplicates within the training set itself (CelebA holds a few) make an image
match twice but count once.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from facegan.errors import FaceganError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Normalised cross-correlation at or above which an image is a copy of a training photo.
THRESHOLD = 0.98
#: Largest shift (pixels, each way) between a copy and its photo that verification searches.
MAX_SHIFT = 2
#: Training photos per image that go on to verification...
CANDIDATES = 5
#: ... when their thumbnails are at least this similar. A copy shifted by a pixel scores >= 0.96
#: (by two pixels diagonally >= 0.85); an honest image has ~0.7 training photos above 0.90 and
#: ~1.8 above 0.85 among 5,000 CelebA photos, so verification has little to do.
CANDIDATE_SCORE = 0.85
#: Side of the thumbnail grid of stage 1 (8x8 blocks of colour).
GRID = 8
#: Principal components of each thumbnail half the search runs on (of 96).
RETRIEVAL_DIMS = 32
_GREY = np.array([0.299, 0.587, 0.114], np.float32)
_CHUNK = 16384  # training rows per matrix product (bounds memory: 1,024 x 16,384 floats)


@dataclass(frozen=True)
class Copy:
    """One submitted image found to be a copy of a training photo."""

    image: int
    """Index of the image among those checked."""
    train: int
    """Index of the photo in the training set."""
    similarity: float
    """Normalised cross-correlation of the aligned grey images (1.0: identical)."""
    flipped: bool
    """The image is the photo's mirror image."""
    shift: tuple[int, int]
    """(dy, dx): where the image's window sits in the photo, relative to the centre."""


def _thumbnails(images: np.ndarray) -> np.ndarray:
    """(N, GRID, GRID, 3) block means of uint8 (N, S, S, 3) images, mean-free, unit length."""
    n, s = images.shape[0], images.shape[1]
    k = s // GRID
    # Rows of each block, then its columns, summed in integers over contiguous runs: 5x faster
    # than a mean over two strided axes (200,000 photos: ~3 s instead of ~15).
    rows = images.reshape(n, GRID, k, s * 3).sum(axis=2, dtype=np.uint32)
    t = rows.reshape(n, GRID, GRID, k, 3).sum(axis=3).astype(np.float32)
    t -= t.mean(axis=(1, 2, 3), keepdims=True)
    t /= np.sqrt((t * t).sum(axis=(1, 2, 3), keepdims=True)) + 1e-6
    return t


def _halves(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric and antisymmetric parts of thumbnails, on the left half of the columns only
    (the right half mirrors them), scaled so that ``s·s' + a·a'`` is the full dot product."""
    mirror = thumbs[:, :, ::-1]
    half = GRID // 2
    sym = ((thumbs + mirror) / 2)[:, :, :half].reshape(len(thumbs), -1) * np.sqrt(2)
    anti = ((thumbs - mirror) / 2)[:, :, :half].reshape(len(thumbs), -1) * np.sqrt(2)
    return np.ascontiguousarray(sym, np.float32), np.ascontiguousarray(anti, np.float32)


def _grey(images: np.ndarray) -> np.ndarray:
    """float32 (N, S, S) grey levels of uint8 (N, S, S, 3) images."""
    return images.astype(np.float32) @ _GREY


class CopyIndex:
    """Training photos indexed for :meth:`find_copies`; build one with :meth:`from_array`.

    Usage (grade and fid use the same)::

        index = CopyIndex.from_array(train_uint8)      # (N, 64, 64, 3), e.g. a memory-mapped .npy
        n = index.count_copies(images_uint8)           # how many of images are copies
    """

    def __init__(self, train: np.ndarray, sym: np.ndarray, anti: np.ndarray, *, source: str = "",
                 threshold: float = THRESHOLD, candidates: int = CANDIDATES, max_shift: int = MAX_SHIFT):
        self.train, self.sym, self.anti = train, sym, anti
        self.source, self.threshold, self.candidates, self.max_shift = source, threshold, candidates, max_shift
        # The search runs on the leading principal components of each half (a third of the
        # numbers, ~98 % of their energy): 3x fewer multiply-adds against every photo; the
        # candidates it finds are then scored on the full thumbnails.
        self._bases = [_principal_axes(h, RETRIEVAL_DIMS) for h in (sym, anti)]
        self._reduced = [np.ascontiguousarray(h @ b) for h, b in zip((sym, anti), self._bases)]
        self._fingerprint: str | None = None

    @classmethod
    def from_array(cls, train: np.ndarray, *, source: str = "", progress: bool = False, **options) -> "CopyIndex":
        """Index uint8 images (N, S, S, 3), S a multiple of 8 (kept by reference for verification:
        a memory-mapped array stays on disk). ``options``: threshold, candidates, max_shift."""
        _check_images(train, source or "training images")
        sym = np.empty((len(train), GRID * GRID * 3 // 2), np.float32)
        anti = np.empty_like(sym)
        from tqdm import tqdm

        for i in tqdm(range(0, len(train), _CHUNK), desc="copy index", unit="chunk",
                      disable=None if progress else True):
            sym[i : i + _CHUNK], anti[i : i + _CHUNK] = _halves(_thumbnails(np.asarray(train[i : i + _CHUNK])))
        return cls(train, sym, anti, source=source, **options)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **options) -> "CopyIndex":
        """Index the uint8 ``.npy`` of training photos (``facegan prepare``'s output) at ``path``."""
        from facegan.images import load_uint8_array

        return cls.from_array(load_uint8_array(path), source=str(path), **options)

    def __len__(self) -> int:
        return len(self.train)

    @property
    def fingerprint(self) -> str:
        """sha256 of what decides the outcome (the thumbnails and the settings), for caches."""
        if self._fingerprint is None:
            h = hashlib.sha256(f"copycheck|1|{self.threshold}|{self.candidates}|{self.max_shift}|{self.train.shape}".encode())
            h.update(self.sym.data)
            h.update(self.anti.data)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def count_copies(self, images: np.ndarray) -> int:
        """How many of uint8 ``images`` (N, S, S, 3) are copies of training photos."""
        return len(self.find_copies(images))

    def find_copies(self, images: np.ndarray) -> list[Copy]:
        """The copies among uint8 ``images`` (N, S, S, 3), each with its best-matching photo."""
        images = np.asarray(images)
        _check_images(images, "images to check")
        if images.shape[1:] != self.train.shape[1:]:
            raise FaceganError(f"copy check: images of {images.shape[1:]}, but the training photos "
                               f"{self.source} are {self.train.shape[1:]}")
        if len(images) == 0 or len(self.train) == 0:
            return []
        found: list[Copy] = []
        for start in range(0, len(images), 1024):  # bounded memory for any number of images
            found += self._find(images[start : start + 1024], start)
        return found

    def _find(self, images: np.ndarray, offset: int) -> list[Copy]:
        import torch

        index, s, a = self._candidates(images)
        # Both orientations of a candidate whose thumbnail is close enough: a nearly symmetric
        # face can score a hair better mirrored than as it is.
        pairs = [(*np.nonzero(s + a >= CANDIDATE_SCORE), False), (*np.nonzero(s - a >= CANDIDATE_SCORE), True)]
        rows = np.concatenate([r for r, _, _ in pairs])
        if rows.size == 0:  # most honest images: no photo close enough to look at
            return []
        cols = np.concatenate([c for _, c, _ in pairs])
        mirror = np.concatenate([np.full(len(r), m) for r, _, m in pairs])
        photos, which = np.unique(index[rows, cols], return_inverse=True)  # each photo read once
        cand = _grey(np.asarray(self.train[photos]))[which]
        cand[mirror] = cand[mirror, :, ::-1]
        with torch.inference_mode():
            score, shift = _aligned_ncc(torch.from_numpy(_grey(images)[rows]), torch.from_numpy(cand), self.max_shift)
        out = []
        for i in np.unique(rows):  # each image's best pair
            mine = np.flatnonzero(rows == i)
            j = mine[score[mine].argmax()]
            if score[j] >= self.threshold:
                out.append(Copy(int(i) + offset, int(index[i, cols[j]]), float(score[j]), bool(mirror[j]),
                                (int(shift[j, 0]), int(shift[j, 1]))))
        return out

    def _candidates(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, k) indices of the training photos whose thumbnails best match, and the full
        thumbnails' symmetric and antisymmetric dot products with them (plain: ``s + a``,
        mirrored: ``s - a``)."""
        import torch

        qs, qa = _halves(_thumbnails(images))
        (bs, ba), (rs, ra) = self._bases, self._reduced
        qs_r, qa_r = torch.from_numpy(qs @ bs), torch.from_numpy(qa @ ba)
        k = min(2 * self.candidates, len(self.train))  # the reduced search's margin
        values, where = [], []
        rs, ra = torch.from_numpy(rs), torch.from_numpy(ra)
        with torch.inference_mode():
            for start in range(0, len(self.train), _CHUNK):
                sc = (qa_r @ ra[start : start + _CHUNK].T).abs_().add_(qs_r @ rs[start : start + _CHUNK].T)
                v, i = torch.topk(sc, min(k, sc.shape[1]), dim=1)  # the better orientation: s + |a|
                values.append(v)
                where.append(i + start)
            order = torch.topk(torch.cat(values, 1), k, dim=1).indices
            best_i = torch.gather(torch.cat(where, 1), 1, order)
        index = best_i.numpy()
        s = np.einsum("nd,nkd->nk", qs, self.sym[index])
        a = np.einsum("nd,nkd->nk", qa, self.anti[index])
        keep = np.argsort(-(s + np.abs(a)), axis=1)[:, : self.candidates]  # the best on full thumbnails
        take = lambda x: np.take_along_axis(x, keep, axis=1)  # noqa: E731
        return take(index), take(s), take(a)


def _principal_axes(x: np.ndarray, d: int) -> np.ndarray:
    """(D, d) leading eigenvectors of ``x``'s second moment (dot products are what is kept)."""
    d = min(d, x.shape[1])
    _, vectors = np.linalg.eigh((x.T @ x).astype(np.float64))
    return np.ascontiguousarray(vectors[:, ::-1][:, :d], np.float32)


def _aligned_ncc(query: "torch.Tensor", cand: "torch.Tensor", m: int) -> tuple[np.ndarray, np.ndarray]:
    """Best normalised cross-correlation of each query's central window (side S - 2m) with the
    candidate's windows shifted by -m..m each way: float32 (P, S, S) grey images in, ``(scores
    (P,), shifts (P, 2))`` out."""
    import torch.nn.functional as F

    p, s, _ = query.shape
    w, n = s - 2 * m, 2 * m + 1
    q = query[:, m : s - m, m : s - m]
    q = q - q.mean(dim=(1, 2), keepdim=True)
    q = q / (q.square().sum(dim=(1, 2), keepdim=True).sqrt() + 1e-6)
    c = cand - cand.mean(dim=(1, 2), keepdim=True)  # smaller sums below: float32 keeps its digits
    # One grouped convolution gives every pair's cross terms at every shift; the candidate
    # windows' sums and sums of squares come from running sums (integral images).
    corr = F.conv2d(c[None], q[:, None], groups=p)[0]
    sums, squares = _window_sums(c, w, n), _window_sums(c.square(), w, n)
    var = (squares - sums.square() / (w * w)).clamp_min(0)
    ncc = (corr / (var.sqrt() + 1e-6)).reshape(p, -1)  # q is mean-free: the window mean drops out
    best, where = ncc.max(dim=1)
    where = where.numpy()
    return best.numpy(), np.stack([where // n - m, where % n - m], axis=1)


def _window_sums(x: "torch.Tensor", w: int, n: int) -> "torch.Tensor":
    """(P, n, n) sums of ``x`` (P, S, S) over the w x w windows starting at rows and columns 0..n-1."""
    import torch.nn.functional as F

    cols = F.pad(x.cumsum(2), (1, 0))  # (P, S, S + 1)
    cols = cols[:, :, w : w + n] - cols[:, :, :n]  # (P, S, n): sums of w columns from each start
    rows = F.pad(cols.cumsum(1), (0, 0, 1, 0))  # (P, S + 1, n)
    return rows[:, w : w + n] - rows[:, :n]


def _check_images(images: np.ndarray, what: str) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2] \
            or images.shape[1] % GRID or images.shape[1] <= 2 * MAX_SHIFT:
        raise FaceganError(f"{what}: expected uint8 images (N, S, S, 3) with S a multiple of {GRID}, "
                           f"got {images.dtype} {images.shape}")

