"""Files written whole or not at all, and file digests — shared by every module that saves.

:func:`atomic_write` writes through a temporary file beside the target
(``.<name>.facegan-tmp-<pid>-<rand>``, created with the usual permissions) and renames it over
the target only when the writer has finished, so a crash or Ctrl-C leaves either the old file or
the new one, never half of one. A failed write (disk full, read-only folder) removes the
temporary file and raises :class:`~facegan.errors.WriteError` naming the target.

Only SIGKILL (or a power cut) can leave a temporary file behind; its name carries the writer's
pid, so :func:`clean_stale_temps` can tell the leftovers of a dead process from a write still in
progress and remove them. Writers call it for their own target when they start.
:func:`cache_dir` is the one rule for where facegan keeps what it can rebuild.
:func:`check_output_file` refuses, before any work, an output path that cannot become a file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import IO, Callable

from facegan.errors import FaceganError, WriteError

#: The marker in every temporary file name of :func:`atomic_write`.
TMP_MARK = ".facegan-tmp-"
#: What a temporary file of :func:`atomic_write` looks like (a glob, for listing them).
TMP_GLOB = f".*{TMP_MARK}*"
_TMP_NAME = re.compile(r"^\.(?P<target>.+)" + re.escape(TMP_MARK) + r"(?P<pid>\d+)-[0-9a-f]+$")
# facegan <= 0.x named them ".<name>.<pid>-<8 hex>.tmp": recognised too, so old leftovers go.
_OLD_TMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")


def cache_dir() -> Path:
    """facegan's one cache folder (converted FID weights, speed checks): ``$FACEGAN_CACHE``, else
    ``$XDG_CACHE_HOME/facegan`` (``~/.cache/facegan``). Computed on each call, so a changed
    environment (a test's, a user's) is always honoured."""
    if os.environ.get("FACEGAN_CACHE"):
        return Path(os.environ["FACEGAN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facegan"


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path`` that :func:`clean_stale_temps` recognises."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def _write_error(path: Path, exc: OSError) -> WriteError:
    reason = exc.strerror or str(exc)
    hint = " (free some space, or write elsewhere)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return WriteError(f"{path}: cannot write it: {reason}{hint}")


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object], *, fsync: bool = False) -> Path:
    """Call ``write(f)`` on a binary file that becomes ``path`` only once ``write`` returned.

    ``fsync`` also forces the bytes to disk before the rename (checkpoints: survive a power cut).
    An :class:`OSError` on the way (disk full...) leaves ``path`` as it was and is raised as a
    :class:`~facegan.errors.WriteError` naming ``path``.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass  # never created (no folder, no space): nothing to remove
        if isinstance(exc, OSError) and not isinstance(exc, FaceganError):
            raise _write_error(path, exc) from exc
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of ``text`` in UTF-8."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return True  # cannot tell: keep the file
    return True


def clean_stale_temps(folder: str | os.PathLike, target_name: str | None = None) -> list[Path]:
    """Remove the temporary files :func:`atomic_write` left in ``folder`` when its process died.

    Only files named like ours (``.<target>.facegan-tmp-<pid>-<hex>``) whose pid is no longer a
    running process are removed — a write in progress (this or another live process) is left
    alone. ``target_name`` limits the sweep to the leftovers of that one target (e.g.
    ``"last.pt"``). Returns the removed paths; a missing folder is not an error.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = _TMP_NAME.match(entry.name) or _OLD_TMP_NAME.match(entry.name)
        if match is None or (target_name is not None and match["target"] != target_name):
            continue
        if _alive(int(match["pid"])) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except FileNotFoundError:
            pass  # another process cleaned it first
    return removed


def check_output_file(path: str | os.PathLike, *, suffix: str | None = None, what: str = "output") -> Path:
    """Refuse, before any work, an output ``path`` that cannot become a regular file.

    Raises :class:`FaceganError` naming ``path`` when it has the wrong ``suffix`` (e.g.
    ``".npz"``), is an existing folder or a FIFO/device/socket, or when one of its parent
    folders is in fact a file. An existing regular file is fine: writers replace it atomically.
    """
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise FaceganError(f"{path}: the {what} must be named *{suffix}")
    if path.is_dir():
        raise FaceganError(f"{path}: is a folder; give the name of the file to write")
    if path.exists() and not path.is_file():
        raise FaceganError(f"{path}: exists and is not a regular file (a FIFO, device or socket?): not replacing it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FaceganError(f"{path}: cannot be created: {parent} is a file, not a folder")
            break
    return path


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 4 MB blocks (``hashlib.file_digest`` needs 3.11)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
