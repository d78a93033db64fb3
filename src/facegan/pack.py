"""The submission archive: ``<student number>.tar.gz`` holding exactly 1,000 64x64 RGB images.

Layout (decided here, read by :func:`verify` and by anyone grading): one top-level folder named
after the student number, holding the images under their own file names::

    20251234.tar.gz
    └── 20251234/0000.png … 0999.png

A folder keeps many extracted submissions apart and never spills 1,000 files into the grader's
working directory; ``layout="flat"`` puts the images at the archive's root instead.

:func:`pack` checks the samples first (exactly ``count`` decodable ``size`` x ``size`` RGB images,
no two with identical pixels; every problem is listed by name), builds the archive, reads it back
with :func:`check_archive` (the same checks plus "same bytes as the samples"), and only then
writes it onto ``out`` atomically. Image files are stored as they are, not re-encoded. The
archive is reproducible: members in sorted order with fixed times, owners and modes, and a gzip
header without time or file name, so packing the same samples again gives the same bytes.

:func:`check_archive` is what ``pack --verify`` and ``grade`` run on an archive from anyone. It
never extracts anything and reads the archive once, in member order, through
:mod:`facegan.safetar` (headers bounded before they are read). It refuses absolute, ``..`` and
backslash paths, links and special files, non-image members, members over
:data:`MAX_IMAGE_BYTES`, more than ``count +`` :data:`EXTRA_MEMBERS` members, names that are
the same file once extracted on macOS or Windows (``a/./1.png`` and ``a/1.png``, ``A.png`` and
``a.png``), PNGs of more than :data:`MAX_PNG_CHUNKS` chunks and images whose header claims
another size (both before any pixel is decoded), and a reading time over ``seconds``. OS junk
(``.DS_Store``, ``._*``, ``__MACOSX/``, ``Thumbs.db``, ``desktop.ini``) is left out with a
warning. Every problem is listed, not just the first.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import struct
import tarfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Iterable, Literal

import numpy as np

from facegan.errors import BadImageError, FaceganError
from facegan.fileio import atomic_write, check_output_file, clean_stale_temps
from facegan.images import decode_image, is_image_name, open_regular, open_source
from facegan.safetar import ArchiveError, TarLimits, iter_tar
from facegan.safetext import shown

#: What the brief asks for.
DEFAULT_COUNT = 1000
DEFAULT_SIZE = 64
_STUDENT_ARCHIVE = re.compile(r"^(\d+)\.tar\.gz$")
_MAX_LISTED = 20  # problems shown in one error message; the count says how many more

#: Limits on what a submission may hold, checked from the headers before anything is read:
#: a 64x64 PNG is ~10 KB, so these leave room for any honest archive and none for a bomb.
MAX_IMAGE_BYTES = 1024 * 1024
EXTRA_MEMBERS = 16  # folders and the like beyond the required image count
#: An archive larger than this, on disk or decompressed, is refused (1,000 images of ~10 KB
#: take ~10 MB; this is 25 times that).
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
#: Chunks in one PNG: an honest 64x64 PNG has 3 to ~10; Pillow takes ~0.2 s over 80,000 empty
#: ones, which 1,000 padded images turn into minutes.
MAX_PNG_CHUNKS = 256
#: Seconds one archive may take to read and check (an honest one: ~1 s).
READ_SECONDS = 60.0
#: The modification time of every member of a packed archive (2000-01-01 UTC): fixed, so that
#: packing the same samples twice gives the same bytes.
PACK_MTIME = 946684800
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_OS_JUNK_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


@dataclass
class PackReport:
    """An archive that passed the checks."""

    archive: Path
    count: int
    bytes: int
    prefix: str
    """The folder inside the archive holding the images ('' for a flat archive)."""
    names: list[str]
    """Member names, in archive order."""
    warnings: list[str] = field(default_factory=list)


@dataclass
class ArchiveCheck:
    """Everything :func:`check_archive` found in one archive; ``ok`` when there is no problem.

    Names in ``problems`` and ``warnings`` are escaped (:func:`facegan.safetext.shown`).
    """

    bytes: int = 0
    names: list[str] = field(default_factory=list)
    """The image members' names, in archive order (as stored: may hold any character)."""
    prefix: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def student_archive_name(out: str | os.PathLike) -> tuple[str, str | None]:
    """``(folder name, warning)`` for archive ``out``: ``20251234.tar.gz`` -> ``("20251234", None)``.

    The folder name is the file name without ``.tar.gz``/``.tgz``; the warning says when that does
    not look like a student number. A name not ending in ``.tar.gz``/``.tgz`` is an error.
    """
    name = Path(out).name
    match = _STUDENT_ARCHIVE.match(name)
    if match:
        return match.group(1), None
    for suffix in (".tar.gz", ".tgz"):
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = name[: -len(suffix)]
            return stem, (f"{name}: the brief names the archive after your student number "
                          f"(e.g. -o 20251234.tar.gz); '{stem}' is not all digits")
    raise FaceganError(f"{out}: the submission is a .tar.gz: use -o <student number>.tar.gz")


def png_chunk_problem(data: bytes, limit: int = MAX_PNG_CHUNKS) -> str | None:
    """Why PNG ``data`` must not be decoded (more than ``limit`` chunks), else ``None``.

    Walks the chunk headers only (8 bytes each, at most ``limit + 1`` of them); a file that is not
    a PNG, or a broken chunk structure, is left to the decoder to name.
    """
    if not data.startswith(_PNG_SIGNATURE):
        return None
    pos, chunks = len(_PNG_SIGNATURE), 0
    while pos + 8 <= len(data):
        chunks += 1
        if chunks > limit:
            return f"a PNG of more than {limit} chunks (padding?); refused before decoding"
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IEND":
            return None
        pos += 12 + length
    return None


class _ImageChecks:
    """Checks images one by one (pack and verify share it): decodable, ``size`` x ``size``, RGB,
    no two with identical pixels. ``keep`` collects ``name -> (pixels, pixel sha256)``."""

    def __init__(self, size: int, keep: dict[str, tuple[np.ndarray, str]] | None = None):
        self.size, self.keep = size, keep
        self.seen: dict[str, str] = {}
        self.n = 0
        self.lossy: list[str] = []
        """Images stored as JPEG (escaped names): accepted, with a warning."""

    def problem(self, name: str, data: bytes) -> str | None:
        """The problem of image ``name`` (escaped in the message), or ``None`` when it passes."""
        self.n += 1
        label = shown(name)
        why = png_chunk_problem(data)
        if why:
            return f"{label}: {why}"
        try:
            img = decode_image(data, label, expect_size=(self.size, self.size))
        except BadImageError as exc:
            return f"{label}: {exc.reason}"
        if img.mode != "RGB":
            return f"{label}: mode {img.mode}, expected RGB (save it with .convert('RGB'))"
        if img.format == "JPEG":
            self.lossy.append(label)
        # Identical pixel content is a duplicate even when the files' bytes differ
        # (another PNG encoder or compression level): hash the decoded pixels.
        digest = hashlib.sha256(img.tobytes()).hexdigest()
        if digest in self.seen:
            return f"{label}: identical pixels to {shown(self.seen[digest])}"
        self.seen[digest] = name
        if self.keep is not None:
            self.keep[name] = (np.asarray(img), digest)
        return None


def _raise_problems(where: str, problems: list[str]) -> None:
    if not problems:
        return
    listed = "\n  ".join(problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    raise FaceganError(f"{where}: {len(problems)} problem(s):\n  {listed}{more}")


def _read_samples(samples_dir: str | os.PathLike, count: int, size: int) -> tuple[dict[str, bytes], list[str]]:
    """``(name -> bytes, warnings)`` of a samples folder that passes the checks, else FaceganError."""
    source = open_source(samples_dir)
    checks = _ImageChecks(size)
    files: dict[str, bytes] = {}
    problems: list[str] = []
    try:
        for name, data in source.iter_bytes():
            files[name] = data
            why = checks.problem(name, data)
            if why:
                problems.append(why)
    except BadImageError as exc:
        problems.append(str(exc))
    finally:
        source.close()
    if checks.n != count:
        problems.insert(0, f"{checks.n} images, expected exactly {count}")
    _raise_problems(str(samples_dir), problems)
    warnings = []
    if source.hidden:
        listed = ", ".join(shown(n) for n in source.hidden[:5])
        warnings.append(f"{samples_dir}: left out {len(source.hidden)} hidden file(s) (the operating system's "
                        f"or an editor's: {listed}{', ...' if len(source.hidden) > 5 else ''})")
    if source.skipped:
        listed = ", ".join(shown(n) for n, _ in source.skipped[:5])
        warnings.append(f"{samples_dir}: left out {len(source.skipped)} files that are not images "
                        f"({listed}{', ...' if len(source.skipped) > 5 else ''})")
    return files, warnings


def is_os_junk(name: str) -> bool:
    """Files an operating system adds by itself: ``.DS_Store``, ``._*``, ``__MACOSX/``,
    ``Thumbs.db``, ``desktop.ini``."""
    parts = PurePosixPath(name).parts
    base = parts[-1] if parts else ""
    return "__MACOSX" in parts or base.startswith("._") or base.lower() in _OS_JUNK_FILES


def extracted_name(name: str) -> str:
    """The file a member name becomes once extracted on any system, for finding collisions:
    ``./`` and doubled slashes dropped, trailing dots and spaces dropped (Windows), Unicode
    canonically decomposed (macOS) and case-folded (macOS and Windows)."""
    parts = [p.rstrip(". ") or p for p in name.split("/") if p not in ("", ".")]
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", "/".join(parts)).casefold())


def _unsafe(name: str) -> bool:
    return name.startswith("/") or "\\" in name or ".." in name.split("/")


#: Names a student's tools write: the brief's is ``20251234/0000.png``. Anything deeper or
#: longer is not a submission, and Windows cannot extract paths past ~260 characters.
MAX_NAME_DEPTH = 8
MAX_NAME_CHARS = 255
_WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                               *(f"lpt{i}" for i in range(10))})
# ':' silently writes to an NTFS alternate stream ('a:b.png' becomes an empty 'a'); the other
# characters Windows forbids ('<>"|?*') make its extraction fail loudly, and HTML-hostile names
# are already shown escaped everywhere, so they are left to the other checks.
_WINDOWS_FORBIDDEN = {":"}


def name_problem(name: str) -> str | None:
    """Why member ``name`` is not one a student's tools could have written, else ``None``.

    Refused: more than :data:`MAX_NAME_CHARS` characters or :data:`MAX_NAME_DEPTH` parts; bytes
    that are not UTF-8; control, format (bidi overrides, zero-width) and unassigned characters
    (ESC, BEL, NUL: a terminal or a file browser shows them as something else); a Windows
    reserved name (``CON.png``, ``com1``) or a ``:`` (``a:b.png`` is an NTFS stream there).
    """
    if len(name) > MAX_NAME_CHARS:
        return f"a name of {len(name):,} characters (at most {MAX_NAME_CHARS})"
    parts = [p for p in name.split("/") if p]
    if len(parts) > MAX_NAME_DEPTH:
        return f"{len(parts)} folders deep (at most {MAX_NAME_DEPTH})"
    for ch in name:
        if 0xDC80 <= ord(ch) <= 0xDCFF:
            return "a name that is not valid UTF-8"
        category = unicodedata.category(ch)
        if category[0] == "C" or category in ("Zl", "Zp"):
            return f"a name holding the invisible or control character U+{ord(ch):04X}"
        if ch in _WINDOWS_FORBIDDEN:
            return "a name holding ':' (extracted on Windows, 'a:b.png' is a hidden stream of a file 'a')"
    for part in parts:
        if part.split(".")[0].rstrip(" ").lower() in _WINDOWS_RESERVED:
            return f"{part!r} is a reserved device name on Windows"
    return None


class _MemberChecks:
    """One archive's members checked as they stream past (see :func:`check_archive`)."""

    def __init__(self, count: int, size: int, keep, expected: dict[str, bytes] | None):
        self.count, self.expected = count, expected
        self.images = _ImageChecks(size, keep)
        self.problems: list[str] = []
        self.names: list[str] = []
        self.junk: list[str] = []
        self.members = 0
        self.extracted: dict[str, str] = {}

    def member(self, entry) -> None:
        label = shown(entry.name)
        if is_os_junk(entry.name):
            if entry.kind != "dir":
                self.junk.append(label)
            return
        self.members += 1
        if self.members > self.count + EXTRA_MEMBERS:
            raise ArchiveError(f"more than {self.count + EXTRA_MEMBERS} members; expected {self.count} images")
        if _unsafe(entry.name):
            self.problems.append(f"{label}: unsafe member name (absolute, '..' or a backslash)")
            return
        why = name_problem(entry.name)
        if why:
            self.problems.append(f"{label}: unsafe member name: {why}")
            return
        if entry.kind == "dir":
            return
        if entry.kind != "file":
            self.problems.append(f"{label}: a {entry.kind}: a link or special file, not an image")
            return
        key = extracted_name(entry.name)
        if key in self.extracted:
            self.problems.append(f"{label}: the same file as {shown(self.extracted[key])} once extracted "
                                 "(names equal up to ./, case or accents)")
            return
        self.extracted[key] = entry.name
        if not is_image_name(entry.name):
            self.problems.append(f"{label}: not an image file")
            return
        if entry.size > MAX_IMAGE_BYTES:
            self.problems.append(f"{label}: {entry.size:,} bytes; an image here is at most {MAX_IMAGE_BYTES:,}")
            return
        data = entry.read()
        self.names.append(entry.name)
        if self.expected is not None and self.expected.get(entry.name) != hashlib.sha256(data).digest():
            self.problems.append(f"{label}: not the bytes of the sample packed")
        why = self.images.problem(entry.name, data)
        if why:
            self.problems.append(why)


def check_archive(archive: str | os.PathLike | IO[bytes], count: int = DEFAULT_COUNT, size: int = DEFAULT_SIZE, *,
                  expected: dict[str, bytes] | None = None, keep: dict[str, tuple[np.ndarray, str]] | None = None,
                  seconds: float | None = READ_SECONDS, name: str | None = None) -> ArchiveCheck:
    """Every problem of ``archive`` (a path, or a binary file object) as a submission.

    Never raises for what the archive holds: problems (and warnings about left-out OS junk) are
    in the returned :class:`ArchiveCheck`. ``expected`` (member -> sha256 of the bytes packed)
    also checks the very bytes; ``keep`` receives each passing image's pixels and pixel hash;
    ``seconds`` caps the reading time; ``name`` is the archive's name in messages.
    """
    where = name or shown(archive if not hasattr(archive, "read") else "archive")
    result = ArchiveCheck()
    try:
        f = open_regular(archive) if not hasattr(archive, "read") else archive
    except FaceganError as exc:
        result.problems.append(str(exc).removeprefix(f"{os.fspath(archive)}: "))
        return result
    checks = _MemberChecks(count, size, keep, expected)
    try:
        result.bytes = os.fstat(f.fileno()).st_size if _is_file(f) else len(f.getbuffer())
        if result.bytes > MAX_ARCHIVE_BYTES:
            raise ArchiveError(f"{result.bytes:,} bytes, more than a submission can need ({MAX_ARCHIVE_BYTES:,})")
        if f.read(2) != b"\x1f\x8b":
            raise ArchiveError("not a readable .tar.gz: not gzip-compressed (make it with 'facegan pack')")
        f.seek(0)
        limits = TarLimits.timed(seconds, max_stream_bytes=MAX_ARCHIVE_BYTES,
                                 max_members=2 * (count + EXTRA_MEMBERS))  # room for ._* twins
        for entry in iter_tar(f, where, limits):
            checks.member(entry)
    except ArchiveError as exc:
        checks.problems.append(str(exc).removeprefix(f"{where}: "))
    finally:
        if f is not archive:
            f.close()
    result.names, result.problems = checks.names, checks.problems
    if checks.images.n != count:
        result.problems.insert(0, f"{checks.images.n} images, expected exactly {count}")
    tops = {PurePosixPath(n).parts[0] if len(PurePosixPath(n).parts) > 1 else "" for n in result.names}
    if len(tops) > 1:
        result.problems.append("images are spread over several top folders "
                               f"({', '.join(shown(t) if t else '(root)' for t in sorted(tops))})")
    result.prefix = tops.pop() if len(tops) == 1 else ""
    if expected is not None and set(expected) != set(result.names):
        result.problems.append("the archive's members are not the files that were packed")
    if checks.junk:
        listed = ", ".join(checks.junk[:5]) + (", ..." if len(checks.junk) > 5 else "")
        result.warnings.append(f"left out {len(checks.junk)} file(s) the operating system added ({listed})")
    if checks.images.lossy:
        result.warnings.append(jpeg_warning(checks.images.lossy))
    return result


def jpeg_warning(labels: list[str]) -> str:
    """The warning for images stored as JPEG (``labels``: escaped names)."""
    listed = ", ".join(labels[:5]) + (", ..." if len(labels) > 5 else "")
    return (f"{len(labels)} image(s) stored as JPEG ({listed}): JPEG is lossy, so these are not the pixels "
            "your generator made; the brief's samples are PNG (facegan sample writes PNG)")


def _is_file(f) -> bool:
    try:
        return stat.S_ISREG(os.fstat(f.fileno()).st_mode)
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False


def verify(archive: str | os.PathLike, count: int = DEFAULT_COUNT, size: int = DEFAULT_SIZE,
           expected: dict[str, bytes] | None = None,
           keep: dict[str, tuple[np.ndarray, str]] | None = None) -> PackReport:
    """:func:`check_archive`, raising FaceganError listing every problem; the report otherwise."""
    check = check_archive(archive, count, size, expected=expected, keep=keep)
    _raise_problems(shown(archive, 1000), check.problems)
    return PackReport(Path(archive), len(check.names), check.bytes, check.prefix, check.names, check.warnings)


def _tar_bytes(files: Iterable[tuple[str, bytes]], prefix: str) -> bytes:
    """A reproducible ``.tar.gz`` of ``files`` (in the order given) under folder ``prefix``."""

    def info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.size, ti.mtime = kind, mode, size, PACK_MTIME
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    buf = io.BytesIO()
    # filename="" and mtime=0: the gzip header would otherwise carry the temporary name and the time
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
            if prefix:
                tf.addfile(info(prefix, tarfile.DIRTYPE, 0o755))
            for name, data in files:
                tf.addfile(info(f"{prefix}/{name}" if prefix else name, tarfile.REGTYPE, 0o644, len(data)),
                           io.BytesIO(data))
    return buf.getvalue()


def pack(samples_dir: str | os.PathLike, out: str | os.PathLike, *, count: int = DEFAULT_COUNT,
         size: int = DEFAULT_SIZE, layout: Literal["folder", "flat"] = "folder") -> PackReport:
    """Check the images of ``samples_dir`` and write them to ``out`` (``<student>.tar.gz``).

    The archive is built in memory and checked by :func:`check_archive` (with the sample bytes
    expected) before it is written atomically: an existing ``out`` is only replaced by a
    verified archive. Returns the :class:`PackReport` of the verified archive.
    """
    out = Path(out)
    folder, warning = student_archive_name(out)
    check_output_file(out, what="archive")
    # a pack killed mid-write (SIGKILL) left its temporary file beside the archive: sweep it
    swept = clean_stale_temps(out.parent, out.name)
    files, warnings = _read_samples(samples_dir, count, size)
    if warning:
        warnings.insert(0, warning)
    if swept:
        warnings.append(f"removed {len(swept)} temporary file(s) of an earlier pack that was killed "
                        f"({', '.join(shown(p.name) for p in swept[:3])})")
    prefix = folder if layout == "folder" else ""
    names = sorted(files)
    data = _tar_bytes(((n, files[n]) for n in names), prefix)
    expected = {(f"{prefix}/{n}" if prefix else n): hashlib.sha256(files[n]).digest() for n in names}
    check = check_archive(io.BytesIO(data), count, size, expected=expected, name=str(out))
    _raise_problems(f"{out} (not written)", check.problems)
    atomic_write(out, lambda f: f.write(data), fsync=True)
    return PackReport(out, len(check.names), len(data), check.prefix, check.names, warnings + check.warnings)


def other_archives(archive: str | os.PathLike) -> list[Path]:
    """Other submission archives (``*.tar.gz``/``*.tgz``) beside ``archive``, sorted: what an
    earlier run with another ``--student`` left there (``facegan run`` names them to the user:
    handing in the wrong one would be easy). They are not removed: they may be someone's work."""
    archive = Path(archive)
    try:
        entries = sorted(archive.parent.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.name != archive.name and p.name.lower().endswith((".tar.gz", ".tgz"))
            and not p.name.startswith(".") and p.is_file()]
