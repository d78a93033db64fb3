"""`facegan fid` / `stats` around the network, with a cheap stand-in for the Inception: warnings
(small N, other sizes), the floor recorded by `stats --floor` and shown by `fid`, "reference of
unknown size", the device and thread options, hostile folders and outputs, the Python API."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from facegan.cli import main
from facegan.fid.features import FEATURE_DIMS, summarize
from facegan.fid.floor import real_floor
from facegan.fid.stats import Stats

#: float results: run again with the kernels forced down in CI (.ci/forced-kernels)
pytestmark = pytest.mark.numeric


class StandIn:
    """The FIDScorer interface on a fixed random feature map of 8x8 colour samples (no network)."""

    batch_size = 8
    weights_sha256 = "5" * 64
    weights = SimpleNamespace(origin="stand-in", sha256="5" * 64)

    def __init__(self):
        self.proj = np.random.default_rng(123).standard_normal((192, FEATURE_DIMS)).astype(np.float32) / 8
        self.images_seen = 0

    def batch_features(self, batch) -> np.ndarray:
        batch = np.asarray(batch)
        rows = np.linspace(0, batch.shape[1] - 1, 8).astype(int)
        cols = np.linspace(0, batch.shape[2] - 1, 8).astype(int)
        x = batch[:, rows][:, :, cols].reshape(len(batch), -1).astype(np.float32) / 255
        self.images_seen += len(batch)
        return np.tanh(x @ self.proj)

    def iter_features(self, images, total=None):
        for batch in ([images] if hasattr(images, "shape") else images):
            yield self.batch_features(batch)


def _faces(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 4, 4, 3)).astype(np.float32)
    big = coarse.repeat(size // 4, axis=1).repeat(size // 4, axis=2)
    return np.clip(big + rng.normal(0, 10, big.shape), 0, 255).astype(np.uint8)


def _write(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture
def stand_in(monkeypatch):
    """Every scorer the commands and the API make is the stand-in; weights are not resolved."""
    import facegan.fid.api as api
    import facegan.fid.inception as inception
    from facegan.fid.options import ScorerOptions

    scorer = StandIn()
    monkeypatch.setattr(ScorerOptions, "scorer", lambda self, **kw: scorer)
    monkeypatch.setattr(inception, "resolve_weights", lambda *a, **k: scorer.weights)
    monkeypatch.setattr(api, "get_scorer", lambda *a, **k: scorer)
    return scorer


# ----------------------------------------------------------------------------- warnings


def test_small_sides_and_other_sizes_are_warned_about(tmp_path, stand_in):
    from facegan.fid.comparison import compare

    a = _write(tmp_path / "a", [*_faces(8, 32, seed=1), *_faces(2, 64, seed=2)])
    np.save(tmp_path / "b.npy", _faces(20, seed=3))
    result = compare(a, tmp_path / "b.npy", stand_in, kid_subsets=0)
    small = [w for w in result.warnings if "fewer than 2048" in w]
    # said once for both sides, and short (it used to be two 280-character lines)
    assert small == [f"A ({a}) 10 and B ({tmp_path / 'b.npy'}) 20 images, fewer than 2048: FID is exact but "
                     "biased upwards at this size; compare it with the real-data floor (--floor REAL)"]
    (size,) = [w for w in result.warnings if "not 64x64" in w]
    assert size.startswith(f"A ({a}): images of 32x32 (8)")  # B's 64x64 images are fine
    quiet = compare(tmp_path / "b.npy", tmp_path / "b.npy", stand_in, kid_subsets=0, expect_size=None)
    assert not [w for w in quiet.warnings if "not 64x64" in w]


# ----------------------------------------------------------------------------- the floor, everywhere


def test_stats_floor_is_recorded_and_fid_prints_it(tmp_path, stand_in, capsys):
    real = _faces(14, seed=4)
    np.save(tmp_path / "real.npy", real)
    ref = tmp_path / "ref.npz"
    assert main(["stats", str(tmp_path / "real.npy"), "-o", str(ref), "--floor", "--floor-n", "4",
                 "--floor-splits", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^floor: [0-9.]+ ± [0-9.]+ .*4 real vs the other 10, 3 disjoint splits \(recorded in ref\.npz\)", out, re.M)
    st = Stats.load(ref)
    # the same numbers as the floor computed directly from the stand-in's features
    feats = stand_in.batch_features(real)
    want = real_floor(summarize([feats], 14, keep=12, seed=0), 4, 3)
    assert st.floor["n_sample"] == 4 and st.floor["splits"] == 3
    assert st.floor["values"] == pytest.approx(want.values, rel=1e-6)

    assert main(["stats", str(tmp_path / "real.npy"), "-o", str(ref), "--floor", "--floor-n", "4", "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out  # the floor is there: nothing to redo
    assert main(["stats", str(tmp_path / "real.npy"), "-o", str(ref), "--floor", "--floor-n", "5", "--quiet"]) == 0
    assert "records no floor at 5 samples: recomputing" in capsys.readouterr().err
    assert Stats.load(ref).floor["n_sample"] == 5

    samples = _write(tmp_path / "s", _faces(5, seed=5))
    assert main(["fid", str(samples), str(ref), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^floor\s+[0-9.]+ ± .*5 real vs the other 9, .*\(recorded in .*ref\.npz\)", out, re.M)
    assert f"B: 14 images ({ref})" in out

    other = _write(tmp_path / "s6", _faces(6, seed=6))
    assert main(["fid", str(other), str(ref), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "records the real-data floor at 5 samples, not at A's 6" in captured.err
    assert re.search(r"^floor\s+unknown", captured.out, re.M)


def test_stats_floor_needs_enough_images_and_says_so_before_any_work(tmp_path, stand_in, capsys):
    np.save(tmp_path / "few.npy", _faces(5))
    assert main(["stats", str(tmp_path / "few.npy"), "-o", str(tmp_path / "r.npz"), "--floor", "--quiet"]) == 2
    assert "5 images: too few for a floor at 1000 samples" in capsys.readouterr().err
    assert stand_in.images_seen == 0


def test_fid_floor_with_too_few_real_images_fails_before_any_scoring(tmp_path, stand_in, capsys):
    samples = _write(tmp_path / "s", _faces(6, seed=1))
    np.save(tmp_path / "few.npy", _faces(7, seed=2))
    assert main(["fid", str(samples), str(tmp_path / "few.npy"), "--floor", str(tmp_path / "few.npy"), "--quiet"]) == 2
    assert "7 real images: too few for a floor at 6 samples (needs at least 8" in capsys.readouterr().err
    assert stand_in.images_seen == 0


def test_a_stopped_stats_floor_pass_resumes_to_the_same_floor(tmp_path, stand_in):
    from facegan.fid.floor import floor_keep
    from facegan.fid.resumable import partial_path, resumable_summary
    from facegan.fid.sources import open_images

    src = _write(tmp_path / "real", _faces(30, seed=7))

    class Stop(StandIn):
        calls = 0

        def batch_features(self, batch):
            Stop.calls += 1
            if Stop.calls == 3:
                raise KeyboardInterrupt
            return super().batch_features(batch)

    keep = floor_keep(6, 4)
    out = tmp_path / "ref.npz"
    with pytest.raises(KeyboardInterrupt):
        resumable_summary(open_images(src), Stop(), out, keep=keep, save_every_s=0, progress=False)
    assert partial_path(out).is_file()
    resumed = StandIn()
    stats, summary = resumable_summary(open_images(src), resumed, out, keep=keep, save_every_s=0, progress=False)
    assert resumed.images_seen == 30 - 16  # two batches of 8 were kept
    straight_stats, straight = resumable_summary(open_images(src), StandIn(), tmp_path / "x.npz", keep=keep,
                                                 progress=False)
    np.testing.assert_array_equal(summary.kept_index, straight.kept_index)
    np.testing.assert_allclose(summary.kept, straight.kept)
    np.testing.assert_allclose(stats.sigma, straight_stats.sigma, atol=1e-9)
    assert real_floor(summary, 6, 4).values == pytest.approx(real_floor(straight, 6, 4).values)


def test_a_count_less_reference_is_of_unknown_size_never_zero(tmp_path, stand_in, capsys):
    np.savez(tmp_path / "theirs.npz", mu=np.zeros(FEATURE_DIMS), sigma=np.eye(FEATURE_DIMS))  # pytorch-fid's
    samples = _write(tmp_path / "s", _faces(4))
    assert main(["fid", str(samples), str(tmp_path / "theirs.npz"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "B: reference of unknown size" in out and "B: 0" not in out and " 0 " not in out.split("\n")[2]


# ----------------------------------------------------------------------------- device, threads, spelling


def test_fid_and_stats_default_to_auto_and_cuda_without_a_gpu_is_one_line(tmp_path, monkeypatch, capsys):
    from facegan.fid.options import ScorerOptions

    assert ScorerOptions().device == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    samples = _write(tmp_path / "s", _faces(3))
    for argv in (["fid", str(samples), str(samples)], ["stats", str(samples), "-o", str(tmp_path / "r.npz")]):
        assert main([*argv, "--device", "cuda", "--quiet"]) == 2
        err = capsys.readouterr().err  # before any weights are looked for or image read
        assert err == "facegan: error: --device cuda: no CUDA GPU is visible to PyTorch (use --device cpu or auto)\n"


def test_threads_and_batch_are_taken_the_old_batch_spelling_too(tmp_path, stand_in, capsys, monkeypatch):
    from facegan.config import dataclass_from_args
    from facegan.fid.options import ScorerOptions
    from facegan.cli import build_parser

    for spelling in ("--batch", "--batch-size"):
        args = build_parser().parse_args(["fid", "a", "b", spelling, "16"])
        assert dataclass_from_args(ScorerOptions, args).batch == 16
    before = torch.get_num_threads()
    try:
        samples = _write(tmp_path / "s", _faces(3))
        assert main(["fid", str(samples), str(samples), "--threads", "1", "--quiet"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert main(["fid", str(samples), str(samples), "--threads", "0", "--quiet"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


def test_usage_lines_show_what_is_required(capsys):
    for argv, usage in ((["stats", "-h"], "usage: facegan stats SRC -o OUT.npz"),
                        (["fid", "-h"], "usage: facegan fid A B")):
        with pytest.raises(SystemExit):
            main(argv)
        assert capsys.readouterr().out.startswith(usage)


# ----------------------------------------------------------------------------- hostile inputs and outputs


@pytest.mark.timeout(60)
def test_fifos_links_and_loops_in_a_folder_are_skipped_and_counted_not_a_hang(tmp_path, stand_in, capsys):
    samples = _write(tmp_path / "s", _faces(4))
    os.mkfifo(samples / "x.png")
    os.symlink("/dev/zero", samples / "zero.png")
    os.symlink(samples / "loop-b.png", samples / "loop-a.png")
    os.symlink(samples / "loop-a.png", samples / "loop-b.png")
    os.symlink(samples / "gone.png", samples / "dangling.png")
    assert main(["fid", str(samples), str(samples), "--quiet", "--json"]) == 0
    captured = capsys.readouterr()
    assert '"skipped": 5' in captured.out and '"n": {\n    "a": 4' in captured.out
    assert "skipped 5 file(s)" in captured.err


def test_stats_refuses_outputs_that_cannot_be_written_before_any_work(tmp_path, stand_in, capsys):
    src = _write(tmp_path / "s", _faces(3))
    (tmp_path / "dir.npz").mkdir()
    (tmp_path / "afile").write_text("x")
    for out, message in ((tmp_path / "dir.npz", "dir.npz: is a folder"),
                         (tmp_path / "afile" / "ref.npz", "afile is a file, not a folder"),
                         (tmp_path / "ref.txt", "must be named *.npz")):
        assert main(["stats", str(src), "-o", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert stand_in.images_seen == 0


def test_stats_on_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, stand_in, capsys, monkeypatch):
    import errno

    src = _write(tmp_path / "s", _faces(3))
    out = tmp_path / "ref.npz"
    out.write_bytes(b"an older file")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    assert main(["stats", str(src), "-o", str(out), "--quiet", "--force"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"facegan: error: {out}: cannot write it: No space left on device") and err.count("\n") == 1
    assert out.read_bytes() == b"an older file"


def test_stats_sweeps_a_killed_runs_temporary_files(tmp_path, stand_in):
    src = _write(tmp_path / "s", _faces(3))
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process can have this pid
    stale = tmp_path / f".ref.npz.facegan-tmp-{dead}-00ff00ff"
    stale.write_bytes(b"half a file")
    stale_partial = tmp_path / f".ref.npz.partial.npz.facegan-tmp-{dead}-0badc0de"
    stale_partial.write_bytes(b"half a state")
    assert main(["stats", str(src), "-o", str(tmp_path / "ref.npz"), "--quiet"]) == 0
    assert not stale.exists() and not stale_partial.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.npz", "s"]


# ----------------------------------------------------------------------------- the Python API


@pytest.mark.filterwarnings("ignore::facegan.fid.api.FIDWarning")
def test_compute_fid_kid_stats_take_folders_arrays_tensors_and_stats(tmp_path, stand_in):
    from facegan.fid import FIDWarning, compare, compute_fid, compute_kid, compute_stats

    a_imgs, b_imgs = _faces(6, seed=8), _faces(9, seed=9)
    a = _write(tmp_path / "a", a_imgs)
    np.save(tmp_path / "b.npy", b_imgs)
    want = compare(a, tmp_path / "b.npy", stand_in, kid_subsets=0).fid
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [compute_fid(a, tmp_path / "b.npy"), compute_fid(a_imgs, b_imgs),
               compute_fid(torch.from_numpy(a_imgs), str(tmp_path / "b.npy"))]
    assert got == pytest.approx([want] * 3, rel=1e-9)
    small = [w for w in caught if issubclass(w.category, FIDWarning) and "fewer than 2048" in str(w.message)]
    assert small and all(w.filename == __file__ for w in small)  # pointing at the caller's line

    ref = compute_stats(b_imgs)
    assert ref.n == 9 and ref.input_sha256
    path = ref.save(tmp_path / "ref.npz")
    assert compute_fid(a_imgs, ref) == pytest.approx(want, rel=1e-9)
    assert compute_fid(a_imgs, path) == pytest.approx(want, rel=1e-9)
    assert compute_stats(path).n == 9

    mean, std = compute_kid(a_imgs, b_imgs, subsets=5, subset_size=4)
    assert isinstance(mean, float) and std >= 0
    from facegan.errors import FaceganError

    with pytest.raises(FaceganError, match="needs images on both sides"):
        compute_kid(a_imgs, ref)
    with pytest.raises(FaceganError, match=r"uint8 of shape \(N, H, W, 3\)"):
        compute_fid(a_imgs.astype(np.float32), b_imgs)
