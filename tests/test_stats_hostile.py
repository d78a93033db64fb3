"""Statistics, caches and logs that lie about their size or were damaged: one line naming the
file (exit 2, no traceback) and nothing allocated from the lie — or, for facegan's own files read
back, the damaged part recomputed or skipped with a warning."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from gradekit import DIMS, graded, images, reference, stand_in, submission  # noqa: F401 (fixture)

from facegan.cli import main
from facegan.errors import FaceganError
from facegan.fid.stats import Stats

N = 8


def _npy_bytes(arr: np.ndarray, shape: tuple[int, ...] | None = None, data: bytes | None = None) -> bytes:
    """An .npy of ``arr``, or one whose header declares ``shape`` over ``data``."""
    buf = io.BytesIO()
    if shape is None:
        np.save(buf, arr)
        return buf.getvalue()
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def _npz(path, members: dict[str, bytes], deflated: dict[str, int] | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        for key, raw in members.items():
            zf.writestr(f"{key}.npy", raw)
        for key, size in (deflated or {}).items():  # a member streamed in: never held whole here
            info = zipfile.ZipInfo(f"{key}.npy")
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                f.write(_npy_bytes(None, (size // 8,), b""))
                block = bytes(1 << 20)
                for _ in range(size // len(block)):
                    f.write(block)
    return path


def _peak(fn):
    tracemalloc.start()
    try:
        try:
            fn()
        except FaceganError as exc:
            error = exc
        else:
            error = None
        return tracemalloc.get_traced_memory()[1], error
    finally:
        tracemalloc.stop()


def test_a_sigma_declaring_10_billion_entries_over_8_bytes_is_refused_unallocated(tmp_path, stand_in, capsys):
    bad = _npz(tmp_path / "lying.npz", {"mu": _npy_bytes(np.zeros(DIMS)),
                                        "sigma": _npy_bytes(None, (100_000, 100_000), b"\0" * 8)})
    peak, error = _peak(lambda: Stats.load(bad))
    assert error is not None and "lying.npz: sigma must have shape (64, 64) to match mu, got (100000, 100000)" in str(error)
    assert peak < 1 << 20  # 80 GB declared; nothing of it allocated
    square = _npz(tmp_path / "short.npz", {"mu": _npy_bytes(np.zeros(DIMS)), "sigma": _npy_bytes(None, (DIMS, DIMS), b"\0" * 8)})
    with pytest.raises(FaceganError, match=r"short.npz: 'sigma' declares 32,768 bytes of data but holds 8"):
        Stats.load(square)
    wide = _npz(tmp_path / "wide.npz", {"mu": _npy_bytes(None, (100_000,), b"\0" * 8), "sigma": b""})
    with pytest.raises(FaceganError, match=r"wide.npz: mu has 100,000 dimensions \(at most 4,096\)"):
        Stats.load(wide)
    # the commands: one line naming the file, exit 2
    sub = tmp_path / "sub"
    sub.mkdir()
    submission(sub / "20250001.tar.gz", images(1, N))
    assert main(["grade", str(sub), "--ref", str(bad), "-o", str(tmp_path / "r"), "--count", str(N), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "lying.npz" in err and "100000, 100000" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_fid_command_refuses_it_before_scoring(tmp_path, stand_in, capsys):
    bad = _npz(tmp_path / "lying.npz", {"mu": _npy_bytes(np.zeros(2048)),
                                        "sigma": _npy_bytes(None, (100_000, 100_000), b"\0" * 8)})
    folder = tmp_path / "a"
    folder.mkdir()
    from facegan.images import save_png

    for i, img in enumerate(images(2, 4)):
        save_png(img, folder / f"{i}.png")
    assert main(["fid", str(folder), str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "lying.npz" in err and "sigma must have shape (2048, 2048)" in err and "Traceback" not in err
    assert stand_in.calls == []  # refused before anything was scored


def test_keys_not_needed_are_never_inflated(tmp_path):
    good = Stats(np.zeros(4), np.eye(4), 10)
    path = good.save(tmp_path / "s.npz")
    with zipfile.ZipFile(path) as src:
        members = {n.removesuffix(".npy"): src.read(n) for n in src.namelist()}
    bomb = _npz(tmp_path / "bomb.npz", members, deflated={"extra": 256 << 20})  # 256 MiB in ~256 KB
    assert bomb.stat().st_size < 2 << 20
    peak, error = _peak(lambda: Stats.load(bomb))
    assert error is None and peak < 8 << 20
    # a key that is read (source) but declares 256 MiB is refused from its header
    members.pop("source")
    lying = _npz(tmp_path / "lying-source.npz", members, deflated={"source": 256 << 20})
    peak, error = _peak(lambda: Stats.load(lying))
    assert error is not None and "lying-source.npz: 'source' must be a single value, got shape (33554432,)" in str(error)
    assert peak < 8 << 20


def test_a_cache_npy_given_as_the_reference_is_named(tmp_path, stand_in, capsys):
    np.save(tmp_path / "cache.npy", images(3, 4))
    sub = tmp_path / "sub"
    sub.mkdir()
    submission(sub / "20250001.tar.gz", images(1, N))
    assert main(["grade", str(sub), "--ref", str(tmp_path / "cache.npy"), "-o", str(tmp_path / "r"),
                 "--count", str(N), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cache.npy: not a readable .npz statistics file: it is a .npy array" in err and "Traceback" not in err
    assert "TypeError" not in err and "allow_pickle" not in err


def test_a_damaged_stats_partial_file_starts_over(tmp_path):
    from facegan.fid.features import FEATURE_DIMS
    from facegan.fid.resumable import _load

    def partial(meta, **over):
        arrays = {"meta_json": np.array(json.dumps(meta)), "n": np.array(3), "has_shift": np.array(True),
                  "shift": np.zeros(FEATURE_DIMS), "s1": np.zeros(FEATURE_DIMS), "s2": np.zeros((FEATURE_DIMS,) * 2)}
        np.savez(tmp_path / "p.npz", **{**arrays, **over})
        return _load(tmp_path / "p.npz", 0)

    good = {"position": 3, "prefix_sha256": "ab", "skipped": [["x.txt", "not an image"]]}
    assert partial(good) is not None
    assert partial([1, 2]) is None  # was AttributeError
    assert partial({**good, "position": "3"}) is None and partial({**good, "skipped": [1]}) is None
    assert partial(good, s2=np.zeros((3, 3))) is None


def test_a_damaged_grade_cache_entry_is_graded_again(tmp_path, stand_in):
    from facegan.grade import Grader, list_submissions

    ref = reference(tmp_path / "ref.npz", stand_in, images(100, 40))
    sub = tmp_path / "sub"
    sub.mkdir()
    submission(sub / "20250001.tar.gz", images(1, N))
    first = graded(list_submissions([sub]), Grader(ref, tmp_path / "r", lambda: stand_in, count=N), progress=False)
    [cache] = (tmp_path / "r" / "cache").glob("*.json")
    [set_cache] = (tmp_path / "r" / "cache" / "sets").glob("*.json")
    saved = json.loads(cache.read_text())
    saved["result"]["fid"] = "abc"
    cache.write_text(json.dumps(saved))
    calls = len(stand_in.calls)
    again = graded(list_submissions([sub]), Grader(ref, tmp_path / "r", lambda: stand_in, count=N), progress=False)
    # the archive is checked again; its image set's score is still good in cache/sets: no new pass
    assert len(stand_in.calls) == calls and again[0].fid == first[0].fid
    assert json.loads(cache.read_text())["result"]["fid"] == again[0].fid  # repaired
    for damage in ('{"protocol": 1, "fid": "abc", "n": 1}', "[1, 2]", '{"fid'):  # then the set's entry too
        cache.write_text('{"result": []}')  # (the archive entry damaged too, so that it is graded again)
        set_cache.write_text(damage)
        calls = len(stand_in.calls)
        third = graded(list_submissions([sub]), Grader(ref, tmp_path / "r", lambda: stand_in, count=N),
                      progress=False)
        assert len(stand_in.calls) == calls + 1 and third[0].fid == first[0].fid  # scored again, same bits


def test_a_latin_1_byte_in_stats_jsonl_is_skipped_with_a_warning(tmp_path, capsys):
    from facegan.train.monitor import read_stats

    path = tmp_path / "stats.jsonl"
    path.write_bytes(b'{"kimg": 1.0, "loss_d": 0.5}\n{"kimg": 2.0, "note": "caf\xe9"}\n[1, 2]\n'
                     b'{"kimg": 3.0, "loss_d": 0.4}\n{"kimg": 4')
    rows = read_stats(path)
    assert [r["kimg"] for r in rows] == [1.0, 3.0]
    assert "stats.jsonl: skipped 2 damaged line(s)" in capsys.readouterr().err  # the torn last line is not damage


@pytest.mark.parametrize("kind", ["sparse", "short"])
def test_a_npy_lying_about_its_images_is_refused_for_training(tmp_path, capsys, kind):
    path = tmp_path / "cache.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                 "shape": (3_000_000, 64, 64, 3)})
        if kind == "sparse":
            f.truncate(f.tell() + 3_000_000 * 64 * 64 * 3)  # 37 GB of holes: nothing on disk
        else:
            f.write(b"\0" * 1000)
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--kimg", "1"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert ("sparse file" if kind == "sparse" else "the file holds 1,000 bytes of data") in err
