"""Grading a class on a CPU: each distinct image set scored once, progress from the first image, a
time estimate after the first archive, and a class split into parts (``--shard K/N``) whose merge
(``--merge``) writes what one run writes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from gradekit import archive, graded, images, png, reference, stand_in, submission  # noqa: F401 (fixture)
from PIL import Image

from facegan.cli import main
from facegan.gradeshards import parse_shard, shard_indices
from facegan.grade import Grader, classify

N = 10


def _resaved(path: Path, imgs: np.ndarray, folder: str) -> Path:
    """The same pixels in other bytes: another folder, other names, another PNG compression level."""
    files = {}
    for i, im in enumerate(imgs[::-1]):
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="PNG", compress_level=1)
        files[f"{folder}/img{i:03d}.png"] = buf.getvalue()
    return archive(path, files)


def test_each_distinct_image_set_is_scored_once_and_still_flagged(stand_in, tmp_path):
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "subs"
    sub.mkdir()
    a = images(1, N)
    submission(sub / "20250001.tar.gz", a)
    _resaved(sub / "20250002.tar.gz", a, "mine")  # other bytes, same images in another order
    (sub / "20250003.tar.gz").write_bytes((sub / "20250001.tar.gz").read_bytes())  # the very same bytes
    submission(sub / "20250004.tar.gz", images(4, N))
    assert (sub / "20250001.tar.gz").read_bytes() != (sub / "20250002.tar.gz").read_bytes()
    grader = Grader(ref, tmp_path / "r", lambda: stand_in, count=N)
    by = {r.student: r for r in graded(sorted(sub.iterdir()), grader, progress=False)}
    assert stand_in.calls == [N, N]  # two distinct sets: two Inception passes for four archives
    assert grader.sets_scored == 2 and grader.sets_reused == 2
    assert by["20250001"].fid == by["20250002"].fid == by["20250003"].fid != by["20250004"].fid
    assert by["20250001"].rank == by["20250002"].rank == by["20250003"].rank == 1 and by["20250004"].rank == 4
    for s, others in (("20250001", ("20250002", "20250003")), ("20250002", ("20250001", "20250003"))):
        for o in others:  # the duplicates are flagged on every row, as before
            assert f"{N} image(s) identical to ones in {o} ({o}.tar.gz)" in by[s].warnings
    assert not by["20250004"].warnings

    # a later run (another results folder state, a new grader) with a new archive of a known set
    _resaved(sub / "20250005.tar.gz", images(4, N), "late")
    again = Grader(ref, tmp_path / "r", lambda: stand_in, count=N)
    rows = {r.student: r for r in graded(sorted(sub.iterdir()), again, progress=False)}
    assert stand_in.calls == [N, N] and again.sets_scored == 0  # from the per-archive and per-set caches
    assert rows["20250005"].fid == rows["20250004"].fid and rows["20250005"].status == "scored"

    # a set's score is reused only for the same reference (and weights, image size)
    other = reference(tmp_path / "other.npz", stand_in, images(200, 40))
    _resaved(sub / "20250006.tar.gz", images(4, N), "later")
    g = Grader(other, tmp_path / "r", lambda: stand_in, count=N)
    assert graded([sub / "20250006.tar.gz"], g, progress=False)[0].fid != rows["20250004"].fid
    assert g.sets_scored == 1 and stand_in.calls == [N, N, N]
    for torn in (tmp_path / "r" / "cache" / "sets").iterdir():  # a torn set entry is scored again, not trusted
        torn.write_text('{"protocol": ')
    (sub / "20250007.tar.gz").write_bytes((sub / "20250006.tar.gz").read_bytes())
    g = Grader(other, tmp_path / "r", lambda: stand_in, count=N)
    assert graded([sub / "20250007.tar.gz"], g, progress=False)[0].status == "scored" and g.sets_scored == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_moves_from_the_first_image_and_the_rest_is_estimated(stand_in, tmp_path, monkeypatch):
    import facegan.grade as g

    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    subs = [submission(tmp_path / f"2025000{i}.tar.gz", images(i, N)) for i in range(3)]
    (tmp_path / "notes.txt").write_text("x")
    ticks = iter(range(0, 10_000, 100))  # each archive "takes" 100 s
    monkeypatch.setattr(g, "_clock", lambda: next(ticks))
    seen: list[str] = []

    def network(batches, **kw):
        def watched():  # what the screen showed as each batch was handed to the network
            for b in batches:
                seen.append(err.getvalue())
                yield b
        return real(watched(), **kw)

    real = stand_in.statistics
    monkeypatch.setattr(stand_in, "statistics", network)
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    said: list[str] = []
    graded([tmp_path / "notes.txt", *subs], Grader(ref, tmp_path / "r", lambda: stand_in, count=N),
          progress=True, say=said.append)
    text = err.getvalue()
    # a bar per archive counting the images handed to the network, batch by batch (8, then 10)
    assert "0/10" in text and "8/10" in text and "10/10" in text and "img" in text
    assert "grade" in text and "archive" in text
    # while the first archive's second batch goes in, its bar already shows the first one
    assert "8/10" in seen[1] and "10/10" not in seen[1] and "2/4" not in seen[1]
    assert said == ["facegan grade: 20250000.tar.gz took 1 min 40 s to check and score; expect about 3 min 20 s more "
                    "for the 2 archive(s) left (less for those cached, rejected or holding an image set already scored)"]


def test_a_long_class_is_told_about_shards(stand_in, tmp_path, monkeypatch):
    import facegan.grade as g

    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    subs = [submission(tmp_path / f"2025000{i}.tar.gz", images(i, N)) for i in range(2)]
    ticks = iter(range(0, 100_000, 4000))
    monkeypatch.setattr(g, "_clock", lambda: next(ticks))
    said: list[str] = []
    graded(subs, Grader(ref, tmp_path / "r", lambda: stand_in, count=N), progress=False, say=said.append)
    assert len(said) == 1 and "took 1 h 06 min" in said[0] and "--shard K/N" in said[0]


def test_shard_spec_and_the_deal():
    assert parse_shard("3/10") == (3, 10) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/3", "4/3", "3", "a/b", "-1/2", ""):
        with pytest.raises(Exception, match="expected K/N with 1 <= K <= N"):
            parse_shard(bad)
    entries = [classify(Path(f"/nowhere/{i:02d}.tar.gz")) for i in range(7)]  # missing: classified "ignore"
    assert all(e.action == "ignore" for e in entries)
    assert shard_indices(entries, 1, 3) == list(range(7)) and shard_indices(entries, 2, 3) == []
    for e in entries:
        e.action = "grade"
    parts = [shard_indices(entries, k, 3) for k in (1, 2, 3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]  # round-robin: equal counts, every entry once


@pytest.fixture
def course(tmp_path, stand_in):
    """A class with what a merge must get right: duplicates across parts, a rejected archive, an
    ignored file, a hostile name, copies of training photos, a target."""
    train = images(50, 30)
    np.save(tmp_path / "train.npy", train)
    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "subs"
    sub.mkdir()
    for i in range(1, 8):
        submission(sub / f"2025000{i}.tar.gz", images(i, N, brightness=10 * i))
    _resaved(sub / "20250008.tar.gz", images(1, N, brightness=10), "again")  # 20250001's set, in another part
    (sub / "20250009.tar.gz").write_bytes((sub / "20250002.tar.gz").read_bytes())
    submission(sub / "20250010.tar.gz", np.concatenate([train[:3], images(10, N)[3:]]))  # three training photos
    archive(sub / "20250011.tar.gz", {"x/0.png": png(images(11, 1)[0])})  # too few images
    submission(sub / "<b onmouseover=alert(1)>.tar.gz", images(12, N))
    (sub / "readme.txt").write_text("hi")
    common = ["--ref", str(ref), "--count", str(N), "--quiet", "--target", "40", "--train-images", str(tmp_path / "train.npy")]
    return sub, common


def _outputs(folder: Path) -> dict[str, bytes]:
    files = {name: (folder / name).read_bytes() for name in ("scores.json", "scores.csv", "index.html")}
    files.update({f"grids/{p.name}": p.read_bytes() for p in sorted((folder / "grids").iterdir())})
    return files


def test_parts_merged_write_what_one_run_writes(course, stand_in, tmp_path, monkeypatch, capsys):
    import facegan.leaderboard

    monkeypatch.setattr(facegan.leaderboard.time, "strftime", lambda fmt: "2026-01-01 00:00:00 UTC")
    sub, common = course
    assert main(["grade", str(sub), "-o", str(tmp_path / "one"), *common]) == 0
    single = capsys.readouterr().out
    assert "9 image set(s) scored, 2 archive(s) reused the score of an identical image set" in single
    one = _outputs(tmp_path / "one")
    data = json.loads(one["scores.json"])
    assert data["summary"]["scored"] == 11 and data["summary"]["review"] == 1  # the copies were found
    assert any("identical to ones in 20250008" in w for s in data["submissions"] if s["student"] == "20250001"
               for w in s["warnings"])

    # three machines, three folders, then merged into a fourth
    for k in (1, 2, 3):
        assert main(["grade", str(sub), "-o", str(tmp_path / f"part{k}"), *common, "--shard", f"{k}/3"]) == 0
        out = capsys.readouterr().out
        assert f"part {k}/3" in out and f"part{k}/shards/{k}-of-3.json" in out
        assert not (tmp_path / f"part{k}" / "scores.json").exists()  # a part is not a leaderboard
    assert main(["grade", "--merge", *(str(tmp_path / f"part{k}") for k in (1, 2, 3)), "-o", str(tmp_path / "merged")]) == 0
    merged_out = capsys.readouterr().out
    assert _outputs(tmp_path / "merged") == one  # byte for byte, grids included
    table = lambda text: text.split("facegan grade:")[0]  # noqa: E731
    assert table(merged_out) == table(single)

    # one shared results folder (a cluster's file system), merged in place
    for k in (2, 1):
        assert main(["grade", str(sub), "-o", str(tmp_path / "shared"), *common, "--shard", f"{k}/2"]) == 0
    assert main(["grade", "--merge", str(tmp_path / "shared"), "-o", str(tmp_path / "shared")]) == 0
    assert _outputs(tmp_path / "shared") == one


def test_a_merge_refuses_incomplete_mixed_or_mismatched_parts(course, stand_in, tmp_path, capsys):
    sub, common = course
    out = tmp_path / "r"

    def merge_error(*dirs) -> str:
        assert main(["grade", "--merge", *map(str, dirs), "-o", str(tmp_path / "m")]) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and err.splitlines()[-1].startswith("facegan: error: ")
        return err.splitlines()[-1]

    assert "no grading shards" in merge_error(out)
    assert main(["grade", str(sub), "-o", str(out), *common, "--shard", "1/2"]) == 0
    assert "1 of 2 parts missing (2/2)" in merge_error(out)
    assert main(["grade", str(sub), "-o", str(out), *common, "--shard", "1/3"]) == 0
    assert "shards of 2 and of 3 parts found" in merge_error(out)
    for p in (out / "shards").glob("*-of-3.json"):
        p.unlink()
    (sub / "20250099.tar.gz").write_bytes((sub / "20250001.tar.gz").read_bytes())  # a late submission
    assert main(["grade", str(sub), "-o", str(out), *common, "--shard", "2/2"]) == 0
    assert "graded another list of submissions" in merge_error(out)
    (out / "shards" / "2-of-2.json").write_text("{")
    assert "2-of-2.json: not readable as a grading shard" in merge_error(out)
    capsys.readouterr()
    assert main(["grade", "--merge", str(out), "-o", str(tmp_path / "m"), "--target", "3"]) == 2
    assert "leave out --target" in capsys.readouterr().err
    assert main(["grade", str(sub), "-o", str(out), *common, "--shard", "3/2"]) == 2
    assert "--shard '3/2': expected K/N" in capsys.readouterr().err
    assert main(["grade", "-o", str(out)]) == 2
    assert "give the SUBMISSIONS" in capsys.readouterr().err
