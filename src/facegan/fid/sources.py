"""What a scoring source is — a folder, archive, ``.npy`` or ``.npz`` — and reading it.

:func:`open_images` turns a folder (recursive), ``.zip``/``.tar(.gz)`` or uint8 ``.npy``
``(N, H, W, 3)`` into an :class:`ImageSet` that yields uint8 batches; ``.npz`` files are
statistics (:class:`~facegan.fid.stats.Stats`). :func:`load_source_stats` gives the statistics
of any of them; :func:`summarize_source` also keeps some features (for KID and the floor).

Images are decoded as pytorch-fid does (``PIL.Image.open(f).convert("RGB")``: grayscale is
replicated, alpha dropped, 16-bit clipped by Pillow). Non-image files are skipped and counted
by :func:`facegan.images.open_source`; images that cannot be decoded are skipped and counted
too, or with ``strict`` any of them is an error naming the file. Bytes are read in order in
the calling thread (archives are not thread-safe) and decoded in a small thread pool, a
bounded window ahead of the network.

Order: folders and zips are read by sorted name; a ``.tar(.gz)`` in one pass in archive order
(:meth:`facegan.images.ImageSource.iter_bytes`: a compressed tar read by sorted name would be
decompressed again from its start for each step back, quadratic in an unsorted archive). The
statistics do not depend on the order (beyond float rounding); the seeded subsets kept for KID
and the floor are drawn over the reading order, and a resumed pass (:mod:`facegan.fid.resumable`)
continues in that same order. A member that stops the archive (corrupt, truncated) makes it and
every member after it unreadable: skipped and counted, each with that reason.

The input hash (:attr:`ImageSet.sha256`) covers every listed image: sha256 over
``name NUL sha256(bytes) LF`` in sorted order, whatever the reading order (so a folder, a zip
and a tar of the same files agree; an entry that cannot be read at all — deleted mid-run,
swapped for a FIFO — hashes as ``name NUL - LF`` and is skipped and counted), or over the shape
and raw bytes of an ``.npy`` or in-memory array (:func:`open_images` also takes uint8 numpy
arrays and torch tensors). The resume check hashes the same lines in reading order
(:meth:`ImageSet.hash_prefix`), so that a prefix of the pass has a hash of its own.

Memory stays bounded whatever the images claim: the decoding window ahead of the network holds
at most :data:`WINDOW_PIXELS` pixels (sizes read from the headers before decoding), a batch at
most :data:`BATCH_PIXELS` (one big image is a batch of its own), and a single image at most
:data:`facegan.images.MAX_IMAGE_PIXELS`.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from facegan.errors import BadImageError, FaceganError
from facegan.images import decode_image, load_uint8_array, open_source

if TYPE_CHECKING:  # pragma: no cover
    from facegan.fid.features import FIDScorer, Summary
    from facegan.fid.stats import Stats

#: Images decoded ahead of the network, per decoding thread.
_PREFETCH = 64
#: At most this many pixels decoded ahead of the network (~100 MB as RGB); at least one image.
WINDOW_PIXELS = 1 << 25
#: At most this many pixels in one batch (~50 MB as uint8, 4x that once float); at least one image.
BATCH_PIXELS = 1 << 24
#: The digest hashed for an entry whose bytes could not be read.
_UNREADABLE = "-"


def is_stats_file(src: Any) -> bool:
    """Whether ``src`` names an ``.npz`` statistics file (an in-memory array never does)."""
    return isinstance(src, (str, os.PathLike)) and str(src).lower().endswith(".npz")


@dataclass
class ImageSet:
    """The images of one source, read as uint8 batches (by sorted name; a tar in archive order)."""

    path: Path
    kind: str
    """``folder``, ``zip``, ``tar`` or ``npy``."""
    count: int
    """Images listed (before decoding failures)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(name, reason)`` of entries not used: non-images, and images that failed to decode."""
    _source: object = field(default=None, repr=False)
    _array: np.ndarray | None = field(default=None, repr=False)
    _sha256: str | None = field(default=None, repr=False)
    position: int = field(default=0, repr=False)
    """Entries completed by the batches yielded so far (see :meth:`batches`)."""
    sizes: Counter = field(default_factory=Counter, repr=False)
    """``(width, height) -> images`` decoded so far (all of them, for an array)."""
    batch_names: list[str] | None = field(default=None, repr=False)
    """The names of the images of the batch out now (``None`` for an array: rows have no names)."""
    _digests: dict[str, str] | None = field(default=None, repr=False)
    """Tar only: each entry's digest as it was read, for the sorted-order input hash."""

    def __post_init__(self) -> None:
        if self.kind == "tar" and self._digests is None:
            self._digests = {}

    @property
    def sha256(self) -> str:
        """The input hash (computed by a reading pass, or on demand from the bytes alone)."""
        if self._sha256 is None:
            self._sha256 = self._hash_only()
        return self._sha256

    def _hash_only(self) -> str:
        if self._array is not None:
            return _array_sha256(self._array)
        h = self.hash_prefix(self.count)
        return h.hexdigest() if self._digests is None else self._sorted_hash()

    def _sorted_hash(self) -> str | None:
        """Tar: the input hash from the digests read, once every entry has been (else ``None``)."""
        if len(self._digests) != self.count:
            return None
        h = hashlib.sha256()
        for name in self._source.names:
            h.update(_entry_line(name, self._digests[name]))
        return h.hexdigest()

    def _feed(self, h, name: str, digest: str) -> None:
        h.update(_entry_line(name, digest))
        if self._digests is not None:
            self._digests[name] = digest

    def batches(self, batch_size: int, *, strict: bool = False, workers: int = 2, start: int = 0,
                hasher=None) -> Iterator[np.ndarray]:
        """uint8 (B, H, W, 3) batches in order; consecutive images of one size share a batch.

        To resume an interrupted pass: ``start`` skips the first entries (rows of an ``.npy``,
        listed names in reading order otherwise) and ``hasher`` is a ``hashlib.sha256`` already
        fed with them (:meth:`hash_prefix`). While a batch is out, :attr:`position` is the number
        of entries it completes (batch included), ``hasher`` has seen exactly those and
        :attr:`batch_names` names its images: a consistent place to stop and resume from.
        """
        if self._array is not None:
            self._sha256 = self._sha256 or _array_sha256(self._array)
            # bounded copies: a batch of big images is cut to BATCH_PIXELS (at least one image)
            h, w = self._array.shape[1:3]
            batch_size = max(1, min(batch_size, BATCH_PIXELS // max(1, h * w)))
            for i in range(start, self.count, batch_size):
                self.position = min(i + batch_size, self.count)
                yield np.array(self._array[i : i + batch_size])  # a writable copy off the mmap
            return
        if strict and self.skipped:
            name, reason = self.skipped[0]
            raise BadImageError(f"{self.path}:{name}", f"{reason} (--strict; {len(self.skipped)} such)")
        h = hasher if hasher is not None else hashlib.sha256()
        run: list[np.ndarray] = []
        run_names: list[str] = []
        done = start  # entries hashed and either skipped or in ``run``/a yielded batch
        for name, digest, result in self._decoded(workers, start):
            if isinstance(result, BadImageError):
                if strict:
                    raise BadImageError(f"{self.path}:{name}", result.reason)
                self.skipped.append((name, result.reason))
                self._feed(h, name, digest)
                done += 1
                continue
            pixels = result.shape[0] * result.shape[1]
            if run and (len(run) == batch_size or run[0].shape != result.shape
                        or (len(run) + 1) * pixels > BATCH_PIXELS):
                self.position, self.batch_names = done, run_names
                yield np.stack(run)
                run, run_names = [], []
            run.append(result)
            run_names.append(name)
            self.sizes[(result.shape[1], result.shape[0])] += 1
            self._feed(h, name, digest)  # hashed once in the batch, so prefixes line up
            done += 1
        if run:
            self.position, self.batch_names = done, run_names
            yield np.stack(run)
        # a tar's hash is over the sorted lines (as a folder's); None if its prefix came from elsewhere
        self._sha256 = h.hexdigest() if self._digests is None else self._sorted_hash()

    def hash_prefix(self, n: int):
        """A sha256 fed with the first ``n`` entries, as :meth:`batches` feeds it (bytes only read;
        an ``.npy`` feeds it nothing: :meth:`prefix_digest` uses the whole array's hash there)."""
        h = hashlib.sha256()
        if self._array is None and n > 0:
            entries = self._entries()
            try:
                for name, data in entries:
                    self._feed(h, name, _digest(data))
                    n -= 1
                    if n == 0:
                        break
            finally:
                entries.close()  # stops reading a tar there
                self._source.close()
        return h

    def _entries(self, start: int = 0) -> Iterator[tuple[str, bytes | BadImageError]]:
        """``(name, bytes or the BadImageError saying why not)`` of every listed entry from number
        ``start`` on, in reading order: sorted names, or a tar's archive order in one pass."""
        if self._source.kind != "tar":
            for name in self._source.names[start:]:
                yield name, self._read(name)
            return
        seen: set[str] = set()
        i = 0
        stream = self._source.iter_bytes()
        try:
            for name, data in stream:
                seen.add(name)
                if i >= start:
                    yield name, data
                i += 1
        except BadImageError as exc:  # the archive cannot be read past here: the rest are unreadable
            for name in self._source.names:
                if name not in seen:
                    if i >= start:
                        yield name, BadImageError(name, exc.reason)
                    i += 1
        finally:
            stream.close()  # stopped early: the archive is closed now, not when collected

    def _read(self, name: str) -> bytes | BadImageError:
        """The bytes of entry ``name``, or the :class:`BadImageError` saying why it cannot be read."""
        try:
            return self._source.read_bytes(name)
        except BadImageError as exc:
            return BadImageError(name, exc.reason)

    def prefix_digest(self, hasher) -> str:
        """What identifies the entries ``hasher`` has seen: its digest, or for an ``.npy`` (cheap
        to hash whole, and hashed apart from the batches) the whole array's hash."""
        return self.sha256 if self._array is not None else hasher.copy().hexdigest()

    def _decoded(self, workers: int, start: int = 0) -> Iterator[tuple[str, str, object]]:
        """``(name, sha256 of its bytes, uint8 array or BadImageError)`` in order, decoded ahead."""
        entries = self._entries(start)
        pending: deque = deque()
        most = _PREFETCH * max(1, workers)
        held = 0  # pixels claimed by the headers of the images in ``pending``
        with ThreadPoolExecutor(max(1, workers)) as pool:

            def submit() -> bool:
                nonlocal held
                entry = next(entries, None)
                if entry is None:
                    return False
                name, data = entry
                if isinstance(data, BadImageError):  # deleted mid-run, swapped for a FIFO...
                    pending.append((name, _UNREADABLE, 0, None, data))
                    return True
                pixels = _claimed_pixels(data)
                held += pixels
                pending.append((name, _digest(data), pixels, pool.submit(_decode_rgb, data, name), None))
                return True

            def room() -> bool:
                return not pending or (len(pending) < most and held < WINDOW_PIXELS)

            try:
                while room() and submit():
                    pass
                while pending:
                    name, digest, pixels, fut, failed = pending.popleft()
                    result = failed if fut is None else fut.result()
                    held -= pixels
                    while room() and submit():
                        pass
                    yield name, digest, result
            finally:
                for *_, fut, _failed in pending:
                    if fut is not None:
                        fut.cancel()
                entries.close()  # a pass stopped early (Ctrl-C, --strict) closes the archive now
        self._source.close()


def _entry_line(name: str, digest: str) -> bytes:
    return name.encode("utf-8", "surrogateescape") + b"\0" + digest.encode() + b"\n"


def _digest(data: bytes | BadImageError) -> str:
    return _UNREADABLE if isinstance(data, BadImageError) else hashlib.sha256(data).hexdigest()


def _claimed_pixels(data: bytes) -> int:
    """Width x height from the image header alone (0 when there is no readable header)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:  # the header only; the pixels are not decoded
            return int(img.width) * int(img.height)
    except Exception:  # not an image, a bomb Pillow refuses...: the decoder gives the reason
        return 0


def _array_sha256(arr: np.ndarray) -> str:
    h = hashlib.sha256(f"npy|{arr.dtype}|{tuple(arr.shape)}\n".encode())
    step = max(1, (1 << 24) // max(1, arr[0].nbytes if len(arr) else 1))
    for i in range(0, arr.shape[0], step):
        h.update(np.ascontiguousarray(arr[i : i + step]).data)
    return h.hexdigest()


def _decode_rgb(data: bytes, name: str):
    """8-bit RGB (H, W, 3) uint8 exactly as pytorch-fid reads it, or the BadImageError."""
    try:
        img = decode_image(data, name)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except BadImageError as exc:
        return exc


def open_images(src: "str | os.PathLike | np.ndarray | Any") -> ImageSet:
    """An :class:`ImageSet` for a folder, ``.zip``, ``.tar(.gz)``, uint8 ``.npy``, or an in-memory
    uint8 ``(N, H, W, 3)`` numpy array or torch tensor (RGB, 0..255)."""
    if not isinstance(src, (str, os.PathLike)):
        return _array_images(src)
    path = Path(src)
    if path.suffix.lower() == ".npy":
        arr = load_uint8_array(path)
        return ImageSet(path, "npy", int(arr.shape[0]), _array=arr,
                        sizes=Counter({(arr.shape[2], arr.shape[1]): int(arr.shape[0])}))
    source = open_source(path)
    return ImageSet(path, source.kind, len(source.names), list(source.skipped), _source=source)


def _array_images(arr: Any) -> ImageSet:
    from facegan.images import MAX_IMAGE_PIXELS

    if hasattr(arr, "detach") and hasattr(arr, "cpu"):  # a torch tensor, wherever it lives
        arr = arr.detach().cpu().numpy()
    if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
        raise FaceganError(f"expected a path, or a uint8 (N, H, W, 3) numpy array or torch tensor; got {type(arr).__name__}")
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise FaceganError(
            f"images must be uint8 of shape (N, H, W, 3) (RGB, 0..255); got {arr.dtype} {arr.shape}. "
            "Convert generator output once with ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)"
            ".permute(0, 2, 3, 1)"
        )
    n, h, w = (int(v) for v in arr.shape[:3])
    if h * w > MAX_IMAGE_PIXELS:
        raise FaceganError(f"array of {w}x{h} images: over the {MAX_IMAGE_PIXELS:,}-pixel limit per image")
    return ImageSet(Path(f"<uint8 array {n}x{h}x{w}x3>"), "array", n, _array=arr, sizes=Counter({(w, h): n}))


def check_count(images: ImageSet, n: int) -> None:
    if n == 0:
        reasons = "; ".join(f"{name}: {why}" for name, why in images.skipped[:3])
        more = f" ({len(images.skipped)} files skipped: {reasons}{'...' if len(images.skipped) > 3 else ''})"
        raise FaceganError(f"{images.path}: no images found{more if images.skipped else ''}")
    if n < 2:
        raise FaceganError(f"{images.path}: FID needs at least 2 images, found {n}")


def load_source_stats(
    src: str | os.PathLike, scorer: "FIDScorer", *, strict: bool = False, workers: int = 2
) -> "Stats":
    """Statistics of any source: an ``.npz`` is loaded (shape-checked), images are scored."""
    from facegan.fid.features import FEATURE_DIMS
    from facegan.fid.stats import Stats

    if is_stats_file(src):
        return Stats.load(src, dims=FEATURE_DIMS)
    images = open_images(src)
    check_count(images, images.count)
    batches = images.batches(scorer.batch_size, strict=strict, workers=workers)
    stats = scorer.statistics(batches, source=str(src), total=images.count)
    stats.input_sha256 = images.sha256
    return stats


def summarize_source(
    images: ImageSet,
    scorer: "FIDScorer",
    *,
    keep: int,
    seed: int = 0,
    strict: bool = False,
    workers: int = 2,
    on_batch: Callable[[np.ndarray], None] | None = None,
) -> tuple["Stats", "Summary"]:
    """One pass: statistics of all images and the features of ``keep`` random ones.

    ``on_batch`` sees every uint8 batch before the network does (while it is out,
    :attr:`ImageSet.batch_names` names its images): what else needs the pixels (the copy
    check) reads them in the same pass."""
    from facegan.fid.features import summarize
    from facegan.fid.stats import Stats

    check_count(images, images.count)
    batches = images.batches(scorer.batch_size, strict=strict, workers=workers)
    if on_batch is not None:
        batches = _tapped(batches, on_batch)
    blocks = scorer.iter_features(batches, total=images.count)
    summary = summarize(blocks, images.count, keep, seed)
    check_count(images, summary.moments.n)
    m = summary.moments
    stats = Stats(
        m.mean(), m.cov(), m.n, source=str(images.path), input_sha256=images.sha256,
        weights_sha256=scorer.weights_sha256,
    )
    return stats, summary


def _tapped(batches: Iterator[np.ndarray], see: Callable[[np.ndarray], None]) -> Iterator[np.ndarray]:
    for batch in batches:
        see(batch)
        yield batch
