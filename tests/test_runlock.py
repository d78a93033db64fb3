"""One process at a time in a run folder: the second says who holds it and exits 2; a lock left
by a killed process is recognised (pid and its start time) and taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from facegan.cli import main
from facegan.errors import FaceganError
from facegan.runlock import LOCK_NAME, _start_time, run_lock

HOLD = """
import sys, time
from facegan.runlock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def _train_args(tmp_path, out):
    data = tmp_path / "c.npy"
    if not data.exists():
        np.save(data, np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8))
    return ["train", "--data", str(data), "--out", str(out), "--kimg", "0.008", "--resolution", "8",
            "--g.z-dim", "4", "--g.ngf", "4", "--d.ndf", "4", "--batch", "8", "--no-progress", "--threads", "1"]


@pytest.mark.timeout(300)
def test_a_second_run_into_a_held_folder_says_who_holds_it_and_a_killed_holder_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(_train_args(tmp_path, out)) == 2
        err = capsys.readouterr().err
        assert f"{out}: in use by another facegan process (pid {holder.pid} on {socket.gethostname()}" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (out / "last.pt").exists() and not (out / "stats.jsonl").exists()  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)  # as a crash would: the lock stays behind
        holder.wait()
    assert (out / LOCK_NAME).exists()
    assert main(_train_args(tmp_path, out)) == 0
    err = capsys.readouterr().err
    assert f"took over the lock of a process that is gone (pid {holder.pid}" in err
    assert (out / "last.pt").exists() and not (out / LOCK_NAME).exists()  # released on the way out


def _plant(folder, **record):
    folder.mkdir(exist_ok=True)
    base = {"pid": os.getpid(), "started": _start_time(os.getpid()), "host": socket.gethostname(),
            "time": time.time(), "command": "facegan train --out x"}
    (folder / LOCK_NAME).write_text(json.dumps({**base, **record}))


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path):
    said = []
    _plant(tmp_path / "r", pid=1, started="0")  # pid 1 is alive, but started at another time
    with run_lock(tmp_path / "r", say=said.append) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert len(said) == 1 and "pid 1 on" in said[0] and not (tmp_path / "r" / LOCK_NAME).exists()


def test_locks_from_another_host_or_unreadable_are_not_taken(tmp_path):
    _plant(tmp_path / "a", pid=12345, host="gpu-node-7")
    with pytest.raises(FaceganError, match=r"in use by another facegan process \(pid 12345 on gpu-node-7.*remove .*"
                                           + LOCK_NAME):
        with run_lock(tmp_path / "a"):
            pass
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / LOCK_NAME).write_bytes(b"\xff\xfe garbage")
    os.utime(tmp_path / "b" / LOCK_NAME, (time.time() - 60, time.time() - 60))
    with pytest.raises(FaceganError, match="cannot be read; if no facegan process uses this folder, remove it"):
        with run_lock(tmp_path / "b"):
            pass


def test_the_lock_is_released_when_the_block_fails_and_is_reentrant(tmp_path):
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path / "r"):
            with run_lock(tmp_path / "r") as inner:  # the command, then the training loop
                assert inner is None
            assert (tmp_path / "r" / LOCK_NAME).exists()
            raise RuntimeError("boom")
    assert not (tmp_path / "r" / LOCK_NAME).exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(FaceganError, match="is a file"):
        with run_lock(tmp_path / "f"):
            pass
