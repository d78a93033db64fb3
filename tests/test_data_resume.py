"""``prepare`` never leaves a partial cache at the output path, and resumes after Ctrl-C / kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facegan.data.cache as cache
from facegan.data import PrepareConfig, prepare, sidecar_path, work_dir

QUIET = dict(progress=False, log=lambda msg: None)


def faces(folder: Path, n: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = rng.integers(0, 256, (70 + i % 9, 66 + i % 5, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:04d}.png")


@pytest.fixture
def counting(monkeypatch):
    """Count prepare_image calls; ``counting.stop_at`` (a name) raises KeyboardInterrupt there."""
    real = cache.prepare_image

    class Counter:
        calls = 0
        stop_at: str | None = None

        def __call__(self, raw, name, size=64):
            if name == self.stop_at:
                raise KeyboardInterrupt
            self.calls += 1
            return real(raw, name, size)

    c = Counter()
    monkeypatch.setattr(cache, "prepare_image", c)
    return c


def test_interrupt_keeps_previous_output_and_resume_finishes(tmp_path, counting):
    faces(tmp_path / "old", 5, seed=1)
    faces(tmp_path / "new", 20, seed=2)
    out = tmp_path / "c.npy"
    prepare(tmp_path / "old", out, PrepareConfig(workers=1), **QUIET)
    before, side_before = out.read_bytes(), sidecar_path(out).read_text()

    counting.stop_at = "0009.png"  # in the third chunk of 4
    cfg = PrepareConfig(workers=1, chunk=4)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "new", out, cfg, **QUIET)
    assert out.read_bytes() == before and sidecar_path(out).read_text() == side_before
    assert len(list(work_dir(out).glob("chunk-*.json"))) == 2

    counting.stop_at, counting.calls = None, 0
    logs: list[str] = []
    report = prepare(tmp_path / "new", out, cfg, progress=False, log=logs.append)
    assert report.resumed_chunks == 2 and counting.calls == 20 - 8
    assert any("resuming: 2 of 5 chunks" in m for m in logs)
    prepare(tmp_path / "new", tmp_path / "fresh.npy", PrepareConfig(workers=1), **QUIET)
    assert np.array_equal(np.load(out), np.load(tmp_path / "fresh.npy"))
    assert not work_dir(out).exists()


def test_a_changed_file_costs_its_chunk_and_a_changed_list_or_no_resume_restarts(tmp_path, counting):
    faces(tmp_path / "src", 12)
    out = tmp_path / "c.npy"
    cfg = PrepareConfig(workers=1, chunk=4)
    counting.stop_at = "0010.png"
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "src", out, cfg, **QUIET)
    # an edited file makes its own chunk stale, not the others
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(tmp_path / "src" / "0001.png")
    counting.stop_at, counting.calls = None, 0
    logs: list[str] = []
    report = prepare(tmp_path / "src", out, cfg, progress=False, log=logs.append)
    assert report.resumed_chunks == 1 and counting.calls == 8  # chunk 0 redone, chunk 2 done
    assert any("input files of 1 finished chunk(s) changed" in m for m in logs)
    assert np.load(out)[1].max() == 0

    counting.stop_at = "0010.png"
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "src", out, cfg, **QUIET)
    faces(tmp_path / "src" / "more", 1)  # one more file: another list, another run
    counting.stop_at, counting.calls = None, 0
    logs = []
    prepare(tmp_path / "src", out, cfg, progress=False, log=logs.append)
    assert counting.calls == 13 and any("discarding" in m for m in logs)

    counting.stop_at = "0010.png"
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "src", out, cfg, **QUIET)
    counting.stop_at, counting.calls = None, 0
    prepare(tmp_path / "src", out, PrepareConfig(workers=1, chunk=4, resume=False), **QUIET)
    assert counting.calls == 13


def test_a_file_rewritten_with_the_same_size_and_mtime_is_not_trusted(tmp_path, counting):
    faces(tmp_path / "src", 8)
    out = tmp_path / "c.npy"
    cfg = PrepareConfig(workers=1, chunk=4)
    counting.stop_at = "0006.png"
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "src", out, cfg, **QUIET)
    victim = tmp_path / "src" / "0002.png"
    st = victim.stat()
    with Image.open(victim) as im:
        blank = np.zeros((im.height, im.width, 3), np.uint8)
    victim.write_bytes(_png_same_length(blank, st.st_size))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # as rsync -t or a careful tool leaves it
    assert victim.stat().st_size == st.st_size and victim.stat().st_mtime_ns == st.st_mtime_ns
    counting.stop_at, counting.calls = None, 0
    report = prepare(tmp_path / "src", out, cfg, **QUIET)
    assert report.resumed_chunks == 0 and counting.calls == 8
    assert np.load(out)[2].max() == 0  # the new content, not the cached old one


def _png_same_length(image: np.ndarray, length: int) -> bytes:
    """A PNG of ``image`` padded (with a private ancillary chunk) to exactly ``length`` bytes."""
    import io
    import struct
    import zlib

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    png = buf.getvalue()
    pad = length - len(png) - 12  # a chunk is 4 length + 4 type + data + 4 crc
    assert pad >= 0, "the replacement must be smaller than the original"
    body = b"\0" * pad
    chunk = struct.pack(">I", pad) + b"prVt" + body + struct.pack(">I", zlib.crc32(b"prVt" + body))
    return png[:-12] + chunk + png[-12:]  # before IEND


def test_corrupt_chunk_is_redone(tmp_path, counting):
    faces(tmp_path / "src", 8)
    out = tmp_path / "c.npy"
    counting.stop_at = "0006.png"
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "src", out, PrepareConfig(workers=1, chunk=2), **QUIET)
    (work_dir(out) / "chunk-000001.npy").write_bytes(b"\x93NUMPY garbage")  # e.g. a power cut
    counting.stop_at, counting.calls = None, 0
    report = prepare(tmp_path / "src", out, PrepareConfig(workers=1, chunk=2), **QUIET)
    assert report.resumed_chunks == 2 and counting.calls == 4


# --- real processes, real signals -----------------------------------------------------------

_SLOW_RUN = textwrap.dedent("""
    import sys, time
    import facegan.data.cache as d
    real = d.prepare_image
    def slow(raw, name, size=64):  # forked workers inherit the patched function
        time.sleep(0.04)
        return real(raw, name, size)
    d.prepare_image = slow
    from facegan.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _start(src: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", _SLOW_RUN, "prepare", str(src), "-o", str(out),
           "--workers", "2", "--chunk", "4", "--quiet"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, like a terminal job


def _wait_for_chunks(out: Path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while len(list(work_dir(out).glob("chunk-*.json"))) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no chunk finished in 60 s"
        time.sleep(0.02)


def _running(pid: str) -> bool:
    """Alive and not a zombie waiting for a reaper (Linux /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


@pytest.mark.timeout(120)
def test_sigkill_leaves_no_output_and_a_rerun_resumes(tmp_path):
    faces(tmp_path / "src", 80)
    out = tmp_path / "c.npy"
    proc = _start(tmp_path / "src", out)
    _wait_for_chunks(out, 2, proc)
    has_proc = sys.platform.startswith("linux") and shutil.which("pgrep") is not None
    workers = (subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
               .stdout.split() if has_proc else [])
    os.kill(proc.pid, signal.SIGKILL)  # the parent only: no chance to clean up
    _, err = proc.communicate()
    assert not out.exists() and not sidecar_path(out).exists()
    if has_proc:  # the workers do not outlive their parent
        assert len(workers) == 2
        deadline = time.monotonic() + 10
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_running, workers))
    report = prepare(tmp_path / "src", out, PrepareConfig(workers=2, chunk=4), **QUIET)
    assert report.resumed_chunks >= 2 and report.count == 80
    prepare(tmp_path / "src", tmp_path / "ref.npy", PrepareConfig(workers=1), **QUIET)
    assert np.array_equal(np.load(out), np.load(tmp_path / "ref.npy"))


@pytest.mark.timeout(120)
def test_ctrl_c_exits_130_with_a_message_and_no_output(tmp_path):
    faces(tmp_path / "src", 80)
    out = tmp_path / "c.npy"
    proc = _start(tmp_path / "src", out)
    _wait_for_chunks(out, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "facegan: interrupted" in err
    assert "run the same command again to resume" in err
    assert not out.exists() and len(list(work_dir(out).glob("chunk-*.json"))) >= 1
