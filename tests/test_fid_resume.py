"""``facegan stats`` survives an interruption: the resumed pass equals an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan.cli import main
from facegan.fid.resumable import partial_path, resumable_statistics
from facegan.fid.sources import open_images
from facegan.fid.stats import Stats

#: float results: run again with the kernels forced down in CI (.ci/forced-kernels)
pytestmark = pytest.mark.numeric

N = 40


def _photos(folder: Path, n: int = N, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    (folder / "017b.png").write_bytes(b"not a png")  # decoding fails: skipped and counted
    (folder / "notes.txt").write_text("not an image")  # not listed as an image at all
    return folder


class Interrupting:
    """The scorer, but Ctrl-C arrives during batch number ``at`` (counting from 1)."""

    def __init__(self, scorer, at: int | None = None):
        self.scorer, self.at, self.images_scored, self.calls = scorer, at, 0, 0
        self.batch_size, self.weights_sha256 = scorer.batch_size, scorer.weights_sha256

    def batch_features(self, batch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        self.images_scored += len(batch)
        return self.scorer.batch_features(batch)


def _run(src, scorer, out, **kw):
    return resumable_statistics(open_images(src), scorer, out, progress=False, save_every_s=0, **kw)


def _same(a: Stats, b: Stats) -> None:
    assert a.n == b.n and a.input_sha256 == b.input_sha256
    np.testing.assert_allclose(a.mu, b.mu, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["folder", "npy"])
def test_an_interrupted_pass_resumes_to_the_same_statistics(kind, scorer, tmp_path, capsys):
    src = _photos(tmp_path / "photos")
    if kind == "npy":
        arr = np.stack([np.asarray(Image.open(p)) for p in sorted(src.glob("[0-9][0-9][0-9].png"))])
        src = tmp_path / "photos.npy"
        np.save(src, arr)
    straight = _run(src, Interrupting(scorer), tmp_path / "straight.npz")
    assert straight.n == N
    assert straight.input_sha256 == open_images(src).sha256  # the same hash as a plain pass

    out = tmp_path / "ref.npz"
    with pytest.raises(KeyboardInterrupt):
        _run(src, Interrupting(scorer, at=3), out)
    assert partial_path(out).is_file()  # two batches were saved before Ctrl-C
    again = Interrupting(scorer)
    resumed = _run(src, again, out)
    assert "resuming" in capsys.readouterr().err
    assert again.images_scored == N - 16  # only what was not done: 2 batches of 8 are kept
    _same(resumed, straight)


def test_a_partial_from_other_images_is_not_used(scorer, tmp_path, capsys):
    src = _photos(tmp_path / "photos")
    out = tmp_path / "ref.npz"
    with pytest.raises(KeyboardInterrupt):
        _run(src, Interrupting(scorer, at=3), out)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src / "001.png")  # an early image changed
    counting = Interrupting(scorer)
    stats = _run(src, counting, out)
    assert "starting over" in capsys.readouterr().err
    assert counting.images_scored == N
    _same(stats, _run(src, Interrupting(scorer), tmp_path / "fresh.npz"))


def test_stats_command_continues_after_an_interruption(scorer, fid_env, tmp_path, capsys, monkeypatch):
    src = _photos(tmp_path / "photos")
    out = tmp_path / "ref.npz"
    with pytest.raises(KeyboardInterrupt):
        _run(src, Interrupting(scorer, at=4), out)
    assert main(["stats", str(src), "-o", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "resuming" in captured.err and f"{N} images" in captured.out
    assert not partial_path(out).exists()  # cleaned up once the statistics are saved
    _same(Stats.load(out), _run(src, Interrupting(scorer), tmp_path / "fresh.npz"))
