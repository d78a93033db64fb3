"""An unsorted ``.tar.gz`` is read in one pass by ``prepare`` and by ``stats``/``fid``, not once
per step back: each pass through the archive is counted (every pass goes through
:func:`facegan.safetar.iter_tar`), and the results equal those from the same files in a folder.

The archives hold a few hundred tiny images added in shuffled order, so reading them by sorted
name would go back in the archive about every other image."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_fid_compare import StandIn
from test_fid_resume import Interrupting

import facegan.data.cache as cache
import facegan.images
from facegan.data import PrepareConfig, prepare, sidecar_path, work_dir
from facegan.fid.resumable import resumable_statistics
from facegan.fid.sources import open_images, summarize_source

N = 240
QUIET = dict(progress=False, log=lambda msg: None)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    """The same N tiny PNGs (in two subfolders, with a text file) as a folder and as a .tar.gz
    whose members are in shuffled order."""
    base = tmp_path_factory.mktemp("photos")
    folder = base / "folder"
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {"notes.txt": b"not an image"}
    for i in range(N):
        files[f"{'ab'[i % 2]}/{i:04d}.png"] = _png(rng.integers(0, 256, (12, 10 + i % 3, 3), dtype=np.uint8))
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder, _unsorted_tar(base / "photos.tar.gz", files, rng)


def _unsorted_tar(path: Path, files: dict[str, bytes], rng) -> Path:
    """A .tar.gz of ``files``, its members in shuffled order."""
    names = list(files)
    rng.shuffle(names)
    with tarfile.open(path, "w:gz") as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            tf.addfile(info, io.BytesIO(files[name]))
    return path


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def passes(monkeypatch) -> list[str]:
    """The archives read from their start, one entry per pass (listing them is one)."""
    real, seen = facegan.images.iter_tar, []

    def counting(raw, where, *args, **kwargs):
        seen.append(where)
        return real(raw, where, *args, **kwargs)

    monkeypatch.setattr(facegan.images, "iter_tar", counting)
    return seen


def test_the_archive_is_unsorted(photos):
    with tarfile.open(photos[1]) as tf:
        names = [m.name for m in tf.getmembers() if m.name.endswith(".png")]
    backwards = sum(b < a for a, b in zip(names, names[1:]))
    assert backwards > N // 3  # by sorted name, that many steps back through the archive


# ------------------------------------------------------------------------------------- prepare


def _cfg(**kw) -> PrepareConfig:
    return PrepareConfig(size=8, workers=1, chunk=32, **kw)


def test_prepare_reads_an_unsorted_tar_once_and_writes_the_folder_s_cache(photos, tmp_path, passes):
    folder, archive = photos
    from_folder = prepare(folder, tmp_path / "folder.npy", _cfg(), **QUIET)
    assert passes == []
    logged: list[str] = []
    from_tar = prepare(archive, tmp_path / "tar.npy", _cfg(), progress=False, log=logged.append)
    assert passes == [str(archive)] * 2  # listed once, then read once (not once per step back)
    assert (tmp_path / "tar.npy").read_bytes() == (tmp_path / "folder.npy").read_bytes()  # sorted order
    assert from_tar.count == from_folder.count == N and from_tar.skipped == from_folder.skipped
    assert [n for n, _ in from_tar.skipped] == ["notes.txt"]
    assert any("once, in its own order" in line for line in logged)
    assert not work_dir(tmp_path / "tar.npy").exists()  # the uncompressed copy went with the work folder


def test_prepare_with_worker_processes_reads_the_copy(photos, tmp_path):
    folder, archive = photos
    prepare(folder, tmp_path / "folder.npy", _cfg(), **QUIET)
    prepare(archive, tmp_path / "tar.npy", PrepareConfig(size=8, workers=2, chunk=32), **QUIET)
    assert (tmp_path / "tar.npy").read_bytes() == (tmp_path / "folder.npy").read_bytes()


def test_an_interrupted_tar_prepare_resumes_reading_the_archive_once_more(photos, tmp_path, passes, monkeypatch):
    folder, archive = photos
    prepare(folder, tmp_path / "folder.npy", _cfg(), **QUIET)
    out = tmp_path / "tar.npy"
    real = cache.prepare_image
    stop_at = sorted(open_images(folder)._source.names)[100]  # in the 4th chunk of 32

    def interrupting(raw, name, size=64):
        if name == stop_at:
            raise KeyboardInterrupt
        return real(raw, name, size)

    monkeypatch.setattr(cache, "prepare_image", interrupting)
    with pytest.raises(KeyboardInterrupt):
        prepare(archive, out, _cfg(), **QUIET)
    work = work_dir(out)
    assert sorted(p.name for p in work.glob("chunk-*.json")) == [f"chunk-00000{i}.json" for i in range(3)]
    assert not (work / cache.SPOOL_NAME).exists()  # the copy is not left behind on Ctrl-C

    monkeypatch.setattr(cache, "prepare_image", real)
    passes.clear()
    report = prepare(archive, out, _cfg(), **QUIET)
    assert report.resumed_chunks == 3
    assert passes == [str(archive)] * 2  # the reused chunks' inputs are hashed from the same one pass
    assert out.read_bytes() == (tmp_path / "folder.npy").read_bytes()
    assert sidecar_path(out).is_file() and not work.exists()


def test_a_full_disk_while_copying_the_archive_is_one_line_and_leaves_no_copy(photos, tmp_path, capsys, monkeypatch):
    import errno

    import facegan.data.spool as spool
    from facegan.cli import main

    def full(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if "w" in mode:
            def write(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            f.write = write
        return f

    monkeypatch.setattr(spool, "open", full, raising=False)
    out = tmp_path / "c.npy"
    assert main(["prepare", str(photos[1]), "-o", str(out), "--quiet", "--size", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    blob = work_dir(out) / cache.SPOOL_NAME
    assert err.startswith(f"facegan: error: {blob}: cannot write the uncompressed copy of {photos[1]}: "
                          "No space left on device")
    assert "run the same command again" in err and not blob.exists() and not out.exists()


def _truncate_after_listing(monkeypatch, module, attr: str, archive: Path) -> None:
    """``module.attr`` (the function that lists the source) as it is, but once the archive is
    listed its second half is cut off: the pass that reads it stops half way."""
    real = getattr(module, attr)

    def listing_then_cut(*args, **kwargs):
        result = real(*args, **kwargs)
        data = archive.read_bytes()
        archive.write_bytes(data[: len(data) // 2])
        return result

    monkeypatch.setattr(module, attr, listing_then_cut)


def test_an_archive_cut_short_after_listing_skips_and_lists_the_rest(photos, tmp_path, monkeypatch):
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(photos[1].read_bytes())
    _truncate_after_listing(monkeypatch, cache, "resolve_source", archive)
    report = prepare(archive, tmp_path / "c.npy", _cfg(), **QUIET)
    unreadable = [(n, r) for n, r in report.skipped if n != "notes.txt"]
    assert 0 < report.count < N and report.count + len(unreadable) == N
    assert all("cannot be read" in r for _, r in unreadable)


# ------------------------------------------------------------------------------ stats and fid


def test_stats_read_an_unsorted_tar_once_and_equal_the_folder_s(photos, passes):
    folder, archive = photos
    scorer = StandIn()
    by_folder, _ = summarize_source(open_images(folder), scorer, keep=0)
    images = open_images(archive)
    by_tar, _ = summarize_source(images, scorer, keep=0)
    assert passes == [str(archive)] * 2  # listed, then read once: batches in archive order
    assert by_tar.n == by_folder.n == N and images.skipped == [("notes.txt", "not an image file")]
    np.testing.assert_allclose(by_tar.mu, by_folder.mu, rtol=0, atol=1e-6)  # the order is only rounding
    np.testing.assert_allclose(by_tar.sigma, by_folder.sigma, rtol=0, atol=1e-6)
    assert by_tar.input_sha256 == by_folder.input_sha256  # the hash is over sorted names, as a folder's

    passes.clear()
    assert open_images(archive).sha256 == by_folder.input_sha256  # 'stats' up-to-date check: one pass too
    assert passes == [str(archive)] * 2


def test_an_interrupted_pass_over_a_tar_resumes_in_archive_order(tmp_path, passes, capsys):
    rng = np.random.default_rng(1)
    files = {f"{i:03d}.png": _png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for i in range(40)}
    archive = _unsorted_tar(tmp_path / "photos.tar.gz", files, rng)
    scorer = StandIn()
    run = lambda src, s, out: resumable_statistics(open_images(src), s, out, progress=False, save_every_s=0)  # noqa: E731
    straight = run(archive, Interrupting(scorer), tmp_path / "straight.npz")
    out = tmp_path / "ref.npz"
    with pytest.raises(KeyboardInterrupt):
        run(archive, Interrupting(scorer, at=3), out)  # two batches of 8 saved
    passes.clear()
    again = Interrupting(scorer)
    resumed = run(archive, again, out)
    assert "resuming" in capsys.readouterr().err
    assert again.images_scored == 40 - 16  # nothing scored twice
    assert len(passes) == 3  # listing; the done prefix hashed (stops there); the rest read
    assert resumed.n == 40 and resumed.input_sha256 == straight.input_sha256
    np.testing.assert_allclose(resumed.mu, straight.mu, rtol=0, atol=1e-9)  # the same sums, same order
    np.testing.assert_allclose(resumed.sigma, straight.sigma, rtol=0, atol=1e-9)


def test_a_tar_cut_short_while_scored_skips_and_counts_the_rest(photos, tmp_path, monkeypatch):
    import facegan.fid.sources as sources

    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(photos[1].read_bytes())
    _truncate_after_listing(monkeypatch, sources, "open_source", archive)
    images = open_images(archive)
    stats, _ = summarize_source(images, StandIn(), keep=0)
    unreadable = [(n, r) for n, r in images.skipped if n != "notes.txt"]
    assert 0 < stats.n < N and stats.n + len(unreadable) == N
    assert all("cannot be read" in r for _, r in unreadable)
    assert len(stats.input_sha256) == 64
