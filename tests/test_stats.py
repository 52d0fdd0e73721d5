"""pass@k, avg@k, bootstrap and Student-t intervals."""

import math
import sys

import numpy as np
import pytest

from sdlab.analysis import stats
from sdlab.analysis.stats import (
    avg_at_k,
    bootstrap_ci,
    cluster_bootstrap_diff,
    mean_ci_t,
    mean_pass_at_k,
    paired_bootstrap_diff,
    pass_at_k,
)


def closed_form(n, c, k):
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_pass_at_k_reference_vector():
    assert pass_at_k(16, 4, 1) == pytest.approx(0.25)
    assert pass_at_k(16, 4, 8) == pytest.approx(0.96153846, abs=1e-8)
    assert pass_at_k(16, 4, 8) == pytest.approx(1 - 495 / 12870, rel=1e-12)
    assert pass_at_k(16, 4, 16) == 1.0


@pytest.mark.parametrize("n", [1, 2, 5, 16, 64])
def test_pass_at_k_matches_closed_form(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), rel=1e-10, abs=1e-12)


def test_pass_at_k_edges():
    assert pass_at_k(16, 0, 1) == 0.0 and pass_at_k(16, 0, 16) == 0.0
    assert pass_at_k(16, 16, 1) == 1.0 and pass_at_k(16, 16, 16) == 1.0
    assert pass_at_k(16, 1, 1) == pytest.approx(1 / 16)
    # large n: stable, no overflow
    assert pass_at_k(10_000, 1, 100) == pytest.approx(0.01)
    for bad in [(4, 5, 1), (4, -1, 1), (4, 2, 5), (4, 2, 0), (0, 0, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_avg_and_mean_pass_at_k():
    m = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert avg_at_k(m) == pytest.approx((0.5 + 0 + 1) / 3)
    assert avg_at_k([[True, False], [True], [False, False, False, True]]) == pytest.approx((0.5 + 1 + 0.25) / 3)
    assert mean_pass_at_k(m, 1) == pytest.approx(avg_at_k(m))
    assert mean_pass_at_k(m, 4) == pytest.approx(2 / 3)
    assert mean_pass_at_k(m, 2) == pytest.approx((closed_form(4, 2, 2) + 0 + 1) / 3)
    with pytest.raises(ValueError):
        avg_at_k([])


def test_bootstrap_reproducible_and_sane():
    rng = np.random.default_rng(1)
    x = rng.random(30)
    a = bootstrap_ci(x, seed=7)
    assert a == bootstrap_ci(x, seed=7)
    assert a != bootstrap_ci(x, seed=8)
    lo, hi = a
    assert lo < x.mean() < hi
    # roughly mean +- 1.96 * se
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.25)
    # constant data: a degenerate interval; empty: nan
    assert bootstrap_ci(np.full(10, 0.3)) == pytest.approx((0.3, 0.3))
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_bootstrap_resamples_rows():
    m = np.array([[1, 1], [0, 0], [1, 0], [0, 1]], dtype=float)
    lo, hi = bootstrap_ci(m, stat=lambda rows: rows.mean(), n_boot=500, seed=0)
    assert 0 <= lo <= 0.5 <= hi <= 1
    # a custom stat on 1-D data goes through the generic path and agrees with the fast path
    x = np.arange(20, dtype=float)
    assert bootstrap_ci(x, stat=lambda v: float(np.mean(v)), seed=3) == pytest.approx(bootstrap_ci(x, seed=3))


def test_paired_and_unpaired_diff():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 40)
    b = a + 0.5 + rng.normal(0, 0.05, 40)
    d, lo, hi = paired_bootstrap_diff(a, b, seed=1)
    assert d == pytest.approx(np.mean(b) - np.mean(a)) and lo < d < hi
    assert hi - lo < 0.1  # pairing removes the shared variation
    d2, lo2, hi2 = paired_bootstrap_diff(a, b, paired=False, seed=1)
    assert d2 == pytest.approx(d) and hi2 - lo2 > hi - lo
    assert paired_bootstrap_diff(a, b, seed=1) == (d, lo, hi)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_diff(a, b[:10])
    d3, lo3, hi3 = paired_bootstrap_diff(a, b[:10], paired=False)
    assert lo3 <= d3 <= hi3


def test_cluster_bootstrap_diff():
    sums_a = np.array([[2.0], [4.0], [0.0]])
    sizes_a = np.array([2.0, 2.0, 2.0])
    sums_b = sums_a + 2 * sizes_a[:, None]  # +2 per response everywhere
    d, lo, hi = cluster_bootstrap_diff(sums_a, sizes_a, sums_b, sizes_a, paired=True, seed=0)
    assert d == pytest.approx([2.0]) and lo == pytest.approx([2.0]) and hi == pytest.approx([2.0])
    d, lo, hi = cluster_bootstrap_diff(sums_a, sizes_a, sums_b, sizes_a, paired=False, seed=0)
    assert d == pytest.approx([2.0]) and lo[0] < 2.0 < hi[0]


def test_mean_ci_t_against_scipy_and_table():
    from scipy.stats import t

    x = [0.41, 0.45, 0.39]
    m, lo, hi = mean_ci_t(x)
    se = np.std(x, ddof=1) / math.sqrt(3)
    assert m == pytest.approx(np.mean(x))
    assert hi - m == pytest.approx(t.ppf(0.975, 2) * se)
    assert lo == pytest.approx(2 * m - hi)
    v, lo1, hi1 = mean_ci_t([0.5])
    assert v == 0.5 and math.isnan(lo1) and math.isnan(hi1)


def test_t_quantile_without_scipy(monkeypatch):
    from scipy.stats import t

    expected = {df: t.ppf(0.975, df) for df in (1, 2, 5, 30, 31, 200)}
    expected90 = {df: t.ppf(0.95, df) for df in (1, 2, 5, 10, 30)}
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import fails -> fallback
    for df, q in expected.items():
        tol = 1e-5 if df <= 30 else 1e-4  # table, then the expansion around the normal quantile
        assert stats.t_quantile(0.975, df) == pytest.approx(q, abs=tol)
    for df, q in expected90.items():
        assert stats.t_quantile(0.95, df) == pytest.approx(q, rel=2e-3)
    m, lo, hi = mean_ci_t([1.0, 2.0, 3.0])
    assert hi - m == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
