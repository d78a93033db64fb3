"""``pack``: the submission archive is checked, atomic, verified and named after the student."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan.cli import main
from facegan.errors import FaceganError
from facegan.pack import pack, student_archive_name, verify

N = 12  # --count for tests: the real default is 1000


def samples(folder: Path, n: int = N, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_pack_writes_a_verified_archive_in_a_student_folder(tmp_path):
    files = samples(tmp_path / "s")
    out = tmp_path / "20251234.tar.gz"
    report = pack(tmp_path / "s", out, count=N)
    assert report.archive == out and report.count == N and report.prefix == "20251234"
    assert report.bytes == out.stat().st_size and report.warnings == []
    with tarfile.open(out, "r:gz") as tf:
        members = tf.getmembers()
        assert members[0].isdir() and members[0].name == "20251234"
        files_in = [m for m in members if m.isfile()]
        assert [m.name for m in files_in] == [f"20251234/{f.name}" for f in files]
        for m, f in zip(files_in, files):
            assert tf.extractfile(m).read() == f.read_bytes()  # stored, not re-encoded
    assert verify(out, count=N).names == [m.name for m in files_in]
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["20251234.tar.gz"]  # no temp left


def test_flat_layout(tmp_path):
    samples(tmp_path / "s")
    report = pack(tmp_path / "s", tmp_path / "7.tar.gz", count=N, layout="flat")
    assert report.prefix == "" and report.names[0] == "0000.png"
    assert verify(tmp_path / "7.tar.gz", count=N).prefix == ""


def test_every_problem_is_named_and_nothing_is_written(tmp_path):
    files = samples(tmp_path / "s")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(files[1])
    Image.open(files[2]).convert("RGBA").save(files[2])
    files[3].write_bytes(files[3].read_bytes()[:100])
    # same pixels as 0000.png, different file bytes (another compression level)
    Image.open(files[0]).save(files[4], compress_level=0)
    assert files[4].read_bytes() != files[0].read_bytes()
    out = tmp_path / "20251234.tar.gz"
    out.write_bytes(b"previous archive")
    with pytest.raises(FaceganError) as exc:
        pack(tmp_path / "s", out, count=N)
    msg = str(exc.value)
    assert "0001.png: 32x32, expected 64x64" in msg
    assert "0002.png: mode RGBA, expected RGB" in msg
    assert "0003.png: corrupt or truncated" in msg
    assert "0004.png: identical pixels to 0000.png" in msg
    assert "4 problem(s)" in msg
    assert out.read_bytes() == b"previous archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20251234.tar.gz", "s"]


def test_wrong_count(tmp_path):
    samples(tmp_path / "s", N - 1)
    with pytest.raises(FaceganError, match=f"{N - 1} images, expected exactly {N}"):
        pack(tmp_path / "s", tmp_path / "1.tar.gz", count=N)
    assert not (tmp_path / "1.tar.gz").exists()


def test_student_number_naming():
    assert student_archive_name("out/20251234.tar.gz") == ("20251234", None)
    stem, warning = student_archive_name("my_samples.tar.gz")
    assert stem == "my_samples" and "student number" in warning
    with pytest.raises(FaceganError, match="tar.gz"):
        student_archive_name("20251234.zip")


def test_cli_pack_prints_size_and_warns_on_a_non_number(tmp_path, capsys):
    samples(tmp_path / "s")
    (tmp_path / "s" / "notes.txt").write_text("not packed")
    out = tmp_path / "mine.tar.gz"
    assert main(["pack", str(tmp_path / "s"), "-o", str(out), "--count", str(N)]) == 0
    captured = capsys.readouterr()
    size = out.stat().st_size
    assert f"{size:,} bytes" in captured.out and "verified" in captured.out
    assert "facegan: warning:" in captured.err and "student number" in captured.err
    assert "notes.txt" in captured.err
    assert main(["pack", "--verify", str(out), "--count", str(N)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["pack", "--verify", str(out)]) == 2  # default --count 1000
    assert f"{N} images, expected exactly 1000" in capsys.readouterr().err


def _tar_with(path: Path, members: list[tarfile.TarInfo], payload: bytes = b"") -> None:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            tf.addfile(m, io.BytesIO(payload) if m.isfile() else None)


@pytest.mark.parametrize("make,fragment", [
    (lambda: [tarfile.TarInfo("../evil.png")], "unsafe member"),
    (lambda: [_sym("x/a.png")], "link or special file"),
    (lambda: [_file("x/readme.txt")], "not an image file"),
])
def test_verify_refuses_archives_a_submission_should_not_be(tmp_path, make, fragment):
    members = make()
    for m in members:
        if m.isfile():
            m.size = 3
    _tar_with(tmp_path / "1.tar.gz", members, b"abc")
    with pytest.raises(FaceganError, match=fragment):
        verify(tmp_path / "1.tar.gz", count=1)


def _sym(name: str) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return m


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def test_verify_rejects_images_in_several_folders_and_non_gzip(tmp_path):
    files = samples(tmp_path / "s", 2)
    with tarfile.open(tmp_path / "1.tar.gz", "w:gz") as tf:
        tf.add(files[0], "a/0.png")
        tf.add(files[1], "b/1.png")
    with pytest.raises(FaceganError, match="several top folders"):
        verify(tmp_path / "1.tar.gz", count=2)
    (tmp_path / "2.tar.gz").write_bytes(b"plain text")
    with pytest.raises(FaceganError, match="not a readable .tar.gz"):
        verify(tmp_path / "2.tar.gz", count=2)
