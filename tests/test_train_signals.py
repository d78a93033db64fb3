"""Ctrl-C and SIGTERM: the run writes last.pt, exits cleanly (no traceback), and resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from facegan.train.checkpoint import load


def _start(data, out):
    cmd = [sys.executable, "-m", "facegan", "train", "--data", str(data), "--out", str(out), "--resolution", "16",
           "--g.z-dim", "8", "--g.ngf", "4", "--d.ndf", "4", "--batch", "8", "--kimg", "10000", "--tick-kimg", "0.016",
           "--grid-kimg", "1000", "--precision", "fp32", "--bn-batches", "1", "--device", "cpu"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}), cmd


def _wait_for_ticks(out, proc, n=2, limit=120):
    stats = out / "stats.jsonl"
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if stats.exists() and len(stats.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.communicate()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("training never ticked")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_writes_checkpoint_and_exits_cleanly(tmp_path, sig):
    data = tmp_path / "tiny.npy"
    np.save(data, np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8))
    out = tmp_path / "run"
    proc, cmd = _start(data, out)
    _wait_for_ticks(out, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "stopped by signal" in stdout and "--resume" in stdout
    state = load(out / "last.pt")
    assert state["step"] >= 2
    last = json.loads((out / "stats.jsonl").read_text().splitlines()[-1])
    assert last == {**last, "event": "interrupted", "signal": int(sig), "step": state["step"]}
    # resume continues from there, a little further
    kimg = (state["nimg"] + 16) / 1000
    done = subprocess.run([sys.executable, "-m", "facegan", "train", "--out", str(out), "--resume",
                           "--kimg", str(kimg)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming at kimg" in done.stdout
    assert load(out / "last.pt")["nimg"] == state["nimg"] + 16
