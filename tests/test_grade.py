"""``grade``: many submissions checked safely, scored with one protocol, ranked and published."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from gradekit import archive, graded, huge_canvas_png, images, png, reference, stand_in, submission  # noqa: F401 (fixture)

from facegan.cli import main
from facegan.fid.distance import frechet_distance
from facegan.grade import Grader
from facegan.pack import MAX_IMAGE_BYTES

#: float results: run again with the kernels forced down in CI (.ci/forced-kernels)
pytestmark = pytest.mark.numeric

N = 10  # images per submission in these tests (the brief's protocol: 1000)


@pytest.fixture
def classroom(tmp_path, stand_in):
    """A reference, and a folder of submissions: good, shifted, copied, malformed, hostile."""
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "submissions"
    sub.mkdir()
    good = images(1, N)
    submission(sub / "20250001.tar.gz", good)
    submission(sub / "20250002.tar.gz", images(2, N, brightness=60))  # further from the reference
    copied = np.concatenate([good[:3], images(3, N)[3:]])  # three images taken from 20250001
    submission(sub / "20250003.tar.gz", copied)
    wrong = {f"20250004/{i:04d}.png": png(im) for i, im in enumerate(images(4, N))}
    wrong["20250004/0009.png"] = png(np.zeros((32, 32, 3), np.uint8))  # wrong size
    archive(sub / "20250004.tar.gz", wrong)
    hostile = {f"20250005/{i:04d}.png": png(im) for i, im in enumerate(images(5, N - 1))}
    hostile["20250005/<script>alert(1)</script>.png"] = huge_canvas_png(12000, 12000)
    archive(sub / "20250005.tar.gz", hostile)
    (sub / "20250006.tar.gz").write_bytes(b"this is not a gzip file")
    (sub / "=HYPERLINK(0).tar.gz").write_bytes(b"\0")  # a name that spreadsheets would run as a formula
    return ref, sub, {"good": good, "copied": copied}


def test_grade_scores_ranks_rejects_and_flags(classroom, stand_in, tmp_path, monkeypatch):
    ref, sub, imgs = classroom
    from PIL import PngImagePlugin

    original_load = PngImagePlugin.PngImageFile.load

    def guarded_load(self):  # a claimed 12000x12000 canvas (under PIL's own bomb limit) must be refused before decoding
        assert self.size == (64, 64), f"decoded a {self.size} image"
        return original_load(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", guarded_load)
    grader = Grader(ref, tmp_path / "results", lambda: stand_in, count=N)
    entries = sorted(sub.iterdir())
    results = graded(entries, grader, progress=False)
    by = {r.student: r for r in results}

    scored = [r.student for r in results if r.status == "scored"]
    assert set(scored) == {"20250001", "20250002", "20250003"}
    assert scored == sorted(scored, key=lambda s: by[s].fid)  # ranked by FID, lowest first
    assert [by[s].rank for s in scored] == [1, 2, 3]
    assert by["20250002"].fid > by["20250001"].fid  # the brighter set is further from the reference
    # the score is the FID of those very images against the reference, nothing else (scored in the
    # order of their pixel hashes, which makes it a function of the image set: same set, same bits)
    good = imgs["good"]
    st = stand_in.statistics(good[np.argsort([hashlib.sha256(im.tobytes()).hexdigest() for im in good])])
    want = frechet_distance(st.mu, st.sigma, grader.ref.mu, grader.ref.sigma)
    assert by["20250001"].fid == pytest.approx(want, rel=1e-9)
    assert by["20250001"].n == N

    assert any("0009.png" in p and "32x32, expected 64x64" in p for p in by["20250004"].problems)
    assert any("12000x12000, expected 64x64" in p for p in by["20250005"].problems)
    assert any("not a readable .tar.gz" in p for p in by["20250006"].problems)
    assert all(by[s].status == "rejected" and by[s].fid is None and by[s].rank is None
               for s in ("20250004", "20250005", "20250006", "=HYPERLINK(0)"))
    # images shared between two submissions are flagged on both
    assert any("3 image(s) identical to ones in 20250003" in w for w in by["20250001"].warnings)
    assert any("3 image(s) identical to ones in 20250001" in w for w in by["20250003"].warnings)
    assert not by["20250002"].warnings

    out = tmp_path / "results"
    data = json.loads((out / "scores.json").read_text())
    assert data["samples_per_submission"] == N and data["reference_n"] == 40
    assert [s["student"] for s in data["submissions"]][:3] == scored
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows[0].startswith("rank,student,fid,copies") and len(rows) == 1 + len(entries)
    row = next(r for r in rows if "HYPERLINK" in r)
    assert row.startswith(",'=HYPERLINK(0),")  # shown as text, never run
    page = (out / "index.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page  # text from archives is escaped
    for r in results:
        if r.status == "scored":
            assert (out / r.grid).is_file() and r.grid in page


def test_rerun_reuses_cached_results_and_rescores_a_changed_archive(stand_in, tmp_path):
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "subs"
    sub.mkdir()
    a = submission(sub / "20259001.tar.gz", images(1, N))
    b = submission(sub / "20259002.tar.gz", images(7, N))
    grader = Grader(ref, tmp_path / "results", lambda: stand_in, count=N)
    first = {r.student: r.fid for r in graded([a, b], grader, progress=False)}
    assert stand_in.calls == [N, N]
    again = {r.student: r.fid for r in graded([a, b], grader, progress=False)}
    assert again == first and stand_in.calls == [N, N]  # nothing scored twice
    submission(b, images(8, N))  # the student re-uploads
    graded([a, b], grader, progress=False)
    assert stand_in.calls == [N, N, N]


def test_oversized_and_overfull_archives_are_refused_from_their_headers(stand_in, tmp_path):
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    big = tmp_path / "20251111.tar.gz"
    with tarfile.open(big, "w:gz") as tf:
        info = tarfile.TarInfo("20251111/0000.png")
        info.size = MAX_IMAGE_BYTES + 1
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    many = archive(tmp_path / "20252222.tar.gz", {f"x/{i:05d}.png": b"x" for i in range(N + 17)})
    grader = Grader(ref, tmp_path / "results", lambda: stand_in, count=N)
    by = {r.student: r for r in graded([big, many], grader, progress=False)}
    assert any("at most" in p for p in by["20251111"].problems)
    assert f"more than {N + 16} members; expected {N} images" in by["20252222"].problems
    assert sum("not an image" in p for p in by["20252222"].problems) == N + 16  # every problem, not the first


def test_cli_grade_prints_the_ranking(stand_in, tmp_path, capsys):
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "subs"
    sub.mkdir()
    submission(sub / "20253333.tar.gz", images(9, N))
    (sub / "notes.txt").write_text("not a submission")  # ignored, with the reason, in every output
    rc = main(["grade", str(sub), "--ref", str(ref), "-o", str(tmp_path / "r"),
               "--count", str(N), "--device", "cpu", "--quiet", "--floor", "16.43"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "20253333" in out and "2 entries: 1 scored, 0 rejected, 1 ignored" in out and f"FID on {N} images" in out
    assert "notes" in out and "not a submission" in out
    assert "real photos score 16.43" in out and "16.43" in (tmp_path / "r" / "index.html").read_text()
    assert main(["grade", str(tmp_path / "nowhere"), "--ref", str(ref), "-o", str(tmp_path / "r")]) == 2
    assert "no such submission file or folder" in capsys.readouterr().err


def test_grade_returns_rows_and_the_command_writes_the_results(stand_in, tmp_path):
    """The grader never writes the page: grade() returns rows, leaderboard.write_results writes them."""
    from facegan.grade import grade, run_info
    from facegan.leaderboard import write_results

    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    grader = Grader(ref, tmp_path / "results", lambda: stand_in, count=N)
    rows = grade([submission(tmp_path / "20250001.tar.gz", images(1, N))], grader, progress=False)
    assert [r.status for r in rows] == ["scored"] and not (tmp_path / "results" / "scores.json").exists()
    paths = write_results(grader.out, run_info(grader), rows)
    assert json.loads(paths["json"].read_text())["submissions"][0]["student"] == "20250001"
