"""Tar archives from untrusted hands, read in one pass with every header bounded before it is read.

:mod:`tarfile` reads a pax extended header or a GNU long name whole into memory before anything
can look at its size: a 94-byte ``.tar.gz`` whose pax header declares 64 GiB ends in
``MemoryError``, and a real 1.5 GiB header is simply read. It also seeks backwards inside a
``.tar.gz`` (re-decompressing from the start) whenever members are read out of archive order.

:func:`iter_tar` walks the 512-byte headers itself over the decompressed stream (gzip, bzip2,
xz or none, recognised by their magic bytes, not the file name), parses each one with
:meth:`tarfile.TarInfo.frombuf` (tarfile's own header parser, checksum included) and checks
:class:`TarLimits` *before* reading what a header announces:

- a pax header (``x``, ``g``, ``X``) or GNU long name / long link (``L``, ``K``) larger than
  ``max_meta_bytes`` stops the walk, unread;
- sparse members (GNU ``S`` or pax ``GNU.sparse.*``) stop it: their extracted size is not
  their header's size;
- more than ``max_members`` members, more than ``max_stream_bytes`` decompressed bytes, or the
  ``deadline`` passing stop it;
- headers that the standard readers could read two ways stop it (see :data:`PAX_KEYS`): a global
  pax header with anything but a ``comment`` (GNU tar and :mod:`tarfile` apply its ``path`` to
  every member that follows), a Solaris ``X`` header, a pax header and a GNU long name for the same
  member, two extended headers of one kind for one member, a key twice in one header, pax keys
  outside :data:`PAX_KEYS`, or an extended header with no member after it. Refusing these is
  simpler and safer than emulating every reader: no tool that makes a submission writes them.

Stopping means :class:`ArchiveError`, whose message names the archive and the reason. Members
come out in archive order as :class:`TarEntry`; the caller reads the data of the ones it wants
(:meth:`TarEntry.read`, before asking for the next) and the walk skips the rest. Nothing is ever
written to disk, so names like ``../../x`` are only text here.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from typing import IO, Iterator

from facegan.errors import FaceganError
from facegan.safetext import shown

BLOCK = tarfile.BLOCKSIZE
#: Extended headers larger than this are refused unread: a 255-character path needs ~300 bytes.
MAX_META_BYTES = 64 * 1024
_SKIP_BLOCK = 1 << 20
_ENCODING = ("utf-8", "surrogateescape")  # undecodable bytes survive, and safetext.shown shows them

_KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "device", tarfile.BLKTYPE: "device", tarfile.FIFOTYPE: "fifo",
}
_PAX_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
#: The pax keys a member's header may hold: what GNU tar, bsdtar and :mod:`tarfile` write for
#: ordinary files. Any other key (``hdrcharset``, which changes how names decode; vendor keys
#: that a reader may or may not honour) could make two readers see two archives.
PAX_KEYS = frozenset({"path", "linkpath", "size", "mtime", "atime", "ctime", "uid", "gid", "uname",
                      "gname", "comment"})
#: Key prefixes allowed too: extended attributes, ACLs and inode data that macOS's and Linux's
#: tar write (``SCHILY.xattr.com.apple.quarantine``...); no reader takes a name or a size from them.
PAX_KEY_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.", "SCHILY.acl.", "LIBARCHIVE.acl.", "SCHILY.dev",
                    "SCHILY.ino", "SCHILY.nlink", "SCHILY.fflags", "LIBARCHIVE.creationtime")
#: The only key allowed in a global header (``git archive`` writes the commit there).
GLOBAL_PAX_KEYS = frozenset({"comment"})
_GNU_LONG = {tarfile.GNUTYPE_LONGNAME: "path", tarfile.GNUTYPE_LONGLINK: "linkpath"}


class ArchiveError(FaceganError):
    """The archive cannot be read on: corrupt, truncated, or past a limit (see the message)."""


@dataclass
class TarLimits:
    """What one walk may cost. ``None`` means no limit (the header bound always applies)."""

    max_members: int | None = None
    """Members (entries of any kind, extended headers not counted)."""
    max_stream_bytes: int | None = None
    """Bytes of the decompressed stream, headers and skipped data included."""
    max_meta_bytes: int = MAX_META_BYTES
    """Size of one pax header or GNU long name / long link."""
    deadline: float | None = None
    """A :func:`time.monotonic` time after which the walk stops."""
    seconds: float | None = field(default=None, repr=False)
    """The time allowed, as given (for the message)."""

    @classmethod
    def timed(cls, seconds: float | None, **kw) -> "TarLimits":
        """Limits whose deadline is ``seconds`` from now."""
        deadline = None if seconds is None else time.monotonic() + seconds
        return cls(deadline=deadline, seconds=seconds, **kw)


@dataclass
class TarEntry:
    """One member, as its headers describe it (pax and GNU long names applied)."""

    name: str
    """The member's name (undecodable bytes kept as surrogates: show it with :func:`shown`)."""
    kind: str
    """``file``, ``dir``, ``symlink``, ``hardlink``, ``device``, ``fifo`` or ``other``."""
    size: int
    linkname: str = ""
    index: int = 0
    """Position among the members (0-based)."""
    offset: int = 0
    """Where its data starts in the decompressed stream."""
    _walk: "_Walk | None" = field(default=None, repr=False, compare=False)

    def read(self) -> bytes:
        """The member's data. Only for a ``file``, and only before the walk moves on."""
        if self.kind != "file" or self._walk is None or self._walk.current is not self:
            raise ValueError(f"{self.name!r}: data not available here")
        self._walk.current = None
        data = self._walk.read_exact(self.size, f"data of {shown(self.name)}")
        self._walk.skip(_padding(self.size), "padding")
        return data


def _padding(size: int) -> int:
    return -size % BLOCK


class _TimedRaw:
    """``raw`` with the deadline checked on every read. A decompressor may read much without
    returning a byte: 8,000,000 empty gzip members are all read inside one ``read`` of
    :class:`gzip.GzipFile` (109 s), where the walk's own checks never run."""

    def __init__(self, raw: IO[bytes], where: str, limits: TarLimits):
        self.raw, self.where, self.limits = raw, where, limits

    def read(self, n: int = -1) -> bytes:
        if self.limits.deadline is not None and time.monotonic() > self.limits.deadline:
            raise ArchiveError(f"{self.where}: reading took more than {self.limits.seconds or 0:g} s "
                               "(the time cap); refused")
        return self.raw.read(n)

    def seek(self, *args) -> int:
        return self.raw.seek(*args)

    def tell(self) -> int:
        return self.raw.tell()


def open_decompressed(raw: IO[bytes], where: str, limits: TarLimits | None = None) -> IO[bytes]:
    """``raw``'s bytes decompressed as its magic bytes say (gzip, bzip2, xz), or as they are.

    With a deadline in ``limits``, the compressed bytes are read through a check of it.
    """
    head = raw.read(6)
    raw.seek(0)
    if head[:2] in (b"\x1f\x8b", b"BZ", b"\xfd7") and limits is not None and limits.deadline is not None:
        raw = _TimedRaw(raw, where, limits)  # type: ignore[assignment]
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head[:3] == b"BZh":
        return bz2.BZ2File(raw)
    if head == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw)
    if not head:
        raise ArchiveError(f"{where}: empty file, not a tar archive")
    return raw


class _Walk:
    """The decompressed stream with its budget: every read checked against the limits."""

    def __init__(self, stream: IO[bytes], where: str, limits: TarLimits):
        self.stream, self.where, self.limits = stream, where, limits
        self.pos = 0
        self.current: TarEntry | None = None

    def _check(self, n: int, what: str) -> None:
        lim = self.limits
        if lim.max_stream_bytes is not None and self.pos + n > lim.max_stream_bytes:
            raise ArchiveError(f"{self.where}: more than {lim.max_stream_bytes:,} bytes once decompressed "
                               f"(at {what}); refused")
        if lim.deadline is not None and time.monotonic() > lim.deadline:
            raise ArchiveError(f"{self.where}: reading took more than {lim.seconds or 0:g} s (the time cap); refused")

    def _read(self, n: int) -> bytes:
        try:
            return self.stream.read(n)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            raise ArchiveError(f"{self.where}: not a readable archive ({exc})") from None

    def read_exact(self, n: int, what: str) -> bytes:
        self._check(n, what)
        data = self._read(n)
        self.pos += len(data)
        if len(data) != n:
            raise ArchiveError(f"{self.where}: truncated (the archive ends inside {what})")
        return data

    def skip(self, n: int, what: str) -> None:
        while n > 0:
            step = min(n, _SKIP_BLOCK)
            self.read_exact(step, what)
            n -= step

    def header(self) -> bytes:
        self._check(BLOCK, "a header")
        buf = self._read(BLOCK)
        self.pos += len(buf)
        return buf


def _pax_records(data: bytes, where: str) -> dict[str, bytes]:
    """The ``"%d %s=%s\\n"`` records of a pax header (already bounded in size).

    A key given twice is refused: readers differ on which value wins.
    """
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos, pos + 21)
        try:
            length = int(data[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1 : end] != b"\n" or b"=" not in data[space:end]:
            raise ArchiveError(f"{where}: malformed pax extended header")
        key, _, value = data[space + 1 : end - 1].partition(b"=")
        name = key.decode(*_ENCODING)
        if name in records:
            raise ArchiveError(f"{where}: the pax key {shown(name)} twice in one header "
                               "(readers differ on which one counts); refused")
        records[name] = value
        pos = end
    return records


def _nul_terminated(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode(*_ENCODING)


def _check_keys(records: dict[str, bytes], allowed: frozenset[str], prefixes: tuple[str, ...], label: str,
                where: str, start: int) -> None:
    """Refuse pax keys outside the allow-list (see :data:`PAX_KEYS`)."""
    for key in records:
        if key not in allowed and not key.startswith(prefixes):
            detail = " (GNU tar and tarfile apply it to every member after it)" if label.startswith("a global") else ""
            raise ArchiveError(f"{where}: {label} with the key {shown(key, 60)} at byte {start:,}{detail}: "
                               "an archive that readers may read differently; refused")


def _check_one_name(pending: dict[str, bytes | str], seen_ext: set[bytes], where: str, start: int) -> None:
    """Refuse a member named both by a pax header and by a GNU long name / long link."""
    if tarfile.XHDTYPE in seen_ext and seen_ext & set(_GNU_LONG):
        raise ArchiveError(f"{where}: a pax header and a GNU long name for one member at byte {start:,} "
                           "(GNU tar and tarfile take the pax name, other readers the GNU one); refused")


def iter_tar(raw: IO[bytes], where: str, limits: TarLimits | None = None) -> Iterator[TarEntry]:
    """The members of the tar archive in ``raw`` (a binary file object), in archive order.

    ``where`` names the archive in messages. Raises :class:`ArchiveError` when the archive is
    corrupt, truncated, holds a sparse member or goes past ``limits`` (see the module docstring).
    """
    limits = limits or TarLimits()
    walk = _Walk(open_decompressed(raw, where, limits), where, limits)
    pending: dict[str, bytes | str] = {}  # pax / GNU long-name values for the next member
    seen_ext: set[bytes] = set()  # the kinds of extended header read for the next member
    index = 0
    while True:
        if walk.current is not None:  # the caller did not read the last member: skip its data
            entry, walk.current = walk.current, None
            walk.skip(entry.size + _padding(entry.size), f"data of {shown(entry.name)}")
        start = walk.pos
        buf = walk.header()
        if not buf or buf.count(0) == BLOCK:
            if index == 0 and not buf and start == 0:
                raise ArchiveError(f"{where}: empty, not a tar archive")
            if seen_ext:
                raise ArchiveError(f"{where}: an extended header with no member after it; refused")
            return  # end of archive (two zero blocks, or a plain end of stream as tarfile accepts)
        if len(buf) < BLOCK:
            if start == 0:
                raise ArchiveError(f"{where}: not a tar archive (only {len(buf)} bytes)")
            raise ArchiveError(f"{where}: truncated (the archive ends inside a header)")
        try:
            info = tarfile.TarInfo.frombuf(buf, *_ENCODING)
        except tarfile.HeaderError as exc:
            what = "not a tar archive" if start == 0 else f"bad tar header at byte {start:,}"
            raise ArchiveError(f"{where}: {what} ({exc})") from None
        if info.size < 0:
            raise ArchiveError(f"{where}: negative size in the header at byte {start:,}")
        if info.type in _PAX_TYPES or info.type in _GNU_LONG:
            label = "pax extended header" if info.type in _PAX_TYPES else "GNU long name"
            if info.size > limits.max_meta_bytes:
                raise ArchiveError(f"{where}: a {label} of {info.size:,} bytes at byte {start:,} "
                                   f"(at most {limits.max_meta_bytes:,}); refused unread")
            if info.type == tarfile.SOLARIS_XHDTYPE:
                raise ArchiveError(f"{where}: a Solaris extended header (type X) at byte {start:,}: "
                                   "readers differ on it; refused")
            data = walk.read_exact(info.size, f"a {label}")
            walk.skip(_padding(info.size), "padding")
            if info.type in seen_ext:
                raise ArchiveError(f"{where}: two {label}s for one member at byte {start:,} "
                                   "(readers differ on which one counts); refused")
            if info.type in _GNU_LONG:
                seen_ext.add(info.type)
                pending[_GNU_LONG[info.type]] = _nul_terminated(data)
                _check_one_name(pending, seen_ext, where, start)
                continue
            records = _pax_records(data, where)
            if any(k.startswith("GNU.sparse.") for k in records):
                raise ArchiveError(f"{where}: a sparse member (pax GNU.sparse) at byte {start:,}; refused")
            if info.type == tarfile.XGLTYPE:
                _check_keys(records, GLOBAL_PAX_KEYS, (), "a global pax header", where, start)
                continue  # only a comment: it names nothing and sizes nothing
            _check_keys(records, PAX_KEYS, PAX_KEY_PREFIXES, "a pax header", where, start)
            seen_ext.add(info.type)
            pending.update(records)
            _check_one_name(pending, seen_ext, where, start)
            continue
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise ArchiveError(f"{where}: {shown(info.name)} is a sparse member; refused")
        name, linkname, size = info.name, info.linkname, info.size
        if "path" in pending:
            p = pending["path"]
            name = p if isinstance(p, str) else p.decode(*_ENCODING)
        if "linkpath" in pending:
            p = pending["linkpath"]
            linkname = p if isinstance(p, str) else p.decode(*_ENCODING)
        if "size" in pending:
            value = pending["size"]
            if not (isinstance(value, bytes) and value.isdigit() and len(value) <= 20):
                raise ArchiveError(f"{where}: bad size in the pax header of {shown(name)}")
            size = int(value)
        pending, seen_ext = {}, set()
        if limits.max_members is not None and index >= limits.max_members:
            raise ArchiveError(f"{where}: more than {limits.max_members:,} members; refused")
        kind = _KINDS.get(info.type, "other")
        if kind == "dir":
            name = name.rstrip("/")
        entry = TarEntry(name, kind, size, linkname, index, walk.pos)
        # As tarfile: data follows regular files and unknown types, nothing else.
        if kind in ("file", "other"):
            entry._walk = walk
            walk.current = entry
        index += 1
        yield entry
