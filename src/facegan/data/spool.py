"""A tar source read once, in its own order, into a random-access copy for ``prepare``.

``prepare`` reads its images by sorted name, in chunks (the unit of resume and of parallel
work), and the cache must keep that order. A ``.tar.gz`` can only be read forward: asking for an
earlier member re-decompresses the archive from its start, so reading an unsorted archive by
sorted name is quadratic (10,000 photos: minutes instead of seconds). :func:`spool_tar` instead
streams the archive once, in archive order (:meth:`facegan.images.ImageSource.iter_bytes`), into
one uncompressed file in the run's work folder — the members' bytes back to back — and returns a
:class:`TarSpool` that reads any image by name with one ``pread``. It stands in for the
:class:`~facegan.images.ImageSource` wherever images are read (``names``, ``read_bytes``,
``close``); messages still name the archive. The copy takes as much disk as the images
themselves; ``prepare`` deletes it when it stops, whatever the reason (only SIGKILL leaves it,
for the next run to overwrite).

The spool is never trusted across runs: each run makes its own (a resume must hash the inputs
of the chunks it reuses anyway, and this one pass gives those bytes too).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from facegan.errors import BadImageError, WriteError
from facegan.images import ImageSource


@dataclass
class TarSpool:
    """The images of a tar archive, copied uncompressed into :attr:`blob`, readable by name.

    Attributes:
        path: the archive the images come from (what messages name).
        blob: the uncompressed copy (member bytes back to back).
        names: image names, sorted (the archive's :attr:`ImageSource.names`).
        spans: ``name -> (offset, length)`` in :attr:`blob` of every image copied.
        failure: why the archive could not be read on, if it stopped early (the images after
            that point are not in the copy; reading one raises :class:`BadImageError` with it).
    """

    path: Path
    blob: Path
    names: list[str]
    spans: dict[str, tuple[int, int]]
    failure: str | None = None
    refused: dict[str, str] = field(default_factory=dict)
    """``name -> reason`` of members not copied because no image needs their size (see
    :func:`spool_problem`)."""
    kind: str = "spool"
    _fd: int | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fd"] = None  # each process opens the copy for itself
        return state

    def read_bytes(self, name: str) -> bytes:
        """The bytes of image ``name``, as they were in the archive."""
        span = self.spans.get(name)
        if span is None:
            why = self.refused.get(name) or self.failure or "no longer in the archive"
            raise BadImageError(f"{self.path}:{name}", f"cannot be read ({why})")
        if self._fd is None:
            self._fd = os.open(self.blob, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        offset, length = span
        data = os.pread(self._fd, length, offset)
        if len(data) != length:  # the copy was cut short under us (someone deleted or truncated it)
            raise BadImageError(f"{self.path}:{name}", f"its copy in {self.blob} is truncated")
        return data

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Close and delete the copy."""
        self.close()
        self.blob.unlink(missing_ok=True)


def spool_tar(source: ImageSource, blob: Path, progress: bool = False) -> TarSpool:
    """Copy the images of tar ``source`` into ``blob`` in one pass; the :class:`TarSpool`.

    A member that cannot be read stops the archive there (a tar cannot be read past it): what
    came before is kept, and the rest read as unreadable with that reason, as they would from
    the archive. A failed write (disk full) is a :class:`WriteError` naming ``blob``.
    """
    from tqdm import tqdm

    wanted = set(source.names)  # a CelebA split may list fewer names than the archive holds
    spans: dict[str, tuple[int, int]] = {}
    refused: dict[str, str] = {}
    failure = None
    try:
        with open(blob, "wb") as f, tqdm(total=len(wanted), unit="img", desc="unpack",
                                          disable=None if progress else True, dynamic_ncols=True) as bar:
            offset = 0
            try:
                for name, data in source.iter_bytes():
                    if name not in wanted:
                        continue
                    why = spool_problem(data)
                    if why:  # never copied: a 3 MB archive of 60 MiB "photos" must not fill the disk
                        refused[name] = why
                        bar.update()
                        continue
                    f.write(data)
                    spans[name] = (offset, len(data))
                    offset += len(data)
                    bar.update()
            except BadImageError as exc:
                failure = exc.reason
    except OSError as exc:
        blob.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        hint = " (it needs about as much free space as the images in the archive)" \
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise WriteError(f"{blob}: cannot write the uncompressed copy of {source.path}: {reason}{hint}") from exc
    except BaseException:
        blob.unlink(missing_ok=True)  # Ctrl-C: a half copy is of no use to anyone
        raise
    return TarSpool(source.path, blob, list(source.names), spans, failure, refused=refused)


#: Members up to this size are copied as they are (the decoder judges them later).
SPOOL_FREE_BYTES = 1 << 20


def spool_problem(data: bytes) -> str | None:
    """Why a large member must not be copied to disk, else ``None``: it is not an image, or it is
    larger than its canvas can need (4 bytes a pixel, twice, plus 1 MB of metadata) — found
    from its header alone, before anything is written."""
    if len(data) <= SPOOL_FREE_BYTES:
        return None
    import io
    import warnings

    from PIL import Image

    from facegan.images import MAX_IMAGE_PIXELS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:  # the header only
                w, h = img.size
    except Exception:  # noqa: BLE001 - every way of not being an image
        return "not an image (format not recognised)"
    if w * h > MAX_IMAGE_PIXELS:
        return f"a {w}x{h} canvas, over the {MAX_IMAGE_PIXELS:,}-pixel limit"
    most = w * h * 8 + SPOOL_FREE_BYTES
    if len(data) > most:
        return f"{len(data):,} bytes for a {w}x{h} image (at most {most:,}): padded or crafted; not read"
    return None
