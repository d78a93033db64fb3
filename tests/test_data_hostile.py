"""`facegan prepare` when things go wrong: a full disk, outputs that cannot be written, odd files in
the source, a killed run's leftovers, Ctrl-C — one line naming the file, exit 2, and nothing that
was finished lost."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facegan.data.cache as cache
import facegan.fileio as fileio
from facegan.cli import main
from facegan.data import PrepareConfig, prepare, sidecar_path, work_dir

QUIET = dict(progress=False, log=lambda msg: None)


def faces(folder: Path, n: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (70, 66, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


class FullDisk:
    """``open`` for :mod:`facegan.fileio` whose files refuse to be written once ``fail(name)``."""

    def __init__(self, fail):
        self.fail, self.refused = fail, []

    def __call__(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if "x" in mode and self.fail(Path(path).name):
            self.refused.append(Path(path).name)
            f.write = self._full
        return f

    @staticmethod
    def _full(data):
        raise OSError(errno.ENOSPC, "No space left on device")


def _prepare(src, out, *extra) -> list[str]:
    return ["prepare", str(src), "-o", str(out), "--quiet", "--workers", "1", "--chunk", "4", *extra]


def test_disk_full_while_writing_a_chunk_keeps_the_finished_ones(tmp_path, capsys, monkeypatch):
    src = faces(tmp_path / "src", 10)
    out = tmp_path / "c.npy"
    disk = FullDisk(lambda name: name.startswith(".chunk-000002.npy"))  # the third chunk's array
    monkeypatch.setattr(fileio, "open", disk, raising=False)
    assert main(_prepare(src, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"facegan: error: {work_dir(out)}/chunk-000002.npy: cannot write it: No space left on device")
    assert f"2 of 3 chunks are finished and kept: run the same command again to resume from {work_dir(out)}/" in err
    assert disk.refused and not out.exists()
    assert sorted(p.name for p in work_dir(out).glob("chunk-*")) == [
        "chunk-000000.json", "chunk-000000.npy", "chunk-000001.json", "chunk-000001.npy"]  # no temp left

    monkeypatch.undo()
    logs: list[str] = []
    report = prepare(src, out, PrepareConfig(workers=1, chunk=4), progress=False, log=logs.append)
    assert report.resumed_chunks == 2 and report.count == 10
    prepare(src, tmp_path / "fresh.npy", PrepareConfig(workers=1), **QUIET)
    assert np.array_equal(np.load(out), np.load(tmp_path / "fresh.npy"))


def test_disk_full_while_assembling_keeps_the_old_cache_and_every_chunk(tmp_path, capsys, monkeypatch):
    src = faces(tmp_path / "src", 6)
    out = tmp_path / "c.npy"
    np.save(out, np.zeros((1, 64, 64, 3), np.uint8))
    before = out.read_bytes()
    disk = FullDisk(lambda name: name.startswith(".c.npy.facegan-tmp-"))
    monkeypatch.setattr(fileio, "open", disk, raising=False)
    assert main(_prepare(src, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"facegan: error: {out}: cannot write it: No space left on device") and err.count("\n") == 1
    assert "2 of 2 chunks are finished and kept" in err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy", "c.npy.partial", "src"]  # no temp beside it


@pytest.mark.parametrize("make, message", [
    (lambda t: (t / "c.npy").mkdir(), "c.npy: is a folder"),
    (lambda t: (t / "c.json").mkdir(), "c.json: is a folder"),
    (lambda t: (t / "c.npy.partial").write_text("x"), "c.npy.partial: is in the way"),
    (lambda t: os.mkfifo(t / "c.npy"), "c.npy: exists and is not a regular file"),
])
def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path, capsys, monkeypatch, make, message):
    calls = []
    monkeypatch.setattr(cache, "prepare_image", lambda *a, **k: calls.append(a) or 1 / 0)
    src = faces(tmp_path / "src", 3)
    make(tmp_path)
    assert main(_prepare(src, tmp_path / "c.npy")) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not calls


def test_wrong_kinds_of_output_name_are_refused(tmp_path, capsys):
    src = faces(tmp_path / "src", 3)
    (tmp_path / "plain").write_text("x")
    assert main(_prepare(src, tmp_path / "c.txt")) == 2
    assert "c.txt: the cache (e.g. data/celeba64.npy) must be named *.npy" in capsys.readouterr().err
    assert main(_prepare(src, tmp_path / "plain" / "c.npy")) == 2
    assert "plain is a file, not a folder" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_fifos_devices_and_broken_links_in_the_source_are_listed_not_read(tmp_path):
    src = faces(tmp_path / "src", 4)
    os.mkfifo(src / "x.png")
    os.symlink("/dev/zero", src / "zero.png")
    os.symlink(src / "loop-b.png", src / "loop-a.png")
    os.symlink(src / "loop-a.png", src / "loop-b.png")
    os.symlink(src / "gone.png", src / "dangling.png")
    report = prepare(src, tmp_path / "c.npy", PrepareConfig(workers=1), **QUIET)
    assert report.count == 4
    reasons = dict(report.skipped)
    assert "FIFO" in reasons["x.png"] and "character device" in reasons["zero.png"]
    assert "link loop" in reasons["loop-a.png"] and "dangling link" in reasons["dangling.png"]
    listed = {s["name"] for s in report.meta["skipped"]}
    assert {"x.png", "zero.png", "loop-a.png", "loop-b.png", "dangling.png"} <= listed


def test_a_killed_runs_half_written_cache_is_swept(tmp_path):
    src = faces(tmp_path / "src", 3)
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process can have this pid
    stale = tmp_path / f".c.npy.facegan-tmp-{dead}-0123abcd"
    stale.write_bytes(b"\x93NUMPY half of 2.5 GB")
    prepare(src, tmp_path / "c.npy", PrepareConfig(workers=1), **QUIET)
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.npy", "src"]


def test_ctrl_c_says_where_the_chunks_are_and_that_the_same_command_resumes(tmp_path, monkeypatch):
    src = faces(tmp_path / "src", 10)
    real = cache.prepare_image

    def stop_in_chunk_3(raw, name, size=64):
        if name == "0009.png":
            raise KeyboardInterrupt
        return real(raw, name, size)

    monkeypatch.setattr(cache, "prepare_image", stop_in_chunk_3)
    logs: list[str] = []
    out = tmp_path / "c.npy"
    with pytest.raises(KeyboardInterrupt):
        prepare(src, out, PrepareConfig(workers=1, chunk=4), progress=False, log=logs.append)
    assert logs[-1] == ("prepare: interrupted; 2 of 3 chunks are finished and kept: run the same "
                        f"command again to resume from {work_dir(out)}/")
    assert not out.exists() and not sidecar_path(out).exists()
