"""Tolerances derived from the arithmetic, for tests that compare two computations of one number.

Where both sides run the same kernels on the same data, results are bit-identical and tests say
so with ``==``. Where they may not (two code paths, two summation orders, a BLAS kernel chosen by
the CPU's instruction set — AVX-512 vs AVX2 vs the default level give different blockings), a test
bounds the difference by the standard rounding-error analysis (Higham, *Accuracy and Stability of
Numerical Algorithms*, ch. 3-4) instead of a habit like ``rel=1e-9``, which failed on a Zen 3 CPU:

- a sum or dot product of ``n`` terms in a format with unit roundoff ``u`` has absolute error at
  most ``gamma(n) * sum(|terms|)``, ``gamma(n) = n*u / (1 - n*u)``, whatever the order — so two
  orders differ by at most twice that;
- ``f(x)`` with ``x`` off by ``dx`` is off by about ``|f'(x)| * dx``.

These are worst-case bounds (typical errors are ~sqrt(n) smaller): wide enough to hold on every
CPU, still orders of magnitude below the effects the tests look for.
"""

from __future__ import annotations

import numpy as np

U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32: 2^-24
U64 = float(np.finfo(np.float64).eps) / 2  # unit roundoff of float64: 2^-53


def gamma(n: int, u: float = U64) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of an n-term sum (Higham, Lemma 3.1)."""
    nu = n * u
    assert nu < 1, "n u >= 1: no bound"
    return nu / (1 - nu)


def sum_error_bound(terms: np.ndarray, u: float = U64) -> float:
    """Bound on |computed - exact| of ``terms.sum()`` in any order (absolute)."""
    terms = np.asarray(terms, np.float64)
    return gamma(terms.size, u) * float(np.abs(terms).sum())


def cubic_kernel_entry_bounds(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per entry, a bound on the error of the KID kernel ``(x_i . y_j / d + 1)^3`` whose dot products
    run in float32 (``facegan.fid.distance._kernel_block``): the dot product is off by at most
    ``gamma_d(u32) * sum_k |x_ik y_jk|``, and the cube's derivative is ``3 (g/d + 1)^2 / d``."""
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = x64.shape[1]
    g = x64 @ y64.T
    dot_err = gamma(d, U32) * (np.abs(x64) @ np.abs(y64).T) + 2 * U32 * np.abs(g)  # + rounding of inputs
    return 3.0 * (g / d + 1.0) ** 2 * dot_err / d * (1 + 1e-6)
