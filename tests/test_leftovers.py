"""Leftovers and quiet surprises: what a killed pack left is swept and said, a zip member lying
about its size is inflated no further than it declares, sampling memory does not grow with -n."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from facegan.cli import main
from facegan.errors import BadImageError
from facegan.images import open_source


def _samples(folder, n):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return folder


def test_pack_sweeps_what_a_killed_pack_left(tmp_path, capsys):
    samples = _samples(tmp_path / "s", 4)
    out = tmp_path / "20250001.tar.gz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    left = tmp_path / f".{out.name}.facegan-tmp-{pid}-abcd1234"
    left.write_bytes(b"half an archive")
    alive = tmp_path / f".{out.name}.facegan-tmp-{os.getpid()}-abcd1234"  # a write in progress: kept
    alive.write_bytes(b"x")
    assert main(["pack", str(samples), "-o", str(out), "--count", "4"]) == 0
    err = capsys.readouterr().err
    assert "removed 1 temporary file(s) of an earlier pack that was killed" in err and left.name in err
    assert not left.exists() and alive.exists() and out.exists()


def test_a_zip_member_lying_about_its_size_is_not_inflated(tmp_path):
    """10 KB declared, 64 MiB inflated: ZipFile.read inflates it whole (~150 MB peak) before its
    CRC check fails; the reader stops at the declared size."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", bytes(64 << 20))
    data = bytearray(buf.getvalue())
    struct.pack_into("<I", data, 22, 10240)  # the local header's size
    struct.pack_into("<I", data, data.rfind(b"PK\x01\x02") + 24, 10240)  # the central directory's
    path = tmp_path / "liar.zip"
    path.write_bytes(bytes(data))
    assert path.stat().st_size < 1 << 20
    src = open_source(path)
    tracemalloc.start()
    try:
        with pytest.raises(BadImageError, match=r"liar.zip:a.png: cannot be read"):
            list(src.iter_bytes())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_sampling_memory_does_not_grow_with_n(tmp_path, monkeypatch):
    from facegan import sample as sample_mod
    from facegan.models.registry import build
    from facegan.train import checkpoint

    g = build("generator", "dcgan", {"z_dim": 4, "ngf": 4, "resolution": 64})
    torch.save({"format": checkpoint.EXPORT_FORMAT, "config": {"arch": "dcgan", "g": {"z_dim": 4, "ngf": 4, "resolution": 64}},
                "G_ema": g.state_dict(), "which": "ema"}, tmp_path / "g.pt")
    written = []
    real = sample_mod.write_pngs
    monkeypatch.setattr(sample_mod, "write_pngs", lambda images, *a: (written.append(len(images)), real(images, *a))[1])
    sample_mod.sample_to_folder(tmp_path / "g.pt", tmp_path / "warm", 2, progress=False)  # one-off imports
    batch, peaks = 10, {}
    for n in (100, 200):
        written.clear()
        tracemalloc.start()
        try:
            paths = sample_mod.sample_to_folder(tmp_path / "g.pt", tmp_path / f"s{n}", n, batch_size=batch, progress=False)
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(paths) == n and max(written) == batch and sum(written) == n
    one_batch = batch * 64 * 64 * 3
    # all at once, 200 images held 200 x 12 KB = 2.4 MB of pixels, twice; now the peak is a few
    # batches and does not grow with n
    assert peaks[200] < peaks[100] + one_batch and peaks[200] < 200 * 64 * 64 * 3 / 2
    from facegan.models.sampling import generate

    last = np.asarray(Image.open(tmp_path / "s200" / "0199.png"))
    assert np.array_equal(last, generate(g, [199])[0])  # the same image as one batch would give


@pytest.mark.timeout(60)
def test_a_fifo_named_on_grades_command_line_is_an_error_before_anything_is_scored(tmp_path, capsys):
    """Decided: an argument the grader typed that cannot be graded (a FIFO, a non-archive) is exit
    2 naming it; inside a submissions folder the same entry stays an 'ignored' row."""
    from gradekit import StandIn, images, reference, submission

    ref = reference(tmp_path / "ref.npz", StandIn(), images(100, 40))
    good = submission(tmp_path / "20250001.tar.gz", images(1, 8))
    os.mkfifo(tmp_path / "20250002.tar.gz")
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "r"
    assert main(["grade", str(good), str(tmp_path / "20250002.tar.gz"), str(tmp_path / "notes.txt"),
                 "--ref", str(ref), "-o", str(out), "--count", "8", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot grade what was named:" in err and "20250002.tar.gz (a FIFO (named pipe), not a regular file)" in err
    assert "notes.txt (" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # refused before anything was scored or written


def test_empty_gzip_members_cannot_outrun_the_time_cap():
    """400,000 empty gzip members before a good archive: gzip reads them all inside one read,
    where the walk's own checks never ran. With the cap already past, the walk must stop after
    reading a small part of the file (not all 8 MB first)."""
    import gzip
    import tarfile
    import time

    from facegan.safetar import ArchiveError, TarLimits, iter_tar

    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tf:
        info = tarfile.TarInfo("a.png")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    data = gzip.compress(b"", mtime=0) * 400_000 + gzip.compress(inner.getvalue(), mtime=0)

    class Counting(io.BytesIO):
        consumed = 0

        def read(self, n=-1):
            out = super().read(n)
            Counting.consumed += len(out)
            return out

    assert [e.name for e in iter_tar(io.BytesIO(data), "ok")] == ["a.png"]  # readable without a cap
    with pytest.raises(ArchiveError, match=r"x.tar.gz: reading took more than 60 s \(the time cap\)"):
        list(iter_tar(Counting(data), "x.tar.gz", TarLimits(deadline=time.monotonic() - 1, seconds=60)))
    assert Counting.consumed < len(data) // 8


def test_prepare_never_spools_members_no_image_needs(tmp_path):
    """40 members of 60 MiB each in a 3 MB .tar.gz were copied to disk (2.4 GB) before any was
    decoded; now a large member is copied only if its header is an image's that can need its size."""
    import tarfile

    from facegan.data.spool import spool_tar

    good = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(good, "PNG")
    padded = good.getvalue() + bytes(4 << 20)  # a real PNG header, 4 MiB of padding after it
    path = tmp_path / "photos.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in [("a.png", good.getvalue()), ("zeros.jpg", bytes(8 << 20)), ("padded.png", padded)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    assert path.stat().st_size < 1 << 20
    spool = spool_tar(open_source(path), tmp_path / "blob")
    assert (tmp_path / "blob").stat().st_size == len(good.getvalue())  # only the real image was copied
    assert spool.read_bytes("a.png") == good.getvalue()
    with pytest.raises(BadImageError, match="zeros.jpg: cannot be read \\(not an image"):
        spool.read_bytes("zeros.jpg")
    with pytest.raises(BadImageError, match=r"padded.png: cannot be read \(4,194,[0-9,]+ bytes for a 64x64 image"):
        spool.read_bytes("padded.png")
    spool.remove()


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_an_image_archive_of_mostly_junk_members_is_refused_while_listing(tmp_path, monkeypatch, suffix):
    """2,000,000 members that cannot be images kept fid listing for minutes; past
    MAX_JUNK_MEMBERS (here lowered to 50) the listing stops naming the archive."""
    import tarfile

    from facegan import images as images_mod
    from facegan.errors import FaceganError

    monkeypatch.setattr(images_mod, "MAX_JUNK_MEMBERS", 50)
    good = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good, "PNG")

    def build(path, junk):
        files = [(f"img{i}.png", good.getvalue()) for i in range(3)] + [(f"j{i}.png", b"") for i in range(junk)]
        if suffix == ".zip":
            with zipfile.ZipFile(path, "w") as zf:
                for name, data in files:
                    zf.writestr(name, data)
        else:
            with tarfile.open(path, "w:gz") as tf:
                for name, data in files:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        return path

    assert len(open_source(build(tmp_path / f"ok{suffix}", 50))) == 53  # at the limit: listed
    with pytest.raises(FaceganError, match=f"bad{suffix}: more than 50 members that cannot be images"):
        open_source(build(tmp_path / f"bad{suffix}", 51))


def test_other_students_archives_beside_the_new_one_are_found(tmp_path):
    """``facegan run --student B`` after a run with --student A names A's archive (the pipeline
    logs each one as a warning) instead of leaving it there unannounced."""
    from facegan.pack import other_archives

    for name in ("20250001.tar.gz", "20250002.tar.gz", "old.TGZ", ".hidden.tar.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.tar.gz").mkdir()
    assert [p.name for p in other_archives(tmp_path / "20250002.tar.gz")] == ["20250001.tar.gz", "old.TGZ"]
    assert other_archives(tmp_path / "missing" / "x.tar.gz") == []
