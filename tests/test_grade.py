"""``grade``: many submissions checked safely, scored with one protocol, ranked and published."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan.cli import main
from facegan.fid.distance import frechet_distance
from facegan.grade import Grader, grade
from facegan.pack import MAX_IMAGE_BYTES

N = 10  # images per submission in these tests (the brief's protocol: 1000)


def _images(seed: int, n: int = N, brightness: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 200, (n, 64, 64, 3), dtype=np.uint8)
    return (img.astype(np.int32) + brightness).clip(0, 255).astype(np.uint8)


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _submission(path: Path, images: np.ndarray) -> Path:
    student = path.name.split(".")[0]
    return _archive(path, {f"{student}/{i:04d}.png": _png(im) for i, im in enumerate(images)})


def _huge_canvas_png(width: int, height: int) -> bytes:
    """A few-hundred-byte PNG whose header claims width x height (CRC kept valid)."""
    data = bytearray(_png(np.zeros((64, 64, 3), np.uint8)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory, scorer):
    """A reference, and a folder of submissions: good, shifted, copied, malformed, hostile."""
    root = tmp_path_factory.mktemp("classroom")
    ref = scorer.statistics(_images(100, 40))
    ref.save(root / "ref.npz")
    sub = root / "submissions"
    sub.mkdir()
    good = _images(1)
    _submission(sub / "20250001.tar.gz", good)
    _submission(sub / "20250002.tar.gz", _images(2, brightness=60))  # further from the reference
    copied = np.concatenate([good[:3], _images(3)[3:]])  # three images taken from 20250001
    _submission(sub / "20250003.tar.gz", copied)
    wrong = {f"20250004/{i:04d}.png": _png(im) for i, im in enumerate(_images(4))}
    wrong["20250004/0009.png"] = _png(np.zeros((32, 32, 3), np.uint8))  # wrong size
    _archive(sub / "20250004.tar.gz", wrong)
    hostile = {f"20250005/{i:04d}.png": _png(im) for i, im in enumerate(_images(5, N - 1))}
    hostile["20250005/<script>alert(1)</script>.png"] = _huge_canvas_png(12000, 12000)
    _archive(sub / "20250005.tar.gz", hostile)
    (sub / "20250006.tar.gz").write_bytes(b"this is not a gzip file")
    (sub / "=HYPERLINK(0).tar.gz").write_bytes(b"\0")  # a name that spreadsheets would run as a formula
    return root, {"good": good, "copied": copied}


def test_grade_scores_ranks_rejects_and_flags(classroom, scorer, tmp_path, monkeypatch):
    root, imgs = classroom
    from PIL import PngImagePlugin

    original_load = PngImagePlugin.PngImageFile.load

    def guarded_load(self):  # a claimed 12000x12000 canvas (under PIL's own bomb limit) must be refused before decoding
        assert self.size == (64, 64), f"decoded a {self.size} image"
        return original_load(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", guarded_load)
    grader = Grader(root / "ref.npz", tmp_path / "results", lambda: scorer, count=N)
    archives = sorted((root / "submissions").iterdir())
    results = grade(archives, grader, progress=False)
    by = {r.student: r for r in results}

    scored = [r.student for r in results if r.status == "scored"]
    assert set(scored) == {"20250001", "20250002", "20250003"}
    assert scored == sorted(scored, key=lambda s: by[s].fid)  # ranked by FID, lowest first
    assert by["20250002"].fid > by["20250001"].fid  # the shifted set is further from the reference
    # the score is the FID of those very images against the reference, nothing else
    st = scorer.statistics(imgs["good"])
    want = frechet_distance(st.mu, st.sigma, grader.ref.mu, grader.ref.sigma)
    assert by["20250001"].fid == pytest.approx(want, rel=1e-9)
    assert by["20250001"].n == N

    assert any("0009.png" in p and "32x32, expected 64x64" in p for p in by["20250004"].problems)
    assert any("12000x12000, expected 64x64" in p for p in by["20250005"].problems)
    assert any("not a readable .tar.gz" in p for p in by["20250006"].problems)
    assert all(by[s].status == "rejected" and by[s].fid is None for s in ("20250004", "20250005", "20250006", "=HYPERLINK(0)"))
    # images shared between two submissions are flagged on both
    assert any("3 image(s) identical to ones in 20250003" in w for w in by["20250001"].warnings)
    assert any("3 image(s) identical to ones in 20250001" in w for w in by["20250003"].warnings)
    assert not by["20250002"].warnings

    out = tmp_path / "results"
    data = json.loads((out / "scores.json").read_text())
    assert data["samples_per_submission"] == N and data["reference_n"] == 40
    assert [s["student"] for s in data["submissions"]][:3] == scored
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows[0].startswith("rank,student,fid") and len(rows) == 1 + len(archives)
    row = next(r for r in rows if "HYPERLINK" in r)
    assert row.startswith(",'=HYPERLINK(0),")  # shown as text, never run
    page = (out / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page  # text from archives is escaped
    for r in results:
        if r.status == "scored":
            assert (out / r.grid).is_file() and r.grid in page


def test_rerun_reuses_cached_results_and_rescores_a_changed_archive(classroom, scorer, tmp_path):
    root, imgs = classroom
    sub = tmp_path / "subs"
    sub.mkdir()
    a = _submission(sub / "20259001.tar.gz", imgs["good"])
    b = _submission(sub / "20259002.tar.gz", _images(7))
    calls = []

    class CountingScorer:
        weights_sha256 = scorer.weights_sha256

        def statistics(self, images, **kw):
            calls.append(len(images))
            return scorer.statistics(images, **kw)

    counting = CountingScorer()
    grader = Grader(root / "ref.npz", tmp_path / "results", lambda: counting, count=N)
    first = {r.student: r.fid for r in grade([a, b], grader, progress=False)}
    assert calls == [N, N]
    again = {r.student: r.fid for r in grade([a, b], grader, progress=False)}
    assert again == first and calls == [N, N]  # nothing scored twice
    _submission(b, _images(8))  # the student re-uploads
    grade([a, b], grader, progress=False)
    assert calls == [N, N, N]


def test_oversized_and_overfull_archives_are_refused_from_their_headers(classroom, scorer, tmp_path):
    root, _ = classroom
    big = tmp_path / "20251111.tar.gz"
    with tarfile.open(big, "w:gz") as tf:
        info = tarfile.TarInfo("20251111/0000.png")
        info.size = MAX_IMAGE_BYTES + 1
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    many = _archive(tmp_path / "20252222.tar.gz", {f"x/{i:05d}.png": b"x" for i in range(N + 17)})
    grader = Grader(root / "ref.npz", tmp_path / "results", lambda: scorer, count=N)
    by = {r.student: r for r in grade([big, many], grader, progress=False)}
    assert any("at most" in p for p in by["20251111"].problems)
    assert any(f"more than {N + 16} members" in p for p in by["20252222"].problems)


def test_cli_grade_prints_the_ranking(classroom, fid_dirs, tmp_path, capsys, monkeypatch):
    root, _ = classroom
    for key, value in fid_dirs.items():
        monkeypatch.setenv(key, str(value))
    sub = tmp_path / "subs"
    sub.mkdir()
    _submission(sub / "20253333.tar.gz", _images(9))
    (sub / "notes.txt").write_text("not a submission")  # ignored: only *.tar.gz / *.tgz are graded
    rc = main(["grade", str(sub), "--ref", str(root / "ref.npz"), "-o", str(tmp_path / "r"),
               "--count", str(N), "--device", "cpu", "--quiet", "--floor", "16.43"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "20253333" in out and "1 scored, 0 rejected" in out and f"FID on {N} images" in out
    assert "real photos score 16.43" in out and "16.43" in (tmp_path / "r" / "index.html").read_text()
    assert main(["grade", str(tmp_path / "nowhere"), "--ref", str(root / "ref.npz"), "-o", str(tmp_path / "r")]) == 2
    assert "no such submission file or folder" in capsys.readouterr().err
