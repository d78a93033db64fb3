"""Fréchet distance and KID: agreement with pytorch-fid's formula, edge cases, known answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from facegan.errors import FaceganError
from facegan.fid.distance import frechet_distance, frechet_distance_from_features, kid

from numerics import cubic_kernel_entry_bounds


def _pytorch_fid_distance(mu1, s1, mu2, s2) -> float:
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy 1.17 deprecates sqrtm's disp argument
        return float(calculate_frechet_distance(mu1, s1, mu2, s2))


def _features(rng, n, d, scale=1.0, shift=0.0):
    """Correlated, offset, ReLU-like features (like pool3: non-negative, uneven variances)."""
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    x = rng.standard_normal((n, d)) @ mix * rng.uniform(0.2, 2.0, d) * scale + shift
    return np.maximum(x + 0.5, 0.0)


def _stats(x):
    return x.mean(axis=0), np.cov(x, rowvar=False)


@pytest.mark.parametrize(
    "n1, n2, d",
    [
        (600, 500, 64),  # full rank on both sides
        (3000, 2000, 256),
        (40, 300, 64),  # side 1 rank deficient (n < d)
        (300, 40, 64),  # side 2 rank deficient
        (30, 50, 128),  # both rank deficient
        (100, 2500, 256),
    ],
)
def test_matches_pytorch_fid(n1, n2, d):
    rng = np.random.default_rng(n1 * 7 + n2 + d)
    x, y = _features(rng, n1, d), _features(rng, n2, d, scale=1.3, shift=0.2)
    mu1, s1 = _stats(x)
    mu2, s2 = _stats(y)
    ref = _pytorch_fid_distance(mu1, s1, mu2, s2)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert isinstance(ours, float)
    assert ours == pytest.approx(ref, rel=1e-6)
    # symmetric, and the small-N route from the samples gives the same number
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance_from_features(x, mu2, s2) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance_from_features(y, mu1, s1) == pytest.approx(ref, rel=1e-6)


def test_identical_statistics_give_zero_not_negative():
    rng = np.random.default_rng(0)
    for n in (20, 500):  # rank deficient and full rank
        mu, s = _stats(_features(rng, n, 64))
        value = frechet_distance(mu, s, mu, s)
        assert 0.0 <= value < 1e-9
        assert not isinstance(value, complex)


def test_never_negative_on_near_identical_samples():
    rng = np.random.default_rng(1)
    x = _features(rng, 400, 32)
    y = x + rng.standard_normal(x.shape) * 1e-9
    assert frechet_distance(*_stats(x), *_stats(y)) >= 0.0


def test_known_answer_diagonal_gaussians():
    # N(0, diag(a)) vs N(m, diag(b)): |m|² + Σ (√a − √b)²
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    m = np.array([1.0, 2.0, 2.0])
    expected = m @ m + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(3), np.diag(a), m, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_shape_mismatch_and_nan_are_errors():
    with pytest.raises(FaceganError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(FaceganError, match="NaN"):
        frechet_distance(np.zeros(2), np.array([[1.0, np.nan], [0, 1]]), np.zeros(2), np.eye(2))


def test_fewer_than_two_samples_is_an_error():
    with pytest.raises(FaceganError, match="at least 2"):
        frechet_distance_from_features(np.ones((1, 8)), np.zeros(8), np.eye(8))


def _kid_by_definition(x, y):
    """Unbiased MMD² with k(a, b) = (a·b/d + 1)³, written out pair by pair."""
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_the_definition_on_one_full_subset():
    rng = np.random.default_rng(2)
    x, y = _features(rng, 12, 16), _features(rng, 12, 16, shift=0.3)
    mean, std, m = kid(x, y, subsets=3, subset_size=50)
    assert m == 12
    assert mean == pytest.approx(_kid_by_definition(x, y), rel=1e-5)
    assert std == pytest.approx(0.0, abs=1e-9)  # every subset is the whole set


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(3)
    xy = _features(rng, 1200, 32)  # one distribution, split in two
    x, y = xy[:600], xy[600:]
    z = x * 1.2 + 0.1
    same_mean, same_std, _ = kid(x, y, subsets=20, subset_size=200)
    diff_mean, diff_std, m = kid(x, z, subsets=20, subset_size=200)
    assert m == 200
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert diff_mean > 3 * diff_std and diff_mean > 50 * abs(same_mean)
    assert same_std > 0 and diff_std > 0
    # seeded: the same call gives the same numbers
    assert kid(x, z, subsets=20, subset_size=200) == (diff_mean, diff_std, m)


def test_kid_per_subset_path_equals_whole_matrix_path(monkeypatch):
    import facegan.fid.distance as dist

    rng = np.random.default_rng(4)
    x, y = _features(rng, 80, 16), _features(rng, 90, 16, shift=0.2)
    whole = kid(x, y, subsets=5, subset_size=30)
    monkeypatch.setattr(dist, "_FULL_GRAM_ENTRIES", 0)
    per_subset = kid(x, y, subsets=5, subset_size=30)
    assert per_subset[2] == whole[2] == 30
    # Both paths see the same subsets, but their float32 dot products come from different matrix
    # products (the whole Gram matrix vs one block per subset), which a CPU's BLAS may block and
    # round differently (it did on a Zen 3: 1e-8 relative). Each subset's value is a weighted sum
    # of kernel entries with |weights| summing to 4 (1 + 1 + 2), so each path is off by at most
    # 4 * max entry error, and the two paths differ by at most twice that; the std (ddof=1, 5
    # values) moves by at most sqrt(5/4) times as much.
    entry = max(float(e.max()) for e in (cubic_kernel_entry_bounds(x, x), cubic_kernel_entry_bounds(y, y),
                                         cubic_kernel_entry_bounds(x, y)))
    bound = 2 * 4 * entry
    assert abs(per_subset[0] - whole[0]) <= bound
    assert abs(per_subset[1] - whole[1]) <= bound * np.sqrt(5 / 4)
    # still far below what a wrong draw would change: subsets differ from each other by ~std
    assert bound < 0.02 * whole[1]


def test_kid_needs_two_images():
    with pytest.raises(FaceganError, match="at least 2"):
        kid(np.ones((1, 4)), np.ones((5, 4)))
