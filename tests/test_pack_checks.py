"""``pack --verify`` on the archives students really make, and on hostile ones: every problem
named, junk left out with a warning, collisions and bombs refused before anything is decoded."""

from __future__ import annotations

import gzip
import io
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan import pack as packmod
from facegan import safetar
from facegan.cli import main
from facegan.errors import FaceganError
from facegan.pack import MAX_ARCHIVE_BYTES, MAX_PNG_CHUNKS, PACK_MTIME, check_archive, pack, verify

N = 6


def _png(seed: int, size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _targz(path: Path, files: list[tuple[str, bytes]] | dict, links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tf:
        for name, data in (files.items() if isinstance(files, dict) else files):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return path


def _good(prefix: str = "20250001/", n: int = N) -> list[tuple[str, bytes]]:
    return [(f"{prefix}{i:04d}.png", _png(i)) for i in range(n)]


@pytest.mark.parametrize("twin, first", [
    ("20250001/0001.png", "20250001/0001.png"),          # the same name twice
    ("20250001/./0001.png", "20250001/0001.png"),        # ./ inside
    ("20250001//0001.png", "20250001/0001.png"),         # doubled slash
    ("20250001/0001.PNG", "20250001/0001.png"),          # case (macOS, Windows)
    ("20250001/0001.png.", "20250001/0001.png"),         # a trailing dot (Windows)
])
def test_names_that_collide_once_extracted_are_refused(tmp_path, twin, first):
    files = _good(n=N - 1) + [(twin, _png(99))]
    path = _targz(tmp_path / "20250001.tar.gz", files)
    with pytest.raises(FaceganError, match="the same file as") as exc:
        verify(path, count=N - 1)
    assert f"{twin}: the same file as {first} once extracted" in str(exc.value)
    assert main(["pack", "--verify", str(path), "--count", str(N - 1)]) == 2


def test_case_folding_collisions_at_the_root_and_in_folder_names(tmp_path):
    files = [("A.png", _png(1)), ("a.png", _png(2))]
    with pytest.raises(FaceganError, match="a.png: the same file as A.png"):
        verify(_targz(tmp_path / "1.tar.gz", files), count=2)
    files = [("Stud/0.png", _png(1)), ("stud/0.png", _png(2))]
    with pytest.raises(FaceganError, match="stud/0.png: the same file as Stud/0.png"):
        verify(_targz(tmp_path / "2.tar.gz", files), count=2)


def test_os_junk_is_left_out_with_a_warning(tmp_path, capsys):
    junk = [("20250001/.DS_Store", b"\0" * 10), ("__MACOSX/20250001/._0000.png", b"\0" * 50),
            ("20250001/._0001.png", b"\0\5\26\7"), ("20250001/Thumbs.db", b"x"), ("desktop.ini", b"[x]")]
    # macOS tar adds a ._ twin per file: as many junk members as images must still pass
    twins = [(f"20250001/._{i:04d}.png", b"\0") for i in range(2, N)]
    path = _targz(tmp_path / "20250001.tar.gz", _good() + junk + twins)
    report = verify(path, count=N)
    assert report.count == N and report.prefix == "20250001"
    [warning] = report.warnings
    assert warning.startswith(f"left out {len(junk) + len(twins)} file(s) the operating system added")
    assert ".DS_Store" in warning
    assert main(["pack", "--verify", str(path), "--count", str(N)]) == 0
    captured = capsys.readouterr()
    assert "OK" in captured.out and "facegan: warning: left out" in captured.err


def test_every_problem_of_an_archive_is_listed(tmp_path):
    files = _good(n=N)[:3] + [
        ("20250001/readme.txt", b"hello"),
        ("20250001/../../evil.png", _png(7)),
        ("20250001/small.png", _png(8, size=32)),
        ("20250001/copy.png", _good()[0][1]),
    ]
    path = _targz(tmp_path / "20250001.tar.gz", files, links={"20250001/link.png": "/etc/passwd"})
    check = check_archive(path, count=N)
    text = "\n".join(check.problems)
    for fragment in ("readme.txt: not an image file", "evil.png: unsafe member name",
                     "small.png: 32x32, expected 64x64", "copy.png: identical pixels to 20250001/0000.png",
                     "link.png: a symlink: a link or special file"):
        assert fragment in text
    assert check.problems[0] == f"5 images, expected exactly {N}"
    with pytest.raises(FaceganError, match="6 problem"):
        verify(path, count=N)


def test_names_with_escapes_and_bad_bytes_are_shown_escaped(tmp_path):
    bad = b"20250001/\x1b[2J\xff\xfe.txt".decode("utf-8", "surrogateescape")
    long = "20250001/" + "x" * 5000 + ".txt"
    path = _targz(tmp_path / "20250001.tar.gz", _good() + [(bad, b"a"), (long, b"b")])
    with pytest.raises(FaceganError) as exc:
        verify(path, count=N)
    msg = str(exc.value)
    assert "\\x1b[2J\\xff\\xfe.txt: unsafe member name: a name holding the invisible or control character U+001B" in msg
    assert "\x1b" not in msg
    assert "…" in msg and len(max(msg.splitlines(), key=len)) < 200  # the 5,000-character name is cut
    msg.encode("utf-8")  # printable anywhere: no lone surrogates


def _padded_png(chunks: int, seed: int) -> bytes:
    data = _png(seed)
    iend = data.rindex(b"IEND") - 4
    pad = b"".join(struct.pack(">I", 0) + b"zzZz" + struct.pack(">I", zlib.crc32(b"zzZz")) for _ in range(chunks))
    return data[:iend] + pad + data[iend:]


@pytest.mark.timeout(120)
def test_pngs_padded_with_chunks_are_refused_before_decoding(tmp_path, monkeypatch):
    decoded = []
    real = packmod.decode_image
    monkeypatch.setattr(packmod, "decode_image", lambda data, name, **kw: (decoded.append(name), real(data, name, **kw))[1])
    ok = _padded_png(MAX_PNG_CHUNKS - 10, 100)  # still an honest-looking PNG
    files = _good(n=N - 2) + [("20250001/ok.png", ok), ("20250001/padded.png", _padded_png(40_000, 101))]
    check = check_archive(_targz(tmp_path / "20250001.tar.gz", files), count=N)
    assert check.problems == [f"20250001/padded.png: a PNG of more than {MAX_PNG_CHUNKS} chunks (padding?); refused before decoding"]
    assert "20250001/padded.png" not in decoded and "20250001/ok.png" in decoded


@pytest.mark.timeout(120)
def test_hostile_headers_are_problems_of_that_archive_not_exceptions(tmp_path):
    info = tarfile.TarInfo("PaxHeader/x")
    info.type, info.size = tarfile.XHDTYPE, 64 << 30
    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
    [problem] = check_archive(bomb, count=N).problems[1:]
    assert "pax extended header of 68,719,476,736 bytes" in problem
    sparse = tmp_path / "sparse.tar.gz"
    with tarfile.open(sparse, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        s = tarfile.TarInfo("20250001/0000.png")
        s.size, s.pax_headers = 3, {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": str(1 << 40)}
        tf.addfile(s, io.BytesIO(b"abc"))
    assert any("sparse member" in p for p in check_archive(sparse, count=N).problems)


@pytest.mark.timeout(120)
def test_a_huge_sparse_file_is_refused_from_its_size_unread(tmp_path, monkeypatch):
    path = tmp_path / "20250001.tar.gz"
    with open(path, "wb") as f:
        f.truncate(32 << 30)  # 32 GiB that take no disk space; reading them would take minutes
    monkeypatch.setattr(safetar, "iter_tar", lambda *a, **k: pytest.fail("read the archive"))
    assert check_archive(path, count=N).problems[1:] == [
        f"{32 << 30:,} bytes, more than a submission can need ({MAX_ARCHIVE_BYTES:,})"]


def test_fifo_archive_is_a_problem_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "20250001.tar.gz")
    assert check_archive(tmp_path / "20250001.tar.gz", count=N).problems == ["a FIFO (named pipe), not a regular file"]


def test_reading_past_the_time_cap_is_refused(tmp_path, monkeypatch):
    path = _targz(tmp_path / "20250001.tar.gz", _good())
    clock = iter(range(0, 10_000, 1))  # every look at the clock: one second later
    monkeypatch.setattr(safetar.time, "monotonic", lambda: next(clock))
    check = check_archive(path, count=N, seconds=5)
    assert check.problems[-1] == "reading took more than 5 s (the time cap); refused"


def test_pack_is_reproducible(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    for i in range(N):
        (folder / f"{i:04d}.png").write_bytes(_png(i))
    a = pack(folder, tmp_path / "a" / "20250001.tar.gz", count=N).archive.read_bytes()
    for p in folder.iterdir():
        os.utime(p, (1e9, 1e9))  # new file times must not change the archive
    b = pack(folder, tmp_path / "b" / "20250001.tar.gz", count=N).archive.read_bytes()
    assert a == b
    assert a[4:8] == b"\0\0\0\0" and a[3] & 0x08 == 0  # gzip: no time, no file name
    with tarfile.open(tmp_path / "a" / "20250001.tar.gz") as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == ["20250001"] + [f"20250001/{i:04d}.png" for i in range(N)]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(PACK_MTIME, 0, 0, "", "")}


def test_a_missing_archive_is_named(tmp_path, capsys):
    assert main(["pack", "--verify", str(tmp_path / "20250001.tar.gz")]) == 2
    assert f"{tmp_path / '20250001.tar.gz'}: 1 problem(s):\n  no such file" in capsys.readouterr().err
