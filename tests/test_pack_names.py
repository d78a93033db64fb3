"""``pack``/``pack --verify``: names that are unsafe once extracted elsewhere, JPEG samples, and
the hidden files ``pack`` leaves out — each said in one line, never silently."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan.cli import main
from facegan.pack import MAX_NAME_CHARS, MAX_NAME_DEPTH, check_archive, name_problem

N = 4


def _img(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def _bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _targz(path: Path, files: list[tuple[str, bytes]]) -> Path:
    # GNU format: tarfile's pax format would mark a non-UTF-8 name with hdrcharset (refused apart)
    fmt = tarfile.PAX_FORMAT if any("\x00" in name for name, _ in files) else tarfile.GNU_FORMAT
    with tarfile.open(path, "w:gz", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if "\x00" in name:  # only a pax path can hold a NUL (the ustar field ends there)
                info.pax_headers = {"path": name}
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name, reason", [
    ("20250001/\x1b[2J.png", "control character U+001B"),
    ("20250001/ding\x07.png", "control character U+0007"),
    ("20250001/gnp\u202e.png", "invisible or control character U+202E"),  # a bidi override
    ("20250001/a\x00b.png", "control character U+0000"),
    ("20250001/CON.png", "'CON.png' is a reserved device name on Windows"),
    ("20250001/com1.png", "reserved device name"),
    ("20250001/a:b.png", "a name holding ':' (extracted on Windows"),
    ("20250001/" + "d/" * 10_000 + "x.png", "a name of 20,014 characters"),
    ("/".join(["d"] * (MAX_NAME_DEPTH + 1)) + "/x.png", f"10 folders deep (at most {MAX_NAME_DEPTH})"),
    (b"20250001/caf\xe9.png".decode("utf-8", "surrogateescape"), "not valid UTF-8"),
], ids=["esc", "bel", "bidi", "nul", "con", "com1", "ntfs-stream", "10k-parts", "deep", "latin-1"])
def test_names_no_student_tool_writes_are_refused_with_the_reason(tmp_path, capsys, name, reason):
    files = [(f"20250001/{i:04d}.png", _bytes(_img(i))) for i in range(N - 1)] + [(name, _bytes(_img(9)))]
    path = _targz(tmp_path / "20250001.tar.gz", files)
    with tarfile.open(path) as tf:  # the name really is stored as given
        assert tf.getnames()[-1] == name
    check = check_archive(path, count=N)
    assert any("unsafe member name" in p and reason in p for p in check.problems), check.problems
    assert main(["pack", "--verify", str(path), "--count", str(N)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and reason in err and "Traceback" not in err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err  # shown escaped


def test_ordinary_names_pass():
    for name in ("20250001/0000.png", "0001.png", "my samples/Sample 1 (final).png", "20250001/é-ü.png",
                 "a/b/c/d/e/f/g/x.png", "x" * (MAX_NAME_CHARS - 4) + ".png", "console.png", "con-1.png"):
        assert name_problem(name) is None, name


def _samples(folder: Path, n: int, jpeg: int = 0) -> Path:
    folder.mkdir()
    for i in range(n):
        img = _img(i)
        if i < jpeg:
            img.save(folder / f"{i:04d}.jpg", quality=95)
        else:
            img.save(folder / f"{i:04d}.png")
    return folder


def test_jpeg_samples_are_packed_with_a_warning_and_verified_with_one(tmp_path, capsys):
    samples = _samples(tmp_path / "s", N, jpeg=2)
    out = tmp_path / "20250001.tar.gz"
    assert main(["pack", str(samples), "-o", str(out), "--count", str(N)]) == 0
    err = capsys.readouterr().err
    assert err.count("stored as JPEG") == 1 and "2 image(s) stored as JPEG (20250001/0000.jpg, 20250001/0001.jpg)" in err
    assert main(["pack", "--verify", str(out), "--count", str(N)]) == 0
    assert "2 image(s) stored as JPEG" in capsys.readouterr().err
    # a JPEG named .png is found by its content, not its name
    disguised = [(f"20250002/{i:04d}.png", _bytes(_img(i), "JPEG" if i == 0 else "PNG")) for i in range(N)]
    assert "stored as JPEG (20250002/0000.png)" in " ".join(check_archive(_targz(tmp_path / "20250002.tar.gz", disguised), count=N).warnings)
    png_only = _samples(tmp_path / "p", N)
    assert main(["pack", str(png_only), "-o", str(tmp_path / "20250003.tar.gz"), "--count", str(N)]) == 0
    assert "JPEG" not in capsys.readouterr().err


def test_hidden_files_left_out_by_pack_are_said(tmp_path, capsys):
    samples = _samples(tmp_path / "s", N)
    (samples / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (samples / "._0000.png").write_bytes(b"\0\5\26\7")
    (samples / ".thumbnails").mkdir()
    out = tmp_path / "20250001.tar.gz"
    assert main(["pack", str(samples), "-o", str(out), "--count", str(N)]) == 0
    err = capsys.readouterr().err
    assert "left out 3 hidden file(s)" in err and ".DS_Store" in err and "._0000.png" in err and ".thumbnails/" in err
    with tarfile.open(out) as tf:
        assert not any(Path(n).name.startswith(".") for n in tf.getnames())
