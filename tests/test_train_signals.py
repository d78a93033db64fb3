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


# --- Ctrl-C while the main thread is inside one long call (an emulated bf16 step, Inception) ---
# Blocking SIGINT in the main thread for a while stands in for a long C call: the kernel then
# hands the signal to another thread, and Python's own handler cannot run until the call ends.
_CHILD = r"""
import signal, sys, time
import facegan.train.step as step_mod
import facegan.train.checkpoint as ckpt_mod
from facegan.cli import main

mode = sys.argv[1]
calls = [0]
real_call = step_mod.GanStep.__call__

def stuck(seconds):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    print("STUCK", file=sys.stderr, flush=True)
    time.sleep(seconds)
    print("UNSTUCK", file=sys.stderr, flush=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

def slow_step(self, *a, **k):
    calls[0] += 1
    if mode == "step" and calls[0] == 3:
        stuck(4)
    return real_call(self, *a, **k)

step_mod.GanStep.__call__ = slow_step
real_save = ckpt_mod.save_atomic

def slow_save(state, path):
    if mode == "write" and path.name == "last.pt":
        print("WRITING", file=sys.stderr, flush=True)
        time.sleep(2)
    return real_save(state, path)

ckpt_mod.save_atomic = slow_save
if mode == "tune":
    import facegan.train.autotune as at
    at._time_candidate = lambda *a: stuck(60) or 1.0
args = sys.argv[2:]
sys.exit(main(args))
"""


def _child(tmp_path, mode, *extra):
    data = tmp_path / "tiny.npy"
    np.save(data, np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8))
    cmd = [sys.executable, "-c", _CHILD, mode, "train", "--data", str(data), "--out", str(tmp_path / "run"),
           "--resolution", "16", "--g.z-dim", "8", "--g.ngf", "4", "--d.ndf", "4", "--batch", "8", "--kimg", "1000",
           "--tick-kimg", "0.016", "--grid-kimg", "1000", "--bn-batches", "1", "--device", "cpu", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "FACEGAN_CACHE": str(tmp_path / "cache")})


def _read_until(stream, marker, proc, limit=120):
    """Lines of ``stream`` up to the one holding ``marker``."""
    seen = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        line = stream.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return seen
    proc.kill()
    pytest.fail(f"no {marker!r} in {''.join(seen)}")


@pytest.mark.slow
def test_ctrl_c_is_acknowledged_during_a_long_step_and_the_run_saves(tmp_path):
    proc = _child(tmp_path, "step", "--precision", "fp32", "--matmul-convs", "off", "--threads", "1")
    _read_until(proc.stderr, "STUCK", proc)
    proc.send_signal(signal.SIGINT)
    after = "".join(_read_until(proc.stderr, "UNSTUCK", proc))
    # said while the main thread was still inside the long call
    assert "saving last.pt" in after and "press Ctrl-C again to quit without saving" in after
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stderr and "stopped by signal" in stdout
    assert load(tmp_path / "run" / "last.pt")["step"] >= 3


@pytest.mark.slow
def test_a_second_ctrl_c_while_last_pt_is_written_keeps_it(tmp_path):
    proc = _child(tmp_path, "write", "--precision", "fp32", "--matmul-convs", "off", "--threads", "1")
    _wait_for_ticks(tmp_path / "run", proc, n=1)
    proc.send_signal(signal.SIGINT)
    _read_until(proc.stderr, "WRITING", proc)
    proc.send_signal(signal.SIGINT)  # the user insists while the checkpoint is being written
    stdout, stderr = proc.communicate(timeout=120)
    assert "finishing the write of" in stderr and "Traceback" not in stderr
    assert proc.returncode in (130, 128 + signal.SIGINT)
    assert load(tmp_path / "run" / "last.pt")["step"] >= 1  # complete and readable


@pytest.mark.slow
def test_a_second_ctrl_c_quits_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    proc = _child(tmp_path, "step", "--precision", "fp32", "--matmul-convs", "off", "--threads", "1",
                  "--ckpt-minutes", "0.0001")  # a last.pt at every tick
    _read_until(proc.stderr, "STUCK", proc)
    assert (tmp_path / "run" / "last.pt").is_file()
    good = load(tmp_path / "run" / "last.pt")["step"]
    proc.send_signal(signal.SIGINT)
    _read_until(proc.stderr, "saving last.pt", proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert "UNSTUCK" not in stderr  # it did not wait for the long call to end
    assert proc.returncode == 128 + signal.SIGINT and "quit without saving" in stderr
    assert "the last checkpoint written stays" in stderr
    assert load(tmp_path / "run" / "last.pt")["step"] == good


@pytest.mark.slow
def test_ctrl_c_during_the_speed_check_stops_at_once(tmp_path):
    proc = _child(tmp_path, "tune")  # precision/matmul/threads left to auto: the check runs
    _read_until(proc.stderr, "STUCK", proc)
    out_so_far = proc.stdout.readline()
    assert out_so_far.startswith("speed check: a warm-up step") and " s each" in out_so_far  # said first, with its time
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)  # the "call" would last 60 s
    assert "stopping the speed check (nothing to save yet)" in stderr and "UNSTUCK" not in stderr
    assert proc.returncode == 128 + signal.SIGINT
