"""Same numbers as pytorch-fid: `facegan fid` vs `python -m pytorch_fid` on the same folders with
the same weights (planted where pytorch-fid looks, in this test's own TORCH_HOME); the scorer's
API; the `stats` / `fid` commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan.cli import main
from facegan.errors import FaceganError
from facegan.fid import inception as inc
from facegan.fid.stats import Stats

#: float results: run again with the kernels forced down in CI (.ci/forced-kernels)
pytestmark = pytest.mark.numeric

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/celeba-10k"


@pytest.fixture(scope="session")
def fid_dirs(tmp_path_factory):
    """Session cache of converted weights (shared with test_fid_weights), and a TORCH_HOME in
    which the converted file is planted as pytorch-fid's own weights file."""
    base = tmp_path_factory.getbasetemp()
    dirs = {"FACEGAN_CACHE": base / "fid-cache", "TORCH_HOME": base / "fid-torch-home-planted"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEGAN_CACHE", str(dirs["FACEGAN_CACHE"]))
        mp.setenv("TORCH_HOME", str(base / "fid-torch-home-empty"))
        w = inc.resolve_weights(download=False)  # converts once per session, or reuses the cache
    assert w.sha256 == inc.CONVERTED_SHA256
    (cached,) = dirs["FACEGAN_CACHE"].glob("*.pth")
    hub = dirs["TORCH_HOME"] / "hub" / "checkpoints" / inc.PYTORCH_FID_FILENAME
    hub.parent.mkdir(parents=True, exist_ok=True)
    if not hub.exists():
        os.symlink(cached, hub)
    return dirs




def _faces(n: int, seed: int, tint: int = 0) -> np.ndarray:
    """Smooth random 64×64 colour images (blobs, not white noise: features vary like photos')."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.float32)
    big = coarse.repeat(8, axis=1).repeat(8, axis=2)
    noise = rng.normal(0, 12, big.shape)
    return np.clip(big * 0.8 + noise + tint, 0, 255).astype(np.uint8)


def _write(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:04d}.png")
    return folder


def _start_pytorch_fid(a, b, env_dirs) -> subprocess.Popen:
    env = dict(os.environ, **{k: str(v) for k, v in env_dirs.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "pytorch_fid", str(a), str(b), "--device", "cpu", "--num-workers", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _pytorch_fid_result(proc: subprocess.Popen) -> float:
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-2000:]
    return float(re.search(r"FID:\s+([0-9.eE+-]+)", out).group(1))


@pytest.fixture(scope="module", autouse=True)
def reference_run(fid_dirs, tmp_path_factory):
    """`python -m pytorch_fid DIR1 DIR2`, started before the other tests of this module.

    pytorch-fid spends ~70 s of one core in scipy's sqrtm on these (rank-deficient) statistics,
    so it runs in the background while the tests below run; the test that needs its answer
    comes last in this file.
    """
    tmp = tmp_path_factory.mktemp("conformance")
    a = _write(tmp / "a", _faces(12, seed=1))
    b = _write(tmp / "b", _faces(12, seed=2, tint=25))
    proc = _start_pytorch_fid(a, b, fid_dirs)
    yield a, b, proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def _facegan_json(args, capsys) -> dict:
    assert main([*args, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_scorer_accepts_numpy_torch_and_batches_alike(scorer):
    import torch

    imgs = _faces(4, seed=3)
    st = scorer.statistics(imgs)
    assert st.n == 4 and st.mu.shape == (2048,) and st.sigma.shape == (2048, 2048)
    assert st.mu.dtype == np.float64 and st.weights_sha256 == inc.CONVERTED_SHA256
    from_torch = scorer.statistics(torch.from_numpy(imgs))
    from_batches = scorer.statistics([imgs[:1], imgs[1:3], imgs[3:]])
    for other in (from_torch, from_batches):
        np.testing.assert_allclose(other.mu, st.mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(other.sigma, st.sigma, rtol=1e-4, atol=1e-6)
    feats = scorer.features(imgs)
    assert feats.shape == (4, 2048) and feats.dtype == np.float64
    np.testing.assert_allclose(feats.mean(0), st.mu, rtol=1e-5, atol=1e-6)
    assert (feats >= 0).all()  # pool3 of ReLUs

    with pytest.raises(FaceganError, match="uint8 of shape"):
        scorer.statistics(imgs.astype(np.float32) / 255)
    with pytest.raises(FaceganError, match="at least 2"):
        scorer.statistics(imgs[:1])


def test_stats_command_reuses_an_up_to_date_file_and_recomputes_a_stale_one(fid_env, tmp_path, capsys):
    src = _write(tmp_path / "src", _faces(3, seed=4))
    out = tmp_path / "ref.npz"
    assert main(["stats", str(src), "-o", str(out), "--quiet"]) == 0
    assert "3 images" in capsys.readouterr().out
    first = Stats.load(out)
    assert first.n == 3 and len(first.input_sha256) == 64 and first.weights_sha256 == inc.CONVERTED_SHA256

    assert main(["stats", str(src), "-o", str(out), "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out

    Image.fromarray(_faces(1, seed=5)[0]).save(src / "0001.png")
    assert main(["stats", str(src), "-o", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "recomputing" in captured.err
    second = Stats.load(out)
    assert second.input_sha256 != first.input_sha256 and not np.allclose(second.mu, first.mu)

    (src / "notes.txt").write_text("not an image")  # skipped and counted; --strict refuses it
    assert main(["stats", str(src), "-o", str(out), "--quiet", "--strict"]) == 2
    assert "notes.txt: not an image file (--strict" in capsys.readouterr().err


def test_fid_command_kid_floor_and_json(fid_env, tmp_path, capsys, monkeypatch):
    import facegan.fid.comparison as comparison

    a = _write(tmp_path / "a", _faces(4, seed=6))
    real = np.concatenate([_faces(6, seed=7, tint=20), _faces(6, seed=8, tint=-20)])
    np.save(tmp_path / "real.npy", real)
    passes = []
    real_summarize = comparison.summarize_source
    monkeypatch.setattr(
        comparison, "summarize_source",
        lambda img, *a, **k: passes.append(img.path) or real_summarize(img, *a, **k),
    )
    args = ["fid", str(a), str(tmp_path / "real.npy"), "--floor", str(tmp_path / "real.npy"),
            "--floor-splits", "2", "--kid-subsets", "4", "--batch-size", "8"]
    res = _facegan_json(args, capsys)
    assert len(passes) == 2  # the floor reused the reference's pass
    assert res["n"] == {"a": 4, "b": 12}
    assert res["fid"] > 0 and res["b"]["kind"] == "npy" and res["a"]["kind"] == "folder"
    assert res["kid"]["subsets"] == 4 and res["kid"]["subset_size"] == 4 and res["kid"]["std"] >= 0
    fl = res["floor"]
    assert fl["n_sample"] == 4 and fl["n_rest"] == 8 and fl["splits"] == 2 and len(fl["values"]) == 2
    assert all(v > 0 for v in fl["values"])

    # the plain-text report: a against itself, floor of 2 from the same pass
    assert main(["fid", str(a), str(a), "--floor", str(a), "--floor-n", "2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^FID\s+0\.0000", text, re.M)  # the same images: FID 0
    assert re.search(r"^KID\s+-?[0-9.]+ ± [0-9.]+\s+\(100 subsets of 4\)", text, re.M)
    assert "A: 4" in text and "B: 4" in text
    assert re.search(r"^floor\s+[0-9.]+ ± [0-9.]+ .*2 real vs the other 2, 2 disjoint splits", text, re.M)


def test_fid_command_errors_name_the_file(fid_env, tmp_path, capsys):
    a = _write(tmp_path / "a", _faces(3, seed=9))
    (tmp_path / "empty").mkdir()
    np.savez(tmp_path / "bad.npz", mu=np.zeros(10), sigma=np.eye(10))
    other = Stats(np.zeros(2048), np.eye(2048), 10, weights_sha256="0" * 64).save(tmp_path / "other.npz")

    assert main(["fid", str(a), str(tmp_path / "empty"), "--quiet"]) == 2
    assert "empty: no images found" in capsys.readouterr().err
    assert main(["fid", str(a), str(tmp_path / "bad.npz"), "--quiet"]) == 2
    assert "bad.npz: statistics of 10-d features" in capsys.readouterr().err
    assert main(["fid", str(a), str(other), "--quiet"]) == 0
    assert "made with other Inception weights" in capsys.readouterr().err
    assert main(["stats", str(a), "-o", str(tmp_path / "x.txt"), "--quiet"]) == 2
    assert "x.txt: the output must be named *.npz" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_photos_give_pytorch_fid_features(scorer):
    """Real CelebA JPEGs (89×109, not square): same pool3 features as pytorch-fid's own path."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"{REAL_DATA} is absent")
    import torch
    from pytorch_fid.fid_score import get_activations

    files = sorted(REAL_DATA.glob("*.jpg"))[:6]
    with torch.inference_mode():
        theirs = get_activations(files, _plain_pytorch_fid_model(scorer), batch_size=6, num_workers=0)
    from facegan.fid.sources import open_images

    # the folder reader decodes these same files in sorted order: compare the first six
    images = open_images(REAL_DATA)
    ours = scorer.features(np.concatenate(list(_first(images.batches(6), 6))))
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=2e-4)


def _first(batches, n):
    got = 0
    for b in batches:
        yield b[: n - got]
        got += len(b)
        if got >= n:
            return


def _plain_pytorch_fid_model(scorer):
    """pytorch-fid's InceptionV3 exactly as its CLI builds it (resize + normalise inside)."""
    with inc._pytorch_fid_weights(scorer.weights.state_dict):
        from pytorch_fid.inception import InceptionV3

        return InceptionV3([3]).eval()


@pytest.mark.slow
def test_facegan_fid_equals_pytorch_fid(fid_env, reference_run, tmp_path, capsys):
    a, b, proc = reference_run
    ours = _facegan_json(["fid", str(a), str(b)], capsys)
    assert ours["n"] == {"a": 12, "b": 12}
    assert ours["weights"]["sha256"] == inc.CONVERTED_SHA256

    # the .npz of `facegan stats` scores the same (pytorch-fid reading it: test_fid_stats.py)
    ref = tmp_path / "ref.npz"
    assert main(["stats", str(b), "-o", str(ref), "--quiet"]) == 0
    capsys.readouterr()
    from_stats = _facegan_json(["fid", str(a), str(ref), "--no-fuse"], capsys)
    assert from_stats["kid"] is None and "both sides" in from_stats["kid_note"]

    # the Python API (clean-fid's shape) on the same images held in memory, with the real network
    import warnings

    from facegan.fid import FIDWarning, compute_fid

    pixels = np.stack([np.asarray(Image.open(p)) for p in sorted(Path(a).glob("*.png"))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FIDWarning)  # 12 images: "fewer than 2048" is expected
        from_api = compute_fid(pixels, str(ref), device="cpu")

    theirs = _pytorch_fid_result(proc)
    assert ours["fid"] == pytest.approx(theirs, abs=1e-3)
    assert from_stats["fid"] == pytest.approx(theirs, abs=1e-3)
    assert from_api == pytest.approx(theirs, abs=1e-3)
