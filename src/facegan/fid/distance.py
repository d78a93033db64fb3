"""Distances between feature distributions: the Fréchet distance (FID) and KID.

Both are pure numpy functions of explicit arrays, in float64.

The Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2) is

    d² = |μ1 − μ2|² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^½.

pytorch-fid takes the matrix square root of the product with ``scipy.linalg.sqrtm`` (a Schur
decomposition of a non-symmetric 2048² matrix: ~10 s on two cores, and its ``disp`` argument is
deprecated in SciPy 1.17 and gone in 1.18). Only the *trace* is needed, and
tr (Σ1 Σ2)^½ = Σᵢ √λᵢ(Σ1 Σ2). Writing Σ1 = B Bᵀ, the product Σ1 Σ2 = B (Bᵀ Σ2) has the same
non-zero eigenvalues as the symmetric positive semi-definite Bᵀ Σ2 B, so two symmetric eigen
problems give the trace with real, non-negative eigenvalues by construction. B has one column
per non-zero eigenvalue of Σ1; when Σ1 comes from N < 2048 samples, B = (X − μ)ᵀ/√(N−1) is
d × N and the problem is only N × N (:func:`frechet_distance_from_features`).
"""

from __future__ import annotations

import numpy as np

from facegan.errors import FaceganError


def _check_stats(mu1, sigma1, mu2, sigma2) -> tuple[np.ndarray, ...]:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise FaceganError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}"
        )
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise FaceganError(f"statistics contain NaN or infinity ({name})")
    return mu1, sigma1, mu2, sigma2


def _sym(a: np.ndarray) -> np.ndarray:
    """The symmetric part: covariances are symmetric up to rounding; eigh must see exactly that."""
    return (a + a.T) * 0.5


def _sum_sqrt_eigvals(m: np.ndarray) -> float:
    """Σ √λ over the eigenvalues of a symmetric PSD matrix, rounding noise set to 0.

    Eigenvalues below ``n·ε·λmax`` are indistinguishable from zero in float64; taking their
    root would add noise of order √(ε) each, so they count as 0 (as do negative ones).
    """
    lam = np.linalg.eigvalsh(_sym(m))
    if lam.size == 0:
        return 0.0
    tol = max(lam.max(), 0.0) * lam.size * np.finfo(np.float64).eps
    return float(np.sqrt(lam[lam > tol]).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr (Σ1 Σ2)^½ for symmetric PSD Σ1, Σ2, from two symmetric eigen problems."""
    w, v = np.linalg.eigh(_sym(sigma1))
    tol = max(w.max(), 0.0) * w.size * np.finfo(np.float64).eps
    keep = w > tol  # the rank of Σ1: a rank-deficient Σ1 gives a smaller problem
    b = v[:, keep] * np.sqrt(w[keep])  # Σ1 = B Bᵀ
    return _sum_sqrt_eigvals(b.T @ sigma2 @ b)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64; never negative.

    Agrees with pytorch-fid's ``calculate_frechet_distance`` (1e-8 relative or closer in the tests)
    without ``scipy.linalg.sqrtm``, also when a covariance is rank deficient.
    """
    mu1, sigma1, mu2, sigma2 = _check_stats(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)  # identical inputs can round to -1e-12


def frechet_distance_from_features(feats1: np.ndarray, mu2, sigma2) -> float:
    """Fréchet distance between the samples ``feats1`` (N, d) and N(mu2, sigma2).

    When N ≤ d, Σ1 = Aᵀ A with A = (X − μ1)/√(N−1) (N × d), and tr (Σ1 Σ2)^½ is the sum of
    the roots of the eigenvalues of the N × N matrix A Σ2 Aᵀ — no d × d decomposition at all.
    """
    x = np.asarray(feats1, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise FaceganError(f"need at least 2 feature rows for a covariance, got shape {x.shape}")
    mu1 = x.mean(axis=0)
    a = (x - mu1) / np.sqrt(x.shape[0] - 1)
    if a.shape[0] > a.shape[1]:
        return frechet_distance(mu1, a.T @ a, mu2, sigma2)
    mu1, _, mu2, sigma2 = _check_stats(mu1, sigma2, mu2, sigma2)  # shapes and finiteness
    diff = mu1 - mu2
    tr1 = float(np.einsum("ij,ij->", a, a))  # tr AᵀA = |A|²_F
    value = diff @ diff + tr1 + np.trace(sigma2) - 2.0 * _sum_sqrt_eigvals(a @ sigma2 @ a.T)
    return max(float(value), 0.0)


# ----------------------------------------------------------------------------- KID


#: Largest kernel matrix (entries) computed whole and indexed per subset instead of per subset.
_FULL_GRAM_ENTRIES = 25_000_000


def _kernel_block(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy / d + 1)³ (Bińkowski et al. 2018) for all rows, in float64.

    The dot products run in float32 (a third of the time on CPU; each is a sum of d positive
    and negative terms with ~1e-6 relative error, unbiased), the cube and all sums in float64.
    """
    g = (x @ y.T).astype(np.float64)
    return (g / x.shape[1] + 1.0) ** 3


class _Kernel:
    """k between rows of ``a`` and ``b``; whole matrix computed once when it is small."""

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a, self.b = a, b
        self.full = _kernel_block(a, b) if a.shape[0] * b.shape[0] <= _FULL_GRAM_ENTRIES else None

    def __call__(self, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        if self.full is not None:
            return self.full[np.ix_(ia, ib)]
        return _kernel_block(self.a[ia], self.b[ib])


def kid(
    feats1: np.ndarray,
    feats2: np.ndarray,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Kernel Inception Distance: unbiased MMD² with the cubic kernel, over random subsets.

    Each of ``subsets`` draws ``m = min(subset_size, N1, N2)`` rows from each side without
    replacement (seeded) and computes the unbiased estimate
    ``(ΣKxx − tr)/(m(m−1)) + (ΣKyy − tr)/(m(m−1)) − 2·mean(Kxy)``.

    Returns ``(mean, std, m)`` over subsets (std with ddof=1, 0 for one subset). Unlike FID it
    can be slightly negative when both sides come from the same distribution: that is the
    unbiased estimator, not an error.
    """
    x = np.ascontiguousarray(feats1, dtype=np.float32)
    y = np.ascontiguousarray(feats2, dtype=np.float32)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise FaceganError(f"KID needs two (N, d) feature arrays, got {x.shape} and {y.shape}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise FaceganError(
            f"KID needs at least 2 images on each side, got {x.shape[0]} and {y.shape[0]}"
        )
    if subsets < 1:
        raise FaceganError("KID needs at least one subset")
    rng = np.random.default_rng(seed)
    kxx, kyy, kxy = _Kernel(x, x), _Kernel(y, y), _Kernel(x, y)
    values = np.empty(subsets)
    for i in range(subsets):
        ix = rng.choice(x.shape[0], m, replace=False)
        iy = rng.choice(y.shape[0], m, replace=False)
        a, b = kxx(ix, ix), kyy(iy, iy)
        within = (a.sum() - np.trace(a) + b.sum() - np.trace(b)) / (m * (m - 1))
        values[i] = within - 2.0 * kxy(ix, iy).mean()
    std = float(values.std(ddof=1)) if subsets > 1 else 0.0
    return float(values.mean()), std, m
