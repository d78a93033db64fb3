"""What `facegan train` shows on a terminal (run on a pseudo-terminal, as a student sees it)."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest


def _on_a_terminal(argv, cols=100, timeout=180):
    """Run ``argv`` with stdout and stderr on a pseudo-terminal ``cols`` wide; all it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": str(cols)}
    proc = subprocess.Popen(argv, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=timeout) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_minutes_bar_shows_total_percentage_one_speed_and_a_moving_time_left(tmp_path):
    data = tmp_path / "tiny.npy"
    np.save(data, np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8))
    text = _on_a_terminal([sys.executable, "-m", "facegan", "train", "--data", str(data), "--out",
                           str(tmp_path / "run"), "--resolution", "16", "--g.z-dim", "8", "--g.ngf", "4",
                           "--d.ndf", "4", "--batch", "8", "--minutes", "0.1", "--tick-kimg", "0.016",
                           "--grid-kimg", "1000", "--bn-batches", "1", "--device", "cpu", "--precision", "fp32",
                           "--matmul-convs", "off", "--threads", "1"])
    frames = [f for f in re.split(r"[\r\n]", text) if f.startswith("train ")]
    assert frames, text
    # the total and the percentage: "train  40%|####      | 0.0/0.1 min [00:03 left] kimg 0.1, 93 img/s ..."
    assert all(re.match(r"train +\d+%\|.*\| [\d.]+/0\.1 min \[", f) for f in frames), frames[-3:]
    assert frames[-1].startswith("train 100%")
    # one speed: the bar's own rate is not shown beside the tick's img/s
    assert all(f.count("/s") <= 1 for f in frames), [f for f in frames if f.count("/s") > 1][:2]
    assert any("img/s" in f for f in frames)
    # the time left is redrawn with the bar, not once per tick
    lefts = {m for f in frames for m in re.findall(r"\[(\d\d:\d\d) left\]", f)}
    assert len(lefts) >= 3, frames
    assert max(len(f) for f in frames) <= 100
