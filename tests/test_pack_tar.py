"""``safetar``: tar archives read in one pass, every header bounded before it is read."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
import tracemalloc

import pytest

from facegan import images
from facegan.errors import FaceganError
from facegan.images import open_source
from facegan.safetar import ArchiveError, TarLimits, iter_tar


def _header(name: str, type_: bytes, size: int) -> bytes:
    """One 512-byte header announcing ``size`` bytes (GNU format: base-256 sizes allowed)."""
    info = tarfile.TarInfo(name)
    info.type, info.size = type_, size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _targz(path, files: dict[str, bytes], fmt=tarfile.PAX_FORMAT):
    with tarfile.open(path, "w:gz", format=fmt) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _walk(path, limits=None):
    with open(path, "rb") as f:
        return [(e.name, e.kind, e.read() if e.kind == "file" else None) for e in iter_tar(f, str(path), limits)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("type_, label", [(tarfile.XHDTYPE, "pax extended header"),
                                           (tarfile.XGLTYPE, "pax extended header"),
                                           (tarfile.GNUTYPE_LONGNAME, "GNU long name"),
                                           (tarfile.GNUTYPE_LONGLINK, "GNU long name")])
def test_a_tiny_archive_declaring_a_64_gib_extended_header_is_refused_unread(tmp_path, type_, label):
    bomb = tmp_path / "20250001.tar.gz"
    bomb.write_bytes(gzip.compress(_header("PaxHeader/x", type_, 64 << 30), mtime=0))
    assert bomb.stat().st_size < 100  # tarfile would try to read 64 GiB into memory
    with pytest.raises(ArchiveError, match=f"a {label} of 68,719,476,736 bytes.*refused unread"):
        _walk(bomb)
    with pytest.raises(FaceganError, match="20250001.tar.gz: a .* of 68,719,476,736 bytes"):
        open_source(bomb)  # the reader fid/prepare use refuses it the same way


def test_a_real_large_pax_header_is_refused_without_being_held_in_memory(tmp_path):
    path = tmp_path / "big-pax.tar.gz"
    _targz(path, {"x/" + "a" * (4 << 20) + ".png": b"abc"})  # a 4 MB path in a pax header
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match="pax extended header of 4,194,3"):
            _walk(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # refused from its header: the 4 MB were never read


def test_sparse_members_are_refused(tmp_path):
    old = tmp_path / "gnu-sparse.tar"
    old.write_bytes(_header("s.png", tarfile.GNUTYPE_SPARSE, 0) + b"\0" * 1024)
    with pytest.raises(ArchiveError, match="sparse member"):
        _walk(old)
    pax = tmp_path / "pax-sparse.tar.gz"
    with tarfile.open(pax, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("s.png")
        info.size, info.pax_headers = 3, {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                          "GNU.sparse.realsize": str(32 << 30)}
        tf.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(ArchiveError, match="sparse member"):
        _walk(pax)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_members_come_out_as_tarfile_reads_them(tmp_path, fmt):
    long = "d/" + "n" * 150 + ".png"  # past the 100-byte name field: pax, GNU long name or ustar prefix
    files = {"b.png": b"1" * 700, long: b"22", "a.png": b"", "c/x.png": b"3" * 512}
    if fmt == tarfile.USTAR_FORMAT:
        files.pop(long)
        files["d" * 120 + "/x.png"] = b"22"
    path = _targz(tmp_path / "t.tar.gz", files, fmt)
    got = _walk(path)
    with tarfile.open(path) as tf:
        want = [(m.name, "file", tf.extractfile(m).read()) for m in tf]
    assert got == want and [g[0] for g in got] == list(files)  # archive order, not sorted


def test_non_utf8_names_survive_and_are_shown_escaped(tmp_path):
    raw = b"20250001/caf\xe9-\x1b[2J.png"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tf:
        info = tarfile.TarInfo(raw.decode("utf-8", "surrogateescape"))
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    path = tmp_path / "n.tar"
    path.write_bytes(buf.getvalue())
    [(name, kind, data)] = _walk(path)
    assert name.encode("utf-8", "surrogateescape") == raw and data == b"x"
    from facegan.safetext import shown

    assert shown(name) == "20250001/caf\\xe9-\\x1b[2J.png"


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"plain text, not a tar", "not a tar archive"),
    (gzip.compress(_header("a.png", tarfile.REGTYPE, 5000))[:-10], "not a readable archive"),
    (_header("a.png", tarfile.REGTYPE, 5000) + b"x" * 100, "truncated"),
    (_header("a.png", tarfile.REGTYPE, 1) + b"x" * 512 + b"garbage!" * 64, "bad tar header at byte 1,024"),
], ids=["empty", "text", "cut-gzip", "cut-data", "garbage"])
def test_broken_archives_name_the_reason(tmp_path, data, reason):
    path = tmp_path / "broken.tar"
    path.write_bytes(data)
    with pytest.raises(ArchiveError, match=reason):
        _walk(path)


def test_limits_on_members_bytes_and_time(tmp_path):
    path = _targz(tmp_path / "t.tar.gz", {f"{i}.png": b"x" * 1000 for i in range(5)})
    assert len(_walk(path, TarLimits(max_members=5))) == 5
    with pytest.raises(ArchiveError, match="more than 4 members"):
        _walk(path, TarLimits(max_members=4))
    with pytest.raises(ArchiveError, match="more than 4,000 bytes once decompressed"):
        _walk(path, TarLimits(max_stream_bytes=4000))
    with pytest.raises(ArchiveError, match=r"more than 0\.5 s \(the time cap\)"):
        _walk(path, TarLimits(deadline=time.monotonic() - 1, seconds=0.5))  # already past


def test_unread_members_are_skipped(tmp_path):
    path = _targz(tmp_path / "t.tar.gz", {"a.png": b"a" * 3000, "b.png": b"b" * 10, "c.png": b"c"})
    with open(path, "rb") as f:
        got = [(e.name, e.read()) for e in iter_tar(f, "t") if e.name != "a.png"]
    assert got == [("b.png", b"b" * 10), ("c.png", b"c")]


def test_image_source_reads_a_tar_once_in_archive_order(tmp_path, monkeypatch):
    files = {"z.png": b"zz", "notes.txt": b"n", "a.png": b"aa", "m/b.png": b"bb", "a2.png": b"old"}
    path = _targz(tmp_path / "unsorted.tar.gz", files)
    opened = []
    real_open = images.open_regular
    monkeypatch.setattr(images, "open_regular", lambda p: (opened.append(p), real_open(p))[1])
    src = open_source(path)
    assert src.names == ["a.png", "a2.png", "m/b.png", "z.png"]  # sorted, as for a folder
    assert src.skipped == [("notes.txt", "not an image file")]
    opened.clear()
    assert list(src.iter_bytes()) == [("z.png", b"zz"), ("a.png", b"aa"), ("m/b.png", b"bb"), ("a2.png", b"old")]
    assert len(opened) == 1
    opened.clear()
    for name in ("z.png", "a.png", "m/b.png", "a2.png"):  # archive order: one pass
        assert src.read_bytes(name) == files[name]
    assert len(opened) == 1
    assert src.read_bytes("z.png") == b"zz" and len(opened) == 2  # backwards: reopened
    src.close()


def test_a_repeated_tar_name_reads_the_last_copy_everywhere(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("a.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    path = tmp_path / "dup.tar"
    path.write_bytes(buf.getvalue())
    src = open_source(path)
    assert src.names == ["a.png"]
    assert src.read_bytes("a.png") == b"second" and list(src.iter_bytes()) == [("a.png", b"second")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["x.tar.gz", "x.zip"])
def test_an_archive_that_is_a_fifo_is_refused_without_blocking(tmp_path, name):
    import os

    os.mkfifo(tmp_path / name)  # opening it for reading the usual way would wait for a writer
    with pytest.raises(FaceganError, match=f"{name}: a FIFO .*not a regular file"):
        open_source(tmp_path / name)
