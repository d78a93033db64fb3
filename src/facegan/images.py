"""Reading sets of images from folders and archives safely; writing PNGs.

Shared by ``stats``/``fid`` (scoring), ``prepare`` (the training cache) and ``pack`` (the
submission). An :class:`ImageSource` lists the images of a folder (recursive), a ``.zip`` or a
``.tar``/``.tar.gz``/``.tgz`` in sorted order and reads one image's bytes by name. It is small and
picklable, so worker processes can each read their share (archives are reopened per process).

Archives are never extracted to disk: members are read into memory, so hostile names
(``../../etc``, absolute paths) cannot write anywhere; links, devices and members over
:data:`MAX_MEMBER_BYTES` are skipped and counted. Tar archives are read with
:mod:`facegan.safetar` (every header bounded before it is read, sparse members refused) and in
one pass where the consumer allows it: :meth:`ImageSource.iter_bytes` yields the images in
archive order, and :meth:`ImageSource.read_bytes` on a tar only reads forward, reopening the
archive when asked for a member behind the last one read (so reading in archive order is
linear, in any other order of a ``.tar.gz`` quadratic: prefer :meth:`~ImageSource.iter_bytes`).

In folders only regular files are read (a link to one is followed): FIFOs, devices, sockets,
dangling links and link loops are skipped and counted with the reason, at listing time and again
when read (the file may have changed in between), and each read is bounded by
:data:`MAX_FILE_BYTES` — a FIFO named ``x.png`` cannot hang a command, nor a link to
``/dev/zero`` fill the memory; a file deleted mid-run is one more skipped file. Decoding refuses
an image whose header claims more than :data:`MAX_IMAGE_PIXELS` before any pixel is decoded.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from facegan.errors import BadImageError, FaceganError
from facegan.safetar import ArchiveError, TarEntry, iter_tar

#: File name endings taken as images (lower case). Other files are skipped and counted.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
#: Largest archive member read (bytes): a 64x64 face is a few KB, CelebA's largest JPEG ~30 KB.
MAX_MEMBER_BYTES = 64 * 1024 * 1024
#: Largest file read from a folder (bytes): the same bound as for archive members.
MAX_FILE_BYTES = MAX_MEMBER_BYTES
#: Largest canvas decoded (pixels; 8192 x 8192): the memory an image takes once decoded grows with
#: the size its header claims (3 bytes per pixel as RGB, 4x that as floats), not with its file size.
MAX_IMAGE_PIXELS = 8192 * 8192
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def archive_kind(path: Path) -> str | None:
    """``"zip"``, ``"tar"`` or ``None`` for a path, by its name."""
    lower = path.name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    return None


@dataclass
class ImageSource:
    """The images of one folder or archive, in sorted order.

    Attributes:
        path: the folder or archive.
        kind: ``"folder"``, ``"zip"`` or ``"tar"``.
        names: image names relative to ``path`` (POSIX separators), sorted.
        skipped: ``(name, reason)`` for entries that are not images or cannot be read safely.
        hidden: names starting with ``.`` left out of a folder without a reason (``.DS_Store``,
            editor swap files; a hidden folder as ``name/``), for callers that want to say so.
    """

    path: Path
    kind: str
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    _handle: object = field(default=None, repr=False, compare=False)
    _order: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    """Tar only: each name's position among the members (the last one of a repeated name)."""

    def __len__(self) -> int:
        return len(self.names)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handle"] = None  # archives are reopened in each process
        return state

    def read_bytes(self, name: str) -> bytes:
        """The raw bytes of image ``name`` (one of :attr:`names`)."""
        try:
            if self.kind == "folder":
                return read_file(self.path / name, name)
            if self.kind == "zip":
                if self._handle is None:
                    self._handle = zipfile.ZipFile(self.path)
                return _read_zip_member(self._handle, name)
            return self._tar_read(name)
        except (OSError, KeyError, zipfile.BadZipFile, ArchiveError) as exc:
            raise BadImageError(f"{self.path}:{name}", f"cannot be read ({exc})") from exc

    def iter_bytes(self) -> Iterator[tuple[str, bytes]]:
        """``(name, bytes)`` of every image of :attr:`names`, each once, in one pass.

        A tar archive is read once from start to end, in archive order (the cheap order for a
        ``.tar.gz``); a folder or zip in the order of :attr:`names`. A member that cannot be
        read raises :class:`BadImageError` naming it (a tar cannot be read on past that point).
        """
        if self.kind != "tar":
            for name in self.names:
                yield name, self.read_bytes(name)
            return
        wanted = {index: name for name, index in self._order.items()}
        try:
            with open_regular(self.path) as raw:
                for entry in iter_tar(raw, str(self.path)):
                    name = wanted.get(entry.index)
                    if name is not None:
                        yield name, entry.read()
        except (OSError, ArchiveError) as exc:
            raise BadImageError(str(self.path), f"cannot be read ({exc})") from exc

    def _tar_read(self, name: str) -> bytes:
        index = self._order[name]
        if self._handle is None or self._handle.last >= index:  # behind the last one read: start again
            self.close()
            self._handle = _TarReader(self.path)
        return self._handle.read(index, name)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class _TarReader:
    """A tar archive read forward only: member ``index`` after member ``last``."""

    def __init__(self, path: Path):
        self.raw = open_regular(path)
        self.members = iter_tar(self.raw, str(path))
        self.last = -1

    def read(self, index: int, name: str) -> bytes:
        for entry in self.members:
            self.last = entry.index
            if entry.index == index:
                return entry.read()
        raise KeyError(f"{name} is no longer in the archive")

    def close(self) -> None:
        self.raw.close()


def open_source(src: str | os.PathLike) -> ImageSource:
    """List the images of a folder (recursive), ``.zip`` or ``.tar[.gz]``.

    Raises :class:`FaceganError` naming ``src`` when it does not exist, is not a folder or a
    readable archive. An empty result is returned as is: callers decide whether that is an error.
    """
    path = Path(src)
    if not path.exists():
        raise FaceganError(f"{path}: no such file or folder")
    if path.is_dir():
        return _list_folder(path)
    kind = archive_kind(path)
    if kind == "zip":
        return _list_zip(path)
    if kind == "tar":
        return _list_tar(path)
    raise FaceganError(
        f"{path}: not a folder, .zip or .tar(.gz) of images (got a '{path.suffix}' file)"
    )


def open_regular(path: str | os.PathLike) -> IO[bytes]:
    """``path`` opened for reading when it is a regular file (a link to one is followed).

    Anything else — FIFO, device, socket, folder, dangling link, link loop, missing file — is a
    :class:`FaceganError` naming ``path`` and saying what it is, raised without blocking: the
    descriptor is opened non-blocking and its type checked again once open.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:
        if not os.path.lexists(path):
            raise FaceganError(f"{path}: no such file") from None
        raise FaceganError(f"{path}: {_not_regular(path)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FaceganError(f"{path}: {_kind_of(st.st_mode)}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise FaceganError(f"{path}: {_not_regular(path)}") from None
    f = open(fd, "rb", closefd=True)
    mode = os.fstat(f.fileno()).st_mode
    if not stat.S_ISREG(mode):
        f.close()
        raise FaceganError(f"{path}: {_kind_of(mode)}")
    return f


def _not_regular(path: str) -> str:
    """Why ``path`` (which is not a readable regular file) is skipped, in words."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.ENOENT:
            return "a dangling link (its target does not exist)" if os.path.islink(path) else "deleted while being read"
        return f"cannot be read ({exc.strerror})"
    return _kind_of(st.st_mode)


def _kind_of(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return f"{kind}, not a regular file"
    return "not a regular file"


def read_file(path: str | os.PathLike, name: str | None = None, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of regular file ``path`` (a link to one is followed), at most ``limit`` of them.

    Raises :class:`BadImageError` (named ``name``, default the path) for anything else — FIFO,
    device, socket, folder, dangling link, link loop, missing file — and for a file over
    ``limit`` bytes, without reading it. The type is checked before opening (opening some devices
    has side effects) and again on the open descriptor, which is opened non-blocking so that a
    file swapped for a FIFO in between cannot block; the read itself stops at ``limit + 1``.
    """
    path = os.fspath(path)
    name = path if name is None else name
    try:
        st = os.stat(path)
    except OSError:
        raise BadImageError(name, _not_regular(path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise BadImageError(name, _kind_of(st.st_mode))
    if st.st_size > limit:
        raise BadImageError(name, f"{st.st_size:,} bytes, over the {limit:,}-byte limit for one image")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise BadImageError(name, _not_regular(path)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadImageError(name, _kind_of(st.st_mode))
        parts, total = [], 0
        while True:  # os.read, not a file object: this runs once per photo (200,000 for CelebA)
            block = os.read(fd, max(st.st_size + 1 - total, 1 << 16))
            if not block:
                break
            parts.append(block)
            total += len(block)
            if total > limit:  # grew since the stat
                raise BadImageError(name, f"over the {limit:,}-byte limit for one image")
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _list_folder(path: Path) -> ImageSource:
    """Images under ``path`` (recursive, sorted); every other entry skipped with its reason.

    Regular files are told apart from the readdir entry type alone (no stat per file, so listing
    200,000 photos stays fast); only links and special files are looked at more closely. Links to
    folders are not followed (a loop could never end), and say so.
    """
    names, skipped, hidden = [], [], []
    todo = [path]
    while todo:
        folder = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            rel = Path(folder).relative_to(path).as_posix()
            skipped.append((rel, f"folder cannot be read ({exc.strerror})"))
            continue
        subfolders = []
        for e in entries:
            rel = Path(e.path).relative_to(path).as_posix()
            if e.name.startswith("."):  # .DS_Store, editor swap files: not images, listed apart
                hidden.append(rel + ("/" if e.is_dir(follow_symlinks=False) else ""))
                continue
            if e.is_dir(follow_symlinks=False):
                subfolders.append(e.path)
                continue
            try:
                regular = e.is_file(follow_symlinks=True)  # a regular file, or a link to one
                linked_folder = not regular and e.is_symlink() and e.is_dir(follow_symlinks=True)
            except OSError:  # a link loop: the reason is found below
                regular = linked_folder = False
            if regular:
                (names.append(rel) if is_image_name(e.name) else skipped.append((rel, "not an image file")))
            elif linked_folder:
                skipped.append((rel, "a link to a folder (not followed)"))
            elif is_image_name(e.name):
                skipped.append((rel, _not_regular(e.path)))
            else:
                skipped.append((rel, "not an image file"))
        todo.extend(reversed(subfolders))
    return ImageSource(path, "folder", sorted(names), sorted(skipped), sorted(hidden))


def _read_zip_member(zf: zipfile.ZipFile, name: str) -> bytes:
    """Member ``name``, inflated no further than the size it declares (at most
    :data:`MAX_MEMBER_BYTES`): ``ZipFile.read`` inflates a member that lies about its size whole
    (10 KB declared, 1 GiB inflated) before its CRC check fails."""
    info = zf.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise BadImageError(name, f"larger than {MAX_MEMBER_BYTES} bytes")
    with zf.open(info) as f:
        data = f.read(info.file_size + 1)  # read(n) inflates at most n bytes
    if len(data) != info.file_size:
        raise BadImageError(name, f"inflates to more or less than the {info.file_size:,} bytes it declares "
                                  "(damaged or crafted)")
    return data


def _list_zip(path: Path) -> ImageSource:
    try:
        with open_regular(path) as raw, zipfile.ZipFile(raw) as zf:
            infos = zf.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise FaceganError(f"{path}: not a readable zip archive ({exc})") from exc
    names, skipped = [], []
    _too_much_junk(path, sum(1 for i in infos if i.is_dir() or i.file_size == 0 or not is_image_name(i.filename)))
    for info in infos:
        if info.is_dir() or Path(info.filename).name.startswith("."):
            continue
        if not is_image_name(info.filename):
            skipped.append((info.filename, "not an image file"))
        elif info.file_size > MAX_MEMBER_BYTES:
            skipped.append((info.filename, f"larger than {MAX_MEMBER_BYTES} bytes"))
        else:
            names.append(info.filename)
    return ImageSource(path, "zip", sorted(set(names)), sorted(skipped))  # a repeated name: read once


#: Members of an image archive that cannot be images (folders, links, other files, empty files)
#: beyond this many stop the listing: 2,000,000 of them kept ``fid`` listing for minutes, and
#: an archive of photos holds photos. Real images are not limited (each is honest work).
MAX_JUNK_MEMBERS = 100_000


def _too_much_junk(path: Path, junk: int) -> None:
    if junk > MAX_JUNK_MEMBERS:
        raise FaceganError(f"{path}: more than {MAX_JUNK_MEMBERS:,} members that cannot be images (folders, "
                           "links, other or empty files); refused (an archive of photos holds photos)")


def _list_tar(path: Path) -> ImageSource:
    order: dict[str, int] = {}
    skipped: list[tuple[str, str]] = []
    junk = 0
    with open_regular(path) as raw:  # an unreadable archive: ArchiveError, a FaceganError naming it
        for m in iter_tar(raw, str(path)):
            before = len(order)
            _sort_tar_member(m, order, skipped)
            if len(order) == before or m.size == 0:
                junk += 1
                _too_much_junk(path, junk)
    return ImageSource(path, "tar", sorted(order), sorted(skipped), _order=order)


def _sort_tar_member(m: TarEntry, order: dict[str, int], skipped: list[tuple[str, str]]) -> None:
    """File member ``m`` under ``order`` (name -> position) if it is an image, else ``skipped``."""
    if m.kind == "dir" or Path(m.name).name.startswith("."):
        return
    if m.kind != "file":
        skipped.append((m.name, "a link or special file, not an image"))
    elif not is_image_name(m.name):
        skipped.append((m.name, "not an image file"))
    elif m.size > MAX_MEMBER_BYTES:
        skipped.append((m.name, f"larger than {MAX_MEMBER_BYTES} bytes"))
    else:
        order[m.name] = m.index  # a repeated name: the last one wins, as tarfile's extractfile


def decode_image(data: bytes, name: str, expect_size: tuple[int, int] | None = None,
                 max_pixels: int = MAX_IMAGE_PIXELS):
    """Decode ``data`` fully into a PIL image (any mode), or raise :class:`BadImageError`.

    Empty, truncated and non-image data all raise with ``name`` and the reason; the pixels are
    loaded here so a truncated JPEG fails now, not later inside a transform. A small file can
    claim a huge canvas, so the size in the header is checked before any pixel is decoded: an
    image over ``max_pixels`` (width x height) is refused with that reason, and with
    ``expect_size`` (width, height) so is an image of any other size (a grader decodes only that).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadImageError(name, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            if expect_size is not None:  # a big canvas is refused below, before any decoding
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # reads the header only
        if expect_size is not None and img.size != tuple(expect_size):
            w, h = img.size
            raise BadImageError(name, f"{w}x{h}, expected {expect_size[0]}x{expect_size[1]}")
        if img.width * img.height > max_pixels:
            raise BadImageError(name, _canvas_reason(f"{img.width}x{img.height}", max_pixels))
        img.load()
    except UnidentifiedImageError:
        raise BadImageError(name, "not an image (format not recognised)") from None
    except Image.DecompressionBombError:  # Pillow's own, larger limit, checked inside open()
        raise BadImageError(name, _canvas_reason("a canvas", max_pixels)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(name, f"corrupt or truncated image ({exc})") from None
    return img


def _canvas_reason(size: str, max_pixels: int) -> str:
    return (f"its header claims {size} over the {max_pixels:,}-pixel limit "
            f"({max_pixels * 3 / 2**20:,.0f} MB as RGB): refused before decoding")


def load_uint8_array(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Memory-map a ``.npy`` uint8 image array of shape (N, H, W, 3), checking its shape.

    Only a regular file is opened (a FIFO would block, a device never end), and images over
    ``max_pixels`` are refused before any is read: batches copy whole images off the map.
    """
    from facegan.safeload import library_reason, npy_header

    path = Path(path)
    if path.exists() and not path.is_file():
        raise FaceganError(f"{path}: {_not_regular(str(path))}")
    if path.is_file():  # the header checked against the file first: a short file is not mapped
        shape, _ = npy_header(path)
        _refuse_sparse(path, int(np.prod(shape, dtype=object)))
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:  # never NumPy's own words: they advise allow_pickle=True
        raise FaceganError(f"{path}: not a readable .npy array ({library_reason(exc)})") from None
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise FaceganError(
            f"{path}: expected a uint8 array of shape (N, H, W, 3), got {arr.dtype} {arr.shape}"
        )
    if arr.shape[1] * arr.shape[2] > max_pixels:
        raise FaceganError(f"{path}: images of {arr.shape[2]}x{arr.shape[1]}, over the "
                           f"{max_pixels:,}-pixel limit per image")
    return arr


#: A cache this large whose bytes are mostly not on disk is refused (see :func:`_refuse_sparse`).
SPARSE_MIN_BYTES = 64 * 1024 * 1024


def _refuse_sparse(path: Path, nbytes: int) -> None:
    """Refuse a large ``.npy`` whose data is mostly holes: ``prepare`` writes every byte, and a
    sparse file declaring 3,000,000 images would have training allocate 37 GB of zeros."""
    st = path.stat()
    blocks = getattr(st, "st_blocks", None)
    if blocks is None or nbytes < SPARSE_MIN_BYTES:
        return
    on_disk = blocks * 512
    if on_disk * 4 < nbytes:
        raise FaceganError(f"{path}: declares {nbytes:,} bytes of images but only {on_disk:,} are on disk "
                           "(a sparse file, not a cache written by 'facegan prepare'); refused")


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write one uint8 (H, W, 3) array as an RGB PNG."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(path, format="PNG")
