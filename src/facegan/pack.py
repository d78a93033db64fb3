"""The submission archive: ``<student number>.tar.gz`` holding exactly 1,000 64x64 RGB images.

Layout (decided here, read by :func:`verify` and by anyone grading): one top-level folder named
after the student number, holding the images under their own file names::

    20251234.tar.gz
    └── 20251234/0000.png … 0999.png

A folder keeps many extracted submissions apart and never spills 1,000 files into the grader's
working directory; ``layout="flat"`` puts the images at the archive's root instead.

:func:`pack` checks the samples first (exactly ``count`` decodable ``size`` x ``size`` RGB images,
no two with identical pixels; every problem is listed by name), writes the archive to a temporary
file beside ``out``, reads it back with :func:`verify` (the same checks plus "same bytes as the
samples"), and only then renames it onto ``out``. Image files are stored as they are, not
re-encoded.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Literal

import numpy as np

from facegan.errors import BadImageError, FaceganError
from facegan.images import decode_image, is_image_name, open_source

#: What the brief asks for.
DEFAULT_COUNT = 1000
DEFAULT_SIZE = 64
_STUDENT_ARCHIVE = re.compile(r"^(\d+)\.tar\.gz$")
_MAX_LISTED = 20  # problems shown in one error message; the count says how many more


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


def _pixel_problems(items: Iterable[tuple[str, bytes]], count: int, size: int,
                    keep: dict[str, tuple[np.ndarray, str]] | None = None) -> tuple[list[str], int]:
    """Check (name, bytes) images; ``(problems, n_images)``. Shared by pack and verify.

    ``keep`` collects ``name -> (uint8 (size, size, 3) pixels, sha256 of the pixels)`` of the
    images that pass, for callers that go on to use them (grading) without decoding again.
    """
    problems: list[str] = []
    seen: dict[str, str] = {}
    n = 0
    for name, data in items:
        n += 1
        try:
            img = decode_image(data, name, expect_size=(size, size))
        except BadImageError as exc:
            problems.append(f"{name}: {exc.reason}")
            continue
        if img.mode != "RGB":
            problems.append(f"{name}: mode {img.mode}, expected RGB (save it with .convert('RGB'))")
            continue
        # Identical pixel content is a duplicate even when the files' bytes differ
        # (another PNG encoder or compression level): hash the decoded pixels.
        digest = hashlib.sha256(img.tobytes()).hexdigest()
        if digest in seen:
            problems.append(f"{name}: identical pixels to {seen[digest]}")
        else:
            seen[digest] = name
            if keep is not None:
                keep[name] = (np.asarray(img), digest)
    if n != count:
        problems.insert(0, f"{n} images, expected exactly {count}")
    return problems, n


def _raise_problems(where: str, problems: list[str]) -> None:
    if not problems:
        return
    shown = "\n  ".join(problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    raise FaceganError(f"{where}: {len(problems)} problem(s):\n  {shown}{more}")


def check_samples(samples_dir: str | os.PathLike, count: int = DEFAULT_COUNT,
                  size: int = DEFAULT_SIZE) -> tuple[list[str], list[str]]:
    """``(image names, warnings)`` of a samples folder that passes the checks, else FaceganError."""
    source = open_source(samples_dir)
    problems, _ = _pixel_problems(((n, source.read_bytes(n)) for n in source.names), count, size)
    _raise_problems(str(samples_dir), problems)
    warnings = []
    if source.skipped:
        listed = ", ".join(n for n, _ in source.skipped[:5])
        warnings.append(f"{samples_dir}: left out {len(source.skipped)} files that are not images "
                        f"({listed}{', ...' if len(source.skipped) > 5 else ''})")
    return source.names, warnings


#: Limits on what a submission may hold, checked from the tar headers before anything is read:
#: a 64x64 PNG is ~10 KB, so these leave room for any honest archive and none for a bomb.
MAX_IMAGE_BYTES = 1024 * 1024
EXTRA_MEMBERS = 16  # folders and the like beyond the required image count


def safe_members(tf: tarfile.TarFile, archive: Path, count: int = DEFAULT_COUNT) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the image members of an open archive, never extracted to disk.

    Refuses, naming the member, anything a submission should not hold: absolute or ``..``
    paths, links and special files, non-image files, members over :data:`MAX_IMAGE_BYTES`,
    and more than ``count + EXTRA_MEMBERS`` members in all.
    """
    for i, m in enumerate(tf):
        if i >= count + EXTRA_MEMBERS:
            raise FaceganError(f"{archive}: more than {count + EXTRA_MEMBERS} members; expected {count} images")
        path = PurePosixPath(m.name)
        if m.name.startswith("/") or ".." in path.parts:
            raise FaceganError(f"{archive}: unsafe member name {m.name!r}")
        if m.isdir():
            continue
        if not m.isfile():
            raise FaceganError(f"{archive}: {m.name} is a link or special file, not an image")
        if not is_image_name(m.name):
            raise FaceganError(f"{archive}: {m.name} is not an image file")
        if m.size > MAX_IMAGE_BYTES:
            raise FaceganError(f"{archive}: {m.name} is {m.size:,} bytes; an image here is at most {MAX_IMAGE_BYTES:,}")
        f = tf.extractfile(m)
        yield m.name, f.read() if f is not None else b""


def verify(archive: str | os.PathLike, count: int = DEFAULT_COUNT, size: int = DEFAULT_SIZE,
           expected: dict[str, bytes] | None = None,
           keep: dict[str, tuple[np.ndarray, str]] | None = None) -> PackReport:
    """Read ``archive`` back: exactly ``count`` decodable ``size``x``size`` RGB images, no
    duplicates, all in one top folder or all at the root; with ``expected`` (member -> sha256
    of the file bytes) also the very bytes that were packed. Raises FaceganError listing problems.
    ``keep`` receives each image's pixels and pixel hash (see :func:`_pixel_problems`).
    """
    archive = Path(archive)
    names: list[str] = []
    digests: dict[str, bytes] = {}

    def items() -> Iterator[tuple[str, bytes]]:
        for name, data in safe_members(tf, archive, count):
            names.append(name)
            digests[name] = hashlib.sha256(data).digest()
            yield name, data

    try:
        with tarfile.open(archive, "r:gz") as tf:
            problems, _ = _pixel_problems(items(), count, size, keep)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise FaceganError(f"{archive}: not a readable .tar.gz ({exc})") from None
    tops = {PurePosixPath(n).parts[0] if len(PurePosixPath(n).parts) > 1 else "" for n in names}
    if len(tops) > 1:
        problems.append(f"images are spread over several top folders ({', '.join(sorted(tops))})")
    if expected is not None:
        if set(expected) != set(names):
            problems.append("the archive's members are not the files that were packed")
        problems += [f"{n}: bytes differ from the sample packed" for n in names
                     if n in expected and expected[n] != digests[n]]
    _raise_problems(str(archive), problems)
    return PackReport(archive, len(names), archive.stat().st_size, tops.pop() if tops else "", names)


def pack(samples_dir: str | os.PathLike, out: str | os.PathLike, *, count: int = DEFAULT_COUNT,
         size: int = DEFAULT_SIZE, layout: Literal["folder", "flat"] = "folder") -> PackReport:
    """Check the images of ``samples_dir`` and write them to ``out`` (``<student>.tar.gz``).

    Writes atomically (temporary file, verified read-back, rename); an existing ``out`` is only
    replaced by a verified archive. Returns the :class:`PackReport` of the verified archive.
    """
    out = Path(out)
    folder, warning = student_archive_name(out)
    if out.is_dir():
        raise FaceganError(f"{out}: is a folder; give the archive's file name")
    names, warnings = check_samples(samples_dir, count, size)
    if warning:
        warnings.insert(0, warning)
    prefix = folder if layout == "folder" else ""
    source = open_source(samples_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    expected: dict[str, bytes] = {}
    now = int(time.time())
    try:
        with open(tmp, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tf:
                if prefix:
                    d = tarfile.TarInfo(prefix)
                    d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, now
                    tf.addfile(d)
                for name in names:
                    data = source.read_bytes(name)
                    member = f"{prefix}/{name}" if prefix else name
                    info = tarfile.TarInfo(member)
                    info.size, info.mode, info.mtime = len(data), 0o644, now
                    tf.addfile(info, io.BytesIO(data))
                    expected[member] = hashlib.sha256(data).digest()
            raw.flush()
            os.fsync(raw.fileno())
        report = verify(tmp, count, size, expected)
        os.replace(tmp, out)
    finally:
        source.close()
        tmp.unlink(missing_ok=True)
    report.archive = out
    report.warnings = warnings
    return report
