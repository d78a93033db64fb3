"""One process at a time in a run folder: ``facegan train --out run`` started twice at once would
interleave ``stats.jsonl`` and leave ``last.pt`` from either.

:func:`run_lock` creates ``<folder>/.facegan-lock`` exclusively (``O_CREAT | O_EXCL``, which
also holds on NFS) holding who took it: pid, the pid's start time, host, command and time. A
second process finds it and stops with one line saying who holds the folder. The lock is removed
when the holder leaves, however it leaves, except by SIGKILL or a power cut; such a *stale* lock
is recognised — same host, and no live process with that pid *and* that start time (a pid reused
by another program does not count) — and taken over with a message. A lock taken on another host
cannot be checked from here: the message names the host and the file to remove.

Taking over a stale lock is serialised by a short :func:`fcntl.flock` on the folder itself, so
two processes that both find the same stale lock cannot both win.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from facegan.errors import FaceganError

LOCK_NAME = ".facegan-lock"


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields after the last ')'
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, started: str | None) -> bool:
    """Whether ``pid`` is a running process that started at ``started`` (when known)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # another user's process: it exists
    now = _start_time(pid)
    return started is None or now is None or now == started


def _holder(lock: Path) -> dict:
    """What the lock file says (an empty dict when it cannot be read: being written, damaged)."""
    try:
        data = json.loads(lock.read_bytes()[:4096].decode("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def describe(holder: dict) -> str:
    """``pid 1234 on host, since 2026-12-07 02:10:00 UTC (facegan train --out run)``."""
    since = holder.get("time")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if isinstance(since, (int, float)) else "?"
    cmd = str(holder.get("command", ""))[:120]
    return (f"pid {holder.get('pid', '?')} on {str(holder.get('host', '?'))[:60]}, since {when}"
            + (f" ({cmd})" if cmd else ""))


def _is_stale(holder: dict) -> bool:
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    return not _alive(pid, holder.get("started"))


def _create(lock: Path, record: dict) -> bool:
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f)
    return True


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, enabled: bool = True, say=None) -> Iterator[Path | None]:
    """Hold ``folder``'s lock for the ``with`` block (creating the folder); see the module docstring.

    Raises :class:`FaceganError` naming the holder when another live process holds it. ``say``
    (default: print to stderr) reports taking over a stale lock. ``enabled=False`` does nothing
    (the other ranks of a distributed run: rank 0 holds the lock for them).
    """
    if not enabled:
        yield None
        return
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FaceganError(f"{folder}: is a file; --out takes the run folder (it is created)")
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    record = {"pid": os.getpid(), "started": _start_time(os.getpid()), "host": socket.gethostname(),
              "time": time.time(), "command": "facegan " + " ".join(sys.argv[1:])[:500]}
    if not _create(lock, record):
        mine = _holder(lock)
        if mine.get("pid") == record["pid"] and mine.get("host") == record["host"] \
                and mine.get("started") == record["started"]:
            yield None  # this process holds it already (the command, then the training loop)
            return
        _take_over_if_stale(folder, lock, record, say or (lambda m: print(m, file=sys.stderr, flush=True)))
    try:
        yield lock
    finally:
        if _holder(lock).get("pid") == record["pid"] and _holder(lock).get("time") == record["time"]:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


def _take_over_if_stale(folder: Path, lock: Path, record: dict, say) -> None:
    import fcntl

    guard = os.open(folder, os.O_RDONLY)  # the folder itself: no guard file left behind
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one taker at a time; released when it is closed
        holder = _holder(lock)
        if not holder and lock.exists() and time.time() - lock.stat().st_mtime < 5:
            time.sleep(0.2)  # being written by its owner this very moment
            holder = _holder(lock)
        if lock.exists() and not _is_stale(holder) and holder:
            raise FaceganError(f"{folder}: in use by another facegan process ({describe(holder)}); wait for it to "
                               f"finish or stop it, or use another --out. If it is not running any more, remove {lock}")
        if lock.exists() and not holder:
            raise FaceganError(f"{folder}: locked by {lock}, which cannot be read; if no facegan process uses this "
                               "folder, remove it")
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        if holder:
            say(f"facegan: {folder}: took over the lock of a process that is gone ({describe(holder)})")
        if not _create(lock, record):
            raise FaceganError(f"{folder}: in use by another facegan process ({describe(_holder(lock))})")
    finally:
        os.close(guard)
