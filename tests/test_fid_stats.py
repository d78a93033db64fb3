"""Statistics files, streaming moments, image sources and the floor — no network needed."""

from __future__ import annotations

import io
import tarfile
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from facegan.errors import BadImageError, FaceganError
from facegan.fid.features import Moments, summarize
from facegan.fid.floor import real_floor
from facegan.fid.sources import check_count, open_images
from facegan.fid.stats import Stats
from numerics import gamma


#: float results: run again with the kernels forced down in CI (.ci/forced-kernels)
pytestmark = pytest.mark.numeric


# ----------------------------------------------------------------------------- Moments


def test_streaming_moments_equal_numpy_whatever_the_batches():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((257, 16)) * rng.uniform(0.1, 3, 16) + 1e4  # big offset: no cancellation
    acc = Moments(16)
    for lo, hi in [(0, 1), (1, 50), (50, 51), (51, 200), (200, 257)]:
        acc.update(x[lo:hi].astype(np.float32).astype(np.float64))
    xd = x.astype(np.float32).astype(np.float64)
    assert acc.n == 257
    # float64 sums of 257 terms in two orders (pairwise in numpy, chunked here): each off by at most
    # gamma(257) * sum|x|, and all x are ~1e4 > 0, so relative to the mean that is gamma(257) each
    np.testing.assert_allclose(acc.mean(), xd.mean(axis=0), rtol=2 * gamma(257 + 1), atol=0)
    # the covariance's sums of products around the mean (or a shift near it): bounded by
    # gamma(n) * sum |x_i - c| |x_j - c| / (n - 1) per entry, plus the error of np.cov's own mean
    # (gamma(257) * |x| with |x| ~ 1e4; x - c is exact, Sterbenz) times the mean |x - c|
    c = xd - xd.mean(axis=0)
    cov_bound = 4 * gamma(2 * 257) * (np.abs(c).T @ np.abs(c)) / 256
    assert (np.abs(acc.cov() - np.cov(xd, rowvar=False)) <= cov_bound + 1e4 * 4 * gamma(257) * np.abs(c).mean(0)).all()


def test_moments_subtract_is_the_rest():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((100, 8))
    acc = Moments(8)
    acc.update(x)
    rest = acc.subtract(x[10:30])
    others = np.concatenate([x[:10], x[30:]])
    assert rest.n == 80
    # subtracting 20 rows' sums from 100 rows' sums: bounded by gamma(100) times the sums of |terms|
    # over all 100 rows (the 20 removed ones included), relative to 80 rows' means and covariances
    assert (np.abs(rest.mean() - others.mean(axis=0)) <= 4 * gamma(100) * np.abs(x).sum(0) / 80).all()
    cov_bound = 4 * gamma(2 * 100) * (np.abs(x).T @ np.abs(x) + np.abs(x).sum(0)[:, None] * np.abs(x).mean(0)) / 79
    assert (np.abs(rest.cov() - np.cov(others, rowvar=False)) <= cov_bound).all()


def test_covariance_of_one_image_is_an_error():
    acc = Moments(4)
    acc.update(np.ones((1, 4)))
    with pytest.raises(FaceganError, match="at least 2"):
        acc.cov()


def test_summarize_keeps_a_seeded_random_subset():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 16)).astype(np.float32)
    s = summarize([x[:7], x[7:31], x[31:]], 50, keep=20, seed=5, dims=16)
    assert s.moments.n == 50
    assert s.kept.shape == (20, 16) and len(set(s.kept_index.tolist())) == 20
    np.testing.assert_array_equal(s.kept, x[s.kept_index])
    again = summarize([x], 50, keep=20, seed=5, dims=16)
    np.testing.assert_array_equal(again.kept_index, s.kept_index)
    assert not np.array_equal(s.kept_index, np.arange(20))  # random, not the first rows


# ----------------------------------------------------------------------------- Stats files


def _random_stats(d=8, n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return Stats(x.mean(0), np.cov(x, rowvar=False), n, source="somewhere", input_sha256="ab" * 32,
                 weights_sha256="cd" * 32)


def test_stats_roundtrip_keeps_provenance(tmp_path):
    st = _random_stats()
    path = st.save(tmp_path / "ref.npz")
    back = Stats.load(path)
    np.testing.assert_array_equal(back.mu, st.mu)
    np.testing.assert_array_equal(back.sigma, st.sigma)
    assert (back.n, back.source, back.input_sha256, back.weights_sha256) == (
        30, "somewhere", "ab" * 32, "cd" * 32
    )
    assert list(tmp_path.iterdir()) == [path]  # atomic write leaves no temporary file behind


def test_stats_file_is_what_pytorch_fid_reads(tmp_path):
    from pytorch_fid.fid_score import compute_statistics_of_path

    st = _random_stats()
    path = st.save(tmp_path / "ref.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mu, sigma = compute_statistics_of_path(str(path), None, 50, 2048, "cpu")
    np.testing.assert_array_equal(mu, st.mu)
    np.testing.assert_array_equal(sigma, st.sigma)
    with np.load(path, allow_pickle=False) as f:  # no pickled objects inside
        assert f["mu"].dtype == np.float64 and f["sigma"].dtype == np.float64


def test_stats_made_by_pytorch_fid_load_with_unknown_n(tmp_path):
    np.savez_compressed(tmp_path / "theirs.npz", mu=np.zeros(4), sigma=np.eye(4))
    st = Stats.load(tmp_path / "theirs.npz")
    assert st.n == 0 and st.weights_sha256 == "" and st.dims == 4


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"mu": np.zeros(4)}, "missing sigma"),
        ({"mu": np.zeros(4), "sigma": np.eye(5)}, r"sigma must have shape \(4, 4\)"),
        ({"mu": np.zeros((2, 2)), "sigma": np.eye(2)}, r"mu must have shape \(d,\)"),
        ({"mu": np.zeros(3), "sigma": np.full((3, 3), np.nan)}, "NaN"),
        ({"mu": np.array(["a", "b"]), "sigma": np.eye(2)}, "floating point"),
    ],
)
def test_bad_stats_files_name_the_file(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(FaceganError, match=message) as exc:
        Stats.load(path)
    assert "bad.npz" in str(exc.value)


def test_stats_dims_are_checked(tmp_path):
    path = _random_stats(d=8).save(tmp_path / "s.npz")
    with pytest.raises(FaceganError, match="8-d features, expected 2048"):
        Stats.load(path, dims=2048)


def test_not_an_npz_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"this is not a zip")
    with pytest.raises(FaceganError, match="junk.npz: not a readable"):
        Stats.load(path)
    with pytest.raises(FaceganError, match="no such statistics file"):
        Stats.load(tmp_path / "absent.npz")


# ----------------------------------------------------------------------------- sources


def _png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def _images(n=5, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _all(images, **kw):
    return np.concatenate(list(images.batches(4, **kw)))


def test_folder_zip_tar_and_npy_give_the_same_images_and_hash(tmp_path):
    imgs = _images(6)
    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    names = []
    for i, im in enumerate(imgs):
        name = f"{i:02d}.png" if i < 3 else f"sub/{i:02d}.png"  # recursive
        (folder / name).write_bytes(_png(im))
        names.append(name)
    with zipfile.ZipFile(tmp_path / "f.zip", "w") as zf:
        for name in names:
            zf.write(folder / name, name)
    with tarfile.open(tmp_path / "f.tar.gz", "w:gz") as tf:
        for name in names:
            tf.add(folder / name, name)
    np.save(tmp_path / "f.npy", np.stack(imgs))

    expected = np.stack(imgs)
    sets = [open_images(folder), open_images(tmp_path / "f.zip"), open_images(tmp_path / "f.tar.gz")]
    for s in sets:
        np.testing.assert_array_equal(_all(s), expected)
    assert len({s.sha256 for s in sets}) == 1  # hash of names and bytes, not of the container
    npy = open_images(tmp_path / "f.npy")
    np.testing.assert_array_equal(_all(npy), expected)
    assert npy.kind == "npy" and len(npy.sha256) == 64

    # the hash follows content, computed alike with or without decoding
    (folder / "00.png").write_bytes(_png(imgs[1]))
    changed = open_images(folder)
    assert changed.sha256 != sets[0].sha256
    fresh = open_images(folder)
    _all(fresh)
    assert fresh.sha256 == changed.sha256


def test_non_images_and_broken_images_are_skipped_and_counted_or_strict(tmp_path):
    imgs = _images(3)
    for i, im in enumerate(imgs):
        (tmp_path / f"{i}.png").write_bytes(_png(im))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "trunc.png").write_bytes(_png(imgs[0])[:60])
    (tmp_path / "fake.jpg").write_bytes(b"GIF89a? no")
    s = open_images(tmp_path)
    out = _all(s)
    assert out.shape == (3, 16, 16, 3)
    reasons = dict(s.skipped)
    assert set(reasons) == {"notes.txt", "trunc.png", "fake.jpg"}
    assert "not an image file" in reasons["notes.txt"]
    assert "truncated" in reasons["trunc.png"] or "corrupt" in reasons["trunc.png"]
    assert "not an image" in reasons["fake.jpg"]

    with pytest.raises(BadImageError, match="notes.txt"):
        _all(open_images(tmp_path), strict=True)
    (tmp_path / "notes.txt").unlink()
    with pytest.raises(BadImageError, match=r"fake\.jpg|trunc\.png") as exc:
        _all(open_images(tmp_path), strict=True)
    assert str(tmp_path) in str(exc.value)


def test_gray_rgba_16bit_and_palette_are_converted_as_pytorch_fid_does(tmp_path):
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    deep = (rng.integers(0, 65536, (16, 16))).astype(np.uint16)
    (tmp_path / "a_gray.png").write_bytes(_png(gray))
    (tmp_path / "b_rgba.png").write_bytes(_png(rgba))
    (tmp_path / "c_16bit.png").write_bytes(_png(deep))
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).convert("P").save(tmp_path / "d_pal.png")
    out = _all(open_images(tmp_path))
    assert out.dtype == np.uint8 and out.shape == (4, 16, 16, 3)
    for got, name in zip(out, ["a_gray.png", "b_rgba.png", "c_16bit.png", "d_pal.png"]):
        # pytorch-fid's ImagePathDataset: Image.open(path).convert('RGB')
        want = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out[0, ..., 0], gray)
    np.testing.assert_array_equal(out[1], rgba[..., :3])


def test_images_of_different_sizes_never_share_a_batch(tmp_path):
    for i, size in enumerate([16, 16, 20, 20, 20, 16]):
        (tmp_path / f"{i}.png").write_bytes(_png(_images(1, size, seed=i)[0]))
    shapes = [b.shape for b in open_images(tmp_path).batches(2)]
    assert shapes == [(2, 16, 16, 3), (2, 20, 20, 3), (1, 20, 20, 3), (1, 16, 16, 3)]


def test_empty_and_single_image_sources_are_errors(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    s = open_images(tmp_path)
    with pytest.raises(FaceganError, match="no images found.*readme.md"):
        check_count(s, s.count)
    (tmp_path / "one.png").write_bytes(_png(_images(1)[0]))
    s = open_images(tmp_path)
    with pytest.raises(FaceganError, match="at least 2 images, found 1"):
        check_count(s, s.count)
    with pytest.raises(FaceganError, match="no such file"):
        open_images(tmp_path / "absent")


def test_npy_with_wrong_shape_is_an_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(FaceganError, match=r"x\.npy.*\(N, H, W, 3\)"):
        open_images(tmp_path / "x.npy")
    np.save(tmp_path / "f.npy", np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(FaceganError, match="uint8"):
        open_images(tmp_path / "f.npy")


# ----------------------------------------------------------------------------- floor


def test_floor_equals_brute_force_over_disjoint_splits():
    from facegan.fid.distance import frechet_distance  # itself checked against pytorch-fid

    rng = np.random.default_rng(4)
    d, n_total, n = 32, 70, 20  # the kept rows are float32, as from the network
    x = (rng.standard_normal((n_total, d)) @ rng.standard_normal((d, d))).astype(np.float32)
    s = summarize([x[:33], x[33:]], n_total, keep=3 * n, seed=9, dims=d)
    fl = real_floor(s, n_sample=n, splits=5)
    assert fl.splits == 3 and fl.n_sample == 20 and fl.n_rest == 50  # only 3 disjoint chunks fit
    xd = x.astype(np.float64)
    order = s.kept_index
    for i, value in enumerate(fl.values):
        chunk = order[i * n : (i + 1) * n]
        rest = np.setdiff1d(np.arange(n_total), chunk)
        ref = frechet_distance(
            xd[chunk].mean(0), np.cov(xd[chunk], rowvar=False),
            xd[rest].mean(0), np.cov(xd[rest], rowvar=False),
        )
        assert value == pytest.approx(ref, rel=1e-6)
    chunks = [set(order[i * n : (i + 1) * n].tolist()) for i in range(3)]
    assert not (chunks[0] & chunks[1]) and not (chunks[1] & chunks[2])
    assert fl.mean == pytest.approx(np.mean(fl.values)) and fl.low <= fl.mean <= fl.high


def test_floor_needs_enough_real_images():
    x = np.ones((5, 8), np.float32) + np.arange(5)[:, None]
    s = summarize([x], 5, keep=5, dims=8)
    with pytest.raises(FaceganError, match="too few for a floor"):
        real_floor(s, n_sample=4)


def test_recorded_floor_roundtrips_and_is_matched_by_sample_count(tmp_path):
    from facegan.fid.stats import Stats

    rng = np.random.default_rng(3)
    floor = {"mean": 16.4, "std": 0.2, "low": 16.2, "high": 16.8, "values": [16.2, 16.6],
             "n_sample": 1000, "n_rest": 9000, "splits": 2}
    st = Stats(rng.normal(size=4), np.eye(4), 10000, floor=floor)
    back = Stats.load(st.save(tmp_path / "ref.npz"))
    assert back.floor == floor
    assert back.floor_at(1000) == pytest.approx(16.4)
    assert back.floor_at(500) is None  # a floor only speaks for the sample size it was measured at
    assert Stats.load(Stats(np.zeros(4), np.eye(4), 5).save(tmp_path / "plain.npz")).floor is None


# ----------------------------------------------------------------------------- hostile .npz


def _npz(path, **extra):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((20, 4))
    np.savez(path, mu=x.mean(0), sigma=np.cov(x, rowvar=False), **extra)
    return path


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"n": np.str_("lots")}, "'n' .* must be a whole number"),
        ({"n": np.int64(-3)}, "'n' .* must be a whole number"),
        ({"n": np.arange(3)}, "'n' .* must be a whole number"),
        ({"n": np.float64(2.5)}, "'n' .* must be a whole number"),
        ({"floor_json": np.str_("{not json")}, "'floor_json' is not valid JSON"),
        ({"floor_json": np.str_("[1, 2]")}, "'floor_json' is not a real-data floor: expected an object"),
        ({"floor_json": np.str_('{"mean": "low", "n_sample": 1000}')}, "needs finite numbers"),
        ({"floor_json": np.str_('{"mean": NaN, "n_sample": 1000}')}, "needs finite numbers"),
        ({"floor_json": np.str_('{"mean": 16.4}')}, "needs 'n_sample'"),
    ],
)
def test_malformed_n_or_floor_is_refused_naming_the_file(tmp_path, extra, message):
    path = _npz(tmp_path / "odd.npz", **extra)
    with pytest.raises(FaceganError, match=message) as exc:
        Stats.load(path)
    assert str(exc.value).startswith(str(path))


def test_a_whole_float_n_and_an_empty_floor_are_fine(tmp_path):
    st = Stats.load(_npz(tmp_path / "ok.npz", n=np.float64(20.0), floor_json=np.str_("")))
    assert st.n == 20 and st.floor is None
    assert st.size_text() == "20 images"
    assert Stats.load(_npz(tmp_path / "plain.npz")).size_text() == "reference of unknown size"


def test_a_sigma_with_negative_eigenvalues_is_refused_naming_the_file(tmp_path):
    from facegan.fid.distance import frechet_distance

    rng = np.random.default_rng(8)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    bad = q @ np.diag([3.0, 2.0, 1.0, 0.5, -0.5, -2.0]) @ q.T  # symmetric, not PSD
    np.savez(tmp_path / "neg.npz", mu=np.zeros(6), sigma=bad)
    with pytest.raises(FaceganError, match=r"neg\.npz: sigma is not a covariance matrix.*smallest -2") as exc:
        Stats.load(tmp_path / "neg.npz")
    assert "rebuild it" in str(exc.value)
    np.savez(tmp_path / "asym.npz", mu=np.zeros(2), sigma=np.array([[1.0, 0.5], [-0.5, 1.0]]))
    with pytest.raises(FaceganError, match=r"asym\.npz: sigma is not symmetric"):
        Stats.load(tmp_path / "asym.npz")
    # the silent answer this guards against: a non-PSD reference scores a clean 0
    assert frechet_distance(np.zeros(6), q @ np.diag([3.0, 2, 1, .5, .5, .5]) @ q.T, np.zeros(6), bad) == 0.0


def test_a_rank_deficient_covariance_with_rounding_noise_loads(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 40)) * 3  # 5 samples in 40-d: rank 4, eigenvalues ~ ±1e-15 elsewhere
    sigma = np.cov(x, rowvar=False)
    assert np.linalg.eigvalsh(sigma)[0] < 0  # rounding made some slightly negative
    np.savez(tmp_path / "few.npz", mu=x.mean(0), sigma=sigma, n=np.int64(5))
    assert Stats.load(tmp_path / "few.npz").n == 5


@pytest.mark.timeout(30)
def test_a_stats_path_that_is_a_fifo_or_folder_is_refused_not_read(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.npz")
    with pytest.raises(FaceganError, match=r"pipe\.npz: not a regular file"):
        Stats.load(tmp_path / "pipe.npz")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(FaceganError, match=r"dir\.npz: not a regular file"):
        Stats.load(tmp_path / "dir.npz")


# ----------------------------------------------------------------------------- hostile sources


@pytest.mark.timeout(60)
def test_entries_deleted_or_swapped_mid_run_are_skipped_and_counted(tmp_path):
    import os

    imgs = _images(5)
    for i, im in enumerate(imgs):
        (tmp_path / f"{i}.png").write_bytes(_png(im))
    s, strict = open_images(tmp_path), open_images(tmp_path)  # both listed before the changes
    (tmp_path / "1.png").unlink()  # deleted after listing
    (tmp_path / "3.png").unlink()
    os.mkfifo(tmp_path / "3.png")  # swapped for a FIFO: must not hang
    out = _all(s)
    np.testing.assert_array_equal(out, np.stack([imgs[0], imgs[2], imgs[4]]))
    reasons = dict(s.skipped)
    assert set(reasons) == {"1.png", "3.png"}
    assert "deleted" in reasons["1.png"] and "FIFO" in reasons["3.png"]
    assert s.sha256 == s.hash_prefix(5).hexdigest()  # the hash without decoding agrees
    with pytest.raises(BadImageError, match=r"1\.png: deleted"):
        _all(strict, strict=True)


def test_the_decoding_window_and_batches_are_bounded_in_pixels(tmp_path, monkeypatch):
    import facegan.fid.sources as sources

    for i, im in enumerate(_images(12, size=32)):
        (tmp_path / f"{i:02d}.png").write_bytes(_png(im))
    monkeypatch.setattr(sources, "WINDOW_PIXELS", 3 * 32 * 32)
    monkeypatch.setattr(sources, "BATCH_PIXELS", 2 * 32 * 32)
    s = open_images(tmp_path)
    reads = []
    real_read = s._read
    monkeypatch.setattr(s, "_read", lambda name: reads.append(name) or real_read(name))
    for yielded, _ in enumerate(s._decoded(workers=2), 1):
        assert len(reads) - yielded <= 3  # never more than 3 images (the window) decoded ahead
    s = open_images(tmp_path)
    assert [b.shape[0] for b in s.batches(8)] == [2] * 6  # 8 per batch asked, 2 fit the budget
    assert s.sizes == {(32, 32): 12}
    np.save(tmp_path / "a.npy", np.stack(_images(5, size=32)))
    assert [b.shape[0] for b in open_images(tmp_path / "a.npy").batches(8)] == [2, 2, 1]


def test_in_memory_arrays_and_tensors_are_sources(tmp_path):
    import torch

    imgs = np.stack(_images(4))
    np.save(tmp_path / "x.npy", imgs)
    from_file = open_images(tmp_path / "x.npy")
    for src in (imgs, torch.from_numpy(imgs)):
        s = open_images(src)
        assert s.kind == "array" and s.count == 4 and s.sizes == {(16, 16): 4}
        np.testing.assert_array_equal(_all(s), imgs)
        assert s.sha256 == from_file.sha256
    with pytest.raises(FaceganError, match=r"uint8 of shape \(N, H, W, 3\).*float32"):
        open_images(imgs.astype(np.float32))
    with pytest.raises(FaceganError, match="expected a path"):
        open_images(42)
