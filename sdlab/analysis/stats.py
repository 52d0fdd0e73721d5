"""Evaluation statistics: unbiased pass@k, avg@k, bootstrap and Student-t intervals.

Bootstraps resample *problems* (rows): the unit of independent variation in a benchmark is the
problem, and the samples of one problem are correlated.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "avg_at_k",
    "bootstrap_ci",
    "cluster_bootstrap_diff",
    "mean_ci_t",
    "mean_pass_at_k",
    "paired_bootstrap_diff",
    "pass_at_k",
    "t_quantile",
]


# --------------------------------------------------------------------------- pass@k / avg@k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k), computed as
    1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms large binomials."""
    n, c, k = int(n), int(c), int(k)
    if n < 1 or k < 1:
        raise ValueError(f"pass@k needs n >= 1 and k >= 1 (n={n}, k={k})")
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n (n={n}, c={c})")
    if k > n:
        raise ValueError(f"pass@k needs k <= n (n={n}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def _rows(correct_matrix) -> list[np.ndarray]:
    if isinstance(correct_matrix, np.ndarray) and correct_matrix.ndim == 2:
        return [row.astype(np.float64) for row in correct_matrix]
    return [np.asarray(row, dtype=np.float64).reshape(-1) for row in correct_matrix]


def avg_at_k(correct_matrix) -> float:
    """Mean over problems of the per-problem accuracy over its samples (rows may be ragged)."""
    rows = _rows(correct_matrix)
    if not rows or any(r.size == 0 for r in rows):
        raise ValueError("avg@k needs at least one problem and one sample per problem")
    return float(np.mean([r.mean() for r in rows]))


def mean_pass_at_k(correct_matrix, k: int) -> float:
    """Unbiased pass@k averaged over problems (one row of 0/1 outcomes per problem)."""
    rows = _rows(correct_matrix)
    if not rows:
        raise ValueError("pass@k needs at least one problem")
    return float(np.mean([pass_at_k(r.size, int(r.sum()), k) for r in rows]))


# --------------------------------------------------------------------------- bootstrap


def _percentiles(boot: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return lo, hi


def bootstrap_ci(values, stat: Callable = np.mean, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat(values)`, resampling rows (problems) with
    replacement. `values` is 1-D (one number per problem) or 2-D (one row per problem; `stat`
    gets the resampled rows). Same seed, same interval."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape[0] == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n = arr.shape[0]
    idx = rng.integers(0, n, size=(n_boot, n))
    if stat is np.mean and arr.ndim == 1:
        boot = arr[idx].mean(axis=1)
    else:
        boot = np.array([stat(arr[i]) for i in idx], dtype=np.float64)
    lo, hi = _percentiles(boot, alpha)
    return float(lo), float(hi)


def paired_bootstrap_diff(a, b, *, paired: bool = True, stat: Callable = np.mean, n_boot: int = 1000,
                          alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """`stat(b) - stat(a)` with a percentile bootstrap interval: (diff, low, high).

    paired=True: a[i] and b[i] belong to the same unit (problem); units are resampled jointly.
    paired=False: the two sets are resampled independently (any lengths)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan"), float("nan")
    diff = float(stat(b) - stat(a))
    rng = np.random.default_rng(seed)
    if paired:
        if a.size != b.size:
            raise ValueError(f"paired bootstrap needs equal lengths (got {a.size} and {b.size}); use paired=False")
        ia = ib = rng.integers(0, a.size, size=(n_boot, a.size))
    else:
        ia = rng.integers(0, a.size, size=(n_boot, a.size))
        ib = rng.integers(0, b.size, size=(n_boot, b.size))
    if stat is np.mean:
        boot = b[ib].mean(axis=1) - a[ia].mean(axis=1)
    else:
        boot = np.array([stat(b[j]) - stat(a[i]) for i, j in zip(ia, ib)], dtype=np.float64)
    lo, hi = _percentiles(boot, alpha)
    return diff, float(lo), float(hi)


def _multinomial_weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) resampling counts: how often each unit is drawn in each replicate."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def cluster_bootstrap_diff(sums_a, sizes_a, sums_b, sizes_b, *, paired: bool, n_boot: int = 1000,
                           alpha: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference of ratio means `sum(sums_b)/sum(sizes_b) - sum(sums_a)/sum(sizes_a)` with a
    bootstrap over clusters (problems).

    `sums_*`: (P, W) per-problem totals of W statistics (e.g. word counts summed over that
    problem's responses); `sizes_*`: (P,) responses per problem. The estimate is then the mean per
    response. paired=True requires the same problems in the same order in both sets and resamples
    them jointly. Returns (diff[W], low[W], high[W])."""
    sa, na = np.atleast_2d(np.asarray(sums_a, np.float64)), np.asarray(sizes_a, np.float64)
    sb, nb = np.atleast_2d(np.asarray(sums_b, np.float64)), np.asarray(sizes_b, np.float64)
    if sa.shape[0] != na.size or sb.shape[0] != nb.size:
        raise ValueError("sums and sizes must have one entry per problem")
    diff = sb.sum(0) / nb.sum() - sa.sum(0) / na.sum()
    rng = np.random.default_rng(seed)
    wa = _multinomial_weights(rng, na.size, n_boot)
    if paired:
        if na.size != nb.size:
            raise ValueError("paired cluster bootstrap needs the same problems in both sets")
        wb = wa
    else:
        wb = _multinomial_weights(rng, nb.size, n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (wb @ sb) / (wb @ nb)[:, None] - (wa @ sa) / (wa @ na)[:, None]
    boot = boot[np.isfinite(boot).all(axis=1)]
    if boot.shape[0] == 0:
        nan = np.full(diff.shape, np.nan)
        return diff, nan, nan
    lo, hi = _percentiles(boot, alpha)
    return diff, np.asarray(lo), np.asarray(hi)


# --------------------------------------------------------------------------- Student-t


# Two-sided 95% critical values t_{0.975, df}, df = 1..30.
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t: scipy when installed; else the table for p=0.975 and df <= 30, and
    closed forms for df 1 and 2, and otherwise the Cornish-Fisher expansion around the normal
    quantile (error < 1e-3 for df >= 5, exact in the normal limit)."""
    try:
        from scipy.stats import t as student_t

        return float(student_t.ppf(p, df))
    except ImportError:
        pass
    if df < 1:
        raise ValueError("df must be >= 1")
    if abs(p - 0.975) < 1e-12 and df <= 30:
        return _T975[df - 1]
    if df == 1:  # Cauchy
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = NormalDist().inv_cdf(p)
    v = float(df)
    return (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4))


def mean_ci_t(values: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, low, high): mean over seeds with a Student-t interval (df = n - 1). With a single
    value the interval is undefined: (v, nan, nan)."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if x.size == 1:
        return m, float("nan"), float("nan")
    se = float(x.std(ddof=1)) / math.sqrt(x.size)
    h = t_quantile(1 - alpha / 2, x.size - 1) * se
    return m, m - h, m + h
