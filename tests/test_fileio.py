"""Atomic writes: a failed write keeps the old file and names the target; a killed writer's
temporary files are recognised and swept, a live writer's are not; bad output paths are refused."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

from facegan.errors import FaceganError, WriteError
from facegan.fileio import atomic_write, atomic_write_text, check_output_file, clean_stale_temps, temp_path


def test_disk_full_keeps_the_old_file_and_names_the_target(tmp_path):
    target = tmp_path / "ref.npz"
    target.write_bytes(b"old")

    def full_disk(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match=r"ref\.npz: cannot write it: No space left on device") as exc:
        atomic_write(target, full_disk)
    assert isinstance(exc.value, OSError) and isinstance(exc.value, FaceganError)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.npz"]  # no temporary file left


def test_a_parent_that_is_a_file_is_a_write_error(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(WriteError, match="plain/out.txt: cannot write it"):
        atomic_write_text(tmp_path / "plain" / "out.txt", "hello")


_KILLED_WRITER = """
import os, sys, time
from facegan.fileio import atomic_write
def write(f):
    f.write(b"partial")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], write)
"""


@pytest.mark.timeout(60)
def test_sigkill_leftovers_are_swept_live_writes_are_not(tmp_path):
    target = tmp_path / "last.pt"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    (leftover,) = [p for p in tmp_path.iterdir() if p.name.startswith(".last.pt")]
    assert clean_stale_temps(tmp_path, "last.pt") == []  # its writer is still running
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert leftover.exists() and not target.exists()

    mine = temp_path(tmp_path / "last.pt")  # a write in progress in this very process
    mine.write_bytes(b"busy")
    other = tmp_path / (leftover.name.replace("last.pt", "best.pt"))
    leftover.rename(other)
    old_style = tmp_path / f".last.pt.{proc.pid}-0123abcd.tmp"  # earlier versions' names
    old_style.write_bytes(b"x")
    unrelated = tmp_path / ".last.pt.notes"
    unrelated.write_bytes(b"keep")

    assert clean_stale_temps(tmp_path, "last.pt") == [old_style]
    assert other.exists() and mine.exists() and unrelated.exists()
    assert clean_stale_temps(tmp_path) == [other]  # every target
    assert mine.exists() and unrelated.exists()
    assert clean_stale_temps(tmp_path / "absent") == []


def test_output_paths_that_cannot_become_a_file_are_refused(tmp_path):
    (tmp_path / "ref.npz").mkdir()
    with pytest.raises(FaceganError, match=r"ref\.npz: is a folder"):
        check_output_file(tmp_path / "ref.npz", suffix=".npz")
    os.mkfifo(tmp_path / "pipe.npz")
    with pytest.raises(FaceganError, match=r"pipe\.npz: exists and is not a regular file"):
        check_output_file(tmp_path / "pipe.npz", suffix=".npz")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FaceganError, match=r"file is a file, not a folder"):
        check_output_file(tmp_path / "file" / "deeper" / "ref.npz")
    with pytest.raises(FaceganError, match=r"the output must be named \*\.npz"):
        check_output_file(tmp_path / "ref.txt", suffix=".npz")
    (tmp_path / "old.npz").write_bytes(b"x")
    assert check_output_file(tmp_path / "old.npz", suffix=".npz") == tmp_path / "old.npz"
    assert check_output_file(tmp_path / "new" / "dir" / "x.npz", suffix=".npz").name == "x.npz"
