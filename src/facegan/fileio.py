"""Files written whole or not at all, and file digests — shared by every module that saves.

:func:`atomic_write` writes through a temporary file beside the target (``.<name>.<pid>-<rand>.tmp``,
created with the usual permissions) and renames it over the target only when the writer has
finished, so a crash or Ctrl-C leaves either the old file or the new one, never half of one.
Leftovers of a killed process match :data:`TMP_GLOB`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import IO, Callable

#: What a temporary file of :func:`atomic_write` looks like (for sweeping a killed run's leftovers).
TMP_GLOB = ".*.tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object], *, fsync: bool = False) -> Path:
    """Call ``write(f)`` on a binary file that becomes ``path`` only once ``write`` returned.

    ``fsync`` also forces the bytes to disk before the rename (checkpoints: survive a power cut).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of ``text`` in UTF-8."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 4 MB blocks (``hashlib.file_digest`` needs 3.11)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
