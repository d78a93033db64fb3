"""``grade`` on what a real submissions folder holds: hostile archives, odd entries, strange
names, identical hand-ins, bad references — every entry a row, every output written."""

from __future__ import annotations

import csv
import gzip
import json
import os
import tarfile

import numpy as np
import pytest
from gradekit import archive, graded, images, png, reference, stand_in, submission  # noqa: F401 (fixture)

from facegan.cli import main
from facegan.errors import FaceganError
from facegan.grade import Grader, list_submissions

N = 8


def _pax_bomb(path):
    info = tarfile.TarInfo("PaxHeader/x")
    info.type, info.size = tarfile.XHDTYPE, 64 << 30
    path.write_bytes(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
    return path


def _rows(out):
    data = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    with open(out / "scores.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    page = (out / "index.html").read_text(encoding="utf-8")
    return data, table, page


@pytest.fixture
def messy(tmp_path, stand_in):
    """A submissions folder with good, hostile and odd entries, and what each should become."""
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "submissions"
    sub.mkdir()
    want = {}
    submission(sub / "20250001.tar.gz", images(1, N)); want["20250001.tar.gz"] = "scored"
    submission(sub / "20250002.TAR.GZ", images(2, N)); want["20250002.TAR.GZ"] = "scored"
    submission(sub / "20250003.tgz", images(3, N)); want["20250003.tgz"] = "scored"
    (sub / "20250004.zip").write_bytes(b"PK\3\4"); want["20250004.zip"] = "rejected"
    _pax_bomb(sub / "20250005.tar.gz"); want["20250005.tar.gz"] = "rejected"
    bad_name = b"20250006/\x1b[31m\xff.png".decode("utf-8", "surrogateescape")
    archive(sub / "20250006.tar.gz", [(f"20250006/{i:04d}.png", png(im)) for i, im in enumerate(images(6, N - 1))]
            + [(bad_name, b"not a png")]); want["20250006.tar.gz"] = "rejected"
    archive(sub / "20250007.tar.gz", [(f"20250007/{i:04d}.png", png(im)) for i, im in enumerate(images(7, N))]
            + [("20250007/./0001.png", png(images(70, 1)[0]))]); want["20250007.tar.gz"] = "rejected"
    with open(sub / "20250008.tar.gz", "wb") as f:
        f.truncate(32 << 30); want["20250008.tar.gz"] = "rejected"  # 32 GiB, sparse: must not be hashed
    os.mkfifo(sub / "20250009.tar.gz"); want["20250009.tar.gz"] = "ignored"
    os.symlink(sub / "gone.tar.gz", sub / "20250010.tar.gz"); want["20250010.tar.gz"] = "ignored"
    os.symlink(sub / "loop.tar.gz", sub / "loop.tar.gz"); want["loop.tar.gz"] = "ignored"
    (sub / "20250011").mkdir(); want["20250011"] = "ignored"
    (sub / "notes.txt").write_text("x"); want["notes.txt"] = "ignored"
    (sub / ".DS_Store").write_bytes(b"\0"); want[".DS_Store"] = "ignored"
    odd = b"2025\xff\x1b[2J.tar.gz".decode("utf-8", "surrogateescape")  # a non-UTF-8 byte in the file name
    submission(sub / odd, images(12, N), folder="x"); want[odd] = "scored"
    return ref, sub, want


@pytest.mark.timeout(300)
def test_a_messy_folder_gets_one_row_per_entry_in_all_three_files(messy, stand_in, tmp_path, monkeypatch):
    ref, sub, want = messy
    hashed = []
    import facegan.grade as g

    real_digest = g._digest
    monkeypatch.setattr(g, "_digest", lambda f: (hashed.append(os.fstat(f.fileno()).st_size), real_digest(f))[1])
    out = tmp_path / "results"
    rows = graded(list_submissions([sub]), Grader(ref, out, lambda: stand_in, count=N), progress=False)
    assert max(hashed) < 1 << 20  # the 32 GiB file was refused from its size, never hashed
    from facegan.safetext import shown

    got = {r.entry: r for r in rows}
    assert {k: r.status for k, r in got.items()} == {shown(k): v for k, v in want.items()}
    assert "more than a submission can need" in got["20250008.tar.gz"].problems[0]
    assert "pax extended header of 68,719,476,736 bytes" in " ".join(got["20250005.tar.gz"].problems)
    assert "a FIFO" in got["20250009.tar.gz"].problems[0] and "dangling link" in got["20250010.tar.gz"].problems[0]
    assert "link loop" in got["loop.tar.gz"].problems[0] and "a folder" in got["20250011"].problems[0]
    assert "a .zip file, not a .tar.gz" in got["20250004.zip"].problems[0]
    assert "same file as 20250007/0001.png" in " ".join(got["20250007.tar.gz"].problems)
    assert any("<student number>.tar.gz" in w for w in got["20250002.TAR.GZ"].warnings)
    bad = got["20250006.tar.gz"].problems
    assert bad == [f"{N - 1} images, expected exactly {N}", "20250006/\\x1b[31m\\xff.png: unsafe member name: a name holding the invisible or control "
                   "character U+001B"]

    data, table, page = _rows(out)
    assert len(data["submissions"]) == len(table) == page.count("<tr class=") == len(want)
    for text in (json.dumps(data, ensure_ascii=False), "".join(map(str, table)), page):
        assert "\x1b" not in text and "\udcff" not in text  # escaped everywhere
    assert "2025\\xff\\x1b[2J.tar.gz" in page and any(r["entry"] == "2025\\xff\\x1b[2J.tar.gz" for r in table)
    assert data["summary"] == {"entries": len(want), "scored": 4, "rejected": 5, "error": 0, "ignored": 6, "with_copies": 0}

    again = graded(list_submissions([sub]), Grader(ref, out, lambda: stand_in, count=N), progress=False)  # from the cache
    assert [(r.entry, r.status, r.fid) for r in again] == [(r.entry, r.status, r.fid) for r in rows]
    assert stand_in.calls == [N] * 4  # nothing scored twice, and the cached odd names did not crash the rerun


def test_identical_hand_ins_keep_their_names_and_are_flagged_also_from_the_cache(stand_in, tmp_path):
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "subs"
    sub.mkdir()
    submission(sub / "20250001.tar.gz", images(1, N), folder="x")
    (sub / "20250002.tar.gz").write_bytes((sub / "20250001.tar.gz").read_bytes())
    submission(sub / "20250003.tar.gz", images(3, N))
    for _ in range(2):  # the second run comes from the cache
        rows = graded(list_submissions([sub]), Grader(ref, tmp_path / "r", lambda: stand_in, count=N), progress=False)
        by = {r.student: r for r in rows}
        assert by["20250001"].entry == "20250001.tar.gz" and by["20250002"].entry == "20250002.tar.gz"
        assert "the same archive bytes as 20250002.tar.gz" in by["20250001"].warnings
        assert "the same archive bytes as 20250001.tar.gz" in by["20250002"].warnings
        assert f"{N} image(s) identical to ones in 20250002 (20250002.tar.gz)" in by["20250001"].warnings
        assert by["20250001"].rank == by["20250002"].rank == 1 and by["20250003"].rank == 3  # equal FIDs share a rank
        assert not by["20250003"].warnings
    assert stand_in.calls == [N, N]  # one Inception pass per distinct image set: the copy shares its score


def test_a_crash_inside_one_archive_is_that_archives_row(stand_in, tmp_path, monkeypatch):
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    a = submission(tmp_path / "20250001.tar.gz", images(1, N))
    b = submission(tmp_path / "20250002.tar.gz", images(2, N))
    import facegan.grade as g

    real = g.check_archive

    def flaky(f, *args, name=None, **kw):
        if name == "20250001.tar.gz":
            raise MemoryError("simulated")
        return real(f, *args, name=name, **kw)

    monkeypatch.setattr(g, "check_archive", flaky)
    grader = Grader(ref, tmp_path / "r", lambda: stand_in, count=N)
    by = {r.student: r for r in graded([a, b], grader, progress=False)}
    assert by["20250001"].status == "rejected" and "cannot be read safely (MemoryError: simulated)" in by["20250001"].problems[0]
    assert by["20250002"].status == "scored"

    def broken_scorer(images, **kw):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(stand_in, "statistics", broken_scorer)
    c = submission(tmp_path / "20250003.tar.gz", images(3, N))
    by = {r.student: r for r in graded([c], grader, progress=False)}
    assert by["20250003"].status == "error" and "not cached" in by["20250003"].problems[0]
    assert not list((tmp_path / "r" / "cache").glob("*.json")) or all(
        "20250003" not in p.read_text() for p in (tmp_path / "r" / "cache").glob("*.json"))


def test_a_wrong_or_malformed_reference_fails_before_anything_is_scored(stand_in, tmp_path, capsys):
    sub = tmp_path / "subs"
    sub.mkdir()
    submission(sub / "20250001.tar.gz", images(1, N))
    wide = tmp_path / "wide.npz"
    np.savez(wide, mu=np.zeros(10), sigma=np.eye(10))
    with pytest.raises(FaceganError, match=r"wide\.npz: statistics of 10-d features, expected 64-d"):
        Grader(wide, tmp_path / "r", lambda: stand_in, count=N)
    bad = reference(tmp_path / "bad.npz", stand_in, images(100, 40))
    with np.load(bad) as f:
        fields = dict(f)
    fields["floor_json"] = np.str_("{not json")
    np.savez(bad, **fields)
    for ref, fragment in ((wide, "wide.npz: statistics of 10-d"), (bad, "bad.npz: 'floor_json'")):
        rc = main(["grade", str(sub), "--ref", str(ref), "-o", str(tmp_path / "r"), "--count", str(N), "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert stand_in.calls == [] and not (tmp_path / "r").exists()


def test_target_adds_a_verdict_everywhere_and_a_summary(stand_in, tmp_path, capsys):
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "subs"
    sub.mkdir()
    submission(sub / "20250001.tar.gz", images(100, N))  # the reference's own images: the lowest FID
    submission(sub / "20250002.tar.gz", images(2, N, brightness=90))
    archive(sub / "20250003.tar.gz", {"x.txt": b"x"})
    grader = Grader(ref, tmp_path / "probe", lambda: stand_in, count=N)
    fids = sorted(r.fid for r in graded([sub / "20250001.tar.gz", sub / "20250002.tar.gz"], grader, progress=False))
    target = (fids[0] + fids[1]) / 2
    out = tmp_path / "r"
    assert main(["grade", str(sub), "--ref", str(ref), "-o", str(out), "--count", str(N), "--quiet",
                 "--target", str(target)]) == 0
    text = capsys.readouterr().out
    assert f"3 entries: 2 scored, 1 passing (FID <= {target:g}), 1 rejected, 0 ignored" in text
    data, table, page = _rows(out)
    assert {r["student"]: r["pass"] for r in table} == {"20250001": "pass", "20250002": "fail", "20250003": "fail"}
    assert {s["student"]: s["verdict"] for s in data["submissions"]} == {"20250001": "pass", "20250002": "fail",
                                                                         "20250003": "fail"}
    assert data["target"] == target and data["summary"]["passing"] == 1
    assert "<span class='pass'>pass</span>" in page and "<th data-sort='text' tabindex='0' title='sort'>pass</th>" in page


def test_the_page_stays_usable_for_many_students(stand_in, tmp_path):
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    subs = [submission(tmp_path / f"2025000{i}.tar.gz", images(i, N)) for i in range(3)]
    graded(subs, Grader(ref, tmp_path / "r", lambda: stand_in, count=N), progress=False)
    page = (tmp_path / "r" / "index.html").read_text()
    assert page.index("3 entries: 3 scored") < page.index("<table")  # the summary first
    assert page.count("loading='lazy'") == 3
    assert page.count("<script") == 1 and "<script src" not in page and "http" not in page.split("<script>")[1]
    assert "Content-Security-Policy" in page and "script-src 'sha256-" in page
    assert "th[data-sort]" in page and page.count("data-sort='num'") == 4  # rank, FID, copies, images


def test_terminal_shows_warnings_problems_and_an_unknown_size_reference(stand_in, tmp_path, capsys):
    f = stand_in.features(images(100, 40))
    ref = tmp_path / "pytorch-fid.npz"
    np.savez(ref, mu=f.mean(0), sigma=np.cov(f, rowvar=False))  # what pytorch-fid writes: no count
    sub = tmp_path / "subs"
    sub.mkdir()
    archive(sub / "20250001.tar.gz", [(f"20250001/{i:04d}.png", png(im)) for i, im in enumerate(images(1, N))]
            + [("20250001/.DS_Store", b"\0"), ("__MACOSX/20250001/._0000.png", b"\0")])
    archive(sub / "20250002.tar.gz", {f"{i}.txt": b"x" for i in range(5)})
    assert main(["grade", str(sub), "--ref", str(ref), "-o", str(tmp_path / "r"), "--count", str(N), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "warning: left out 2 file(s) the operating system added" in out
    assert "0.txt: not an image file" in out and "... and 3 more problem(s)" in out
    assert "(reference of unknown size)" in out and "vs 0" not in out
    page = (tmp_path / "r" / "index.html").read_text()
    assert "reference of unknown size" in page
    assert json.loads((tmp_path / "r" / "scores.json").read_text())["reference_n"] is None


def test_a_recorded_floor_is_printed_beside_the_ranking(stand_in, tmp_path, capsys):
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40), floor={"n_sample": N, "mean": 12.5, "std": 0.1})
    submission(tmp_path / "20250001.tar.gz", images(1, N))
    assert main(["grade", str(tmp_path / "20250001.tar.gz"), "--ref", str(ref), "-o", str(tmp_path / "r"),
                 "--count", str(N), "--quiet"]) == 0
    assert "real photos score 12.50 at this size" in capsys.readouterr().out


def test_device_and_threads(stand_in, tmp_path, capsys, monkeypatch):
    import torch

    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    submission(tmp_path / "20250001.tar.gz", images(1, N))
    args = ["grade", str(tmp_path / "20250001.tar.gz"), "--ref", str(ref), "-o", str(tmp_path / "r"),
            "--count", str(N), "--quiet"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(args + ["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda: no CUDA GPU" in err and len(err.strip().splitlines()) == 1
    threads = torch.get_num_threads()
    try:
        assert main(args + ["--threads", "1"]) == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert main(args + ["--threads", "0"]) == 2 and "--threads must be at least 1" in capsys.readouterr().err


def test_the_time_cap_applies_per_archive(stand_in, tmp_path, monkeypatch):
    from facegan import safetar

    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    a = submission(tmp_path / "20250001.tar.gz", images(1, N))
    clock = iter(range(0, 100_000))  # each look at the clock: one second later
    monkeypatch.setattr(safetar.time, "monotonic", lambda: next(clock))
    [row] = graded([a], Grader(ref, tmp_path / "r", lambda: stand_in, count=N, read_seconds=3), progress=False)
    assert row.status == "rejected" and "reading took more than 3 s (the time cap)" in row.problems[-1]


def test_listing_names_what_is_missing(tmp_path):
    with pytest.raises(FaceganError, match="no such submission file or folder"):
        list_submissions([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FaceganError, match="no submissions found"):
        list_submissions([tmp_path / "empty"])
