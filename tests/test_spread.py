"""The seed-to-seed spread: SD ratios, the Pitman-Morgan test, its interval and equivalence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as st

from ablate.analysis import stats
from ablate.analysis.compare import compare_runs
from ablate.analysis.prose import markdown
from ablate.errors import InputError


def _correlated(rng, n, rho, sd_a=1.0, sd_b=1.0, sims=None):
    """(sims, n) pairs of correlated normals (or (n,) when sims is None)."""
    shape = (n,) if sims is None else (sims, n)
    z1, z2 = rng.standard_normal(shape), rng.standard_normal(shape)
    a = sd_a * z1
    b = sd_b * (rho * z1 + math.sqrt(1 - rho**2) * z2)
    return a, b


# --------------------------------------------------------------------------- Pitman-Morgan


@pytest.mark.parametrize("seed,n,rho,ratio0", [(0, 5, 0.0, 1.0), (1, 12, 0.8, 1.0), (2, 30, 0.5, 1.3),
                                               (3, 9, -0.4, 0.6), (4, 20, 0.95, 2.0)])
def test_pitman_morgan_is_the_t_test_of_corr_of_sums_and_differences(seed, n, rho, ratio0):
    a, b = _correlated(np.random.default_rng(seed), n, rho, 1.0, 1.2)
    res = stats.pitman_morgan(a, b, ratio=ratio0)
    # Closed form: the correlation of u = a + k b and v = a - k b, and its t-test.
    u, v = a + ratio0 * b, a - ratio0 * b
    r, p = st.pearsonr(u, v)
    assert res.p_value == pytest.approx(p, rel=1e-9, abs=1e-14)
    assert res.statistic == pytest.approx(r * math.sqrt(n - 2) / math.sqrt(1 - r**2), rel=1e-9)
    assert res.df == n - 2
    # The classic form for ratio 1: t = (F - 1) sqrt(n - 2) / (2 sqrt(F (1 - r_ab^2))), F = var_a / var_b.
    if ratio0 == 1.0:
        f = np.var(a, ddof=1) / np.var(b, ddof=1)
        r_ab = np.corrcoef(a, b)[0, 1]
        assert res.statistic == pytest.approx((f - 1) * math.sqrt(n - 2) / (2 * math.sqrt(f * (1 - r_ab**2))),
                                              rel=1e-9)


def test_pitman_morgan_needs_three_pairs():
    assert math.isnan(stats.pitman_morgan([1.0, 2.0], [1.0, 3.0]).p_value)
    with pytest.raises(InputError, match="ratio"):
        stats.pitman_morgan([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], ratio=0.0)


# --------------------------------------------------------------------------- the interval


@pytest.mark.parametrize("seed,n,rho", [(0, 6, 0.0), (1, 15, 0.7), (2, 30, -0.3)])
def test_interval_ends_are_where_the_test_has_p_equal_2alpha(seed, n, rho):
    """The closed form equals root finding on the Pitman-Morgan p-value."""
    a, b = _correlated(np.random.default_rng(seed), n, rho, 1.0, 0.7)
    res = stats.sd_ratio_paired(a, b, alpha=0.05)
    p = lambda k: stats.pitman_morgan(a, b, ratio=k).p_value - 0.10  # noqa: E731
    low = optimize.brentq(p, 1e-3, res.ratio, xtol=1e-14)
    high = optimize.brentq(p, res.ratio, 1e3, xtol=1e-14)
    assert res.low == pytest.approx(low, rel=1e-8)
    assert res.high == pytest.approx(high, rel=1e-8)
    assert res.ratio == pytest.approx(np.std(a, ddof=1) / np.std(b, ddof=1))


@pytest.mark.parametrize("n", [10, 30])
@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_paired_interval_coverage(n, rho):
    """20,000 simulated studies per setting: coverage within 1.5 points of nominal (90%)."""
    rng = np.random.default_rng(1000 + n + int(10 * rho))
    sims, true_ratio, confidence = 20_000, 1.25, 0.90
    a, b = _correlated(rng, n, rho, true_ratio, 1.0, sims=sims)
    a_c, b_c = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    var_a, var_b = (a_c**2).sum(1) / (n - 1), (b_c**2).sum(1) / (n - 1)
    cov = (a_c * b_c).sum(1) / (n - 1)
    _, low, high = stats.sd_ratio_paired_interval(var_a, var_b, cov, n, confidence=confidence)
    coverage = float(np.mean((low <= true_ratio) & (true_ratio <= high)))
    assert abs(coverage - confidence) < 0.015, coverage
    # The vectorised interval is the one the comparisons use.
    one = stats.sd_ratio_paired(a[0], b[0], alpha=(1 - confidence) / 2)
    assert (one.low, one.high) == pytest.approx((low[0], high[0]), rel=1e-12)


@pytest.mark.parametrize("n_a,n_b", [(10, 10), (30, 12)])
def test_independent_interval_coverage(n_a, n_b):
    rng = np.random.default_rng(n_a * n_b)
    sims, true_ratio = 20_000, 0.8
    a = true_ratio * rng.standard_normal((sims, n_a))
    b = rng.standard_normal((sims, n_b))
    f = np.var(a, axis=1, ddof=1) / np.var(b, axis=1, ddof=1)
    low = np.sqrt(f / st.f.ppf(0.95, n_a - 1, n_b - 1))
    high = np.sqrt(f / st.f.ppf(0.05, n_a - 1, n_b - 1))
    coverage = float(np.mean((low <= true_ratio) & (true_ratio <= high)))
    assert abs(coverage - 0.90) < 0.015
    one = stats.sd_ratio_independent(a[0], b[0])
    assert (one.low, one.high) == pytest.approx((low[0], high[0]), rel=1e-12)


# --------------------------------------------------------------------------- equivalence


def test_equivalence_p_below_alpha_exactly_when_interval_inside_margin():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(5, 31))
        a, b = _correlated(rng, n, float(rng.uniform(-0.9, 0.9)), float(rng.uniform(0.6, 1.6)), 1.0)
        for res in (stats.sd_ratio_paired(a, b, margin=1.5), stats.sd_ratio_independent(a, b, margin=1.5)):
            inside = 1 / 1.5 < res.low and res.high < 1.5
            assert res.equivalent == inside
            assert res.p_equivalence == max(res.p_lower, res.p_upper)


def test_equivalence_rejects_at_nominal_rate_on_the_margin():
    """On the margin (true ratio 1.5) the equivalence test is wrong at most alpha of the time."""
    rng = np.random.default_rng(3)
    n, sims = 12, 4000
    a, b = _correlated(rng, n, 0.6, 1.5, 1.0, sims=sims)
    wrong = np.mean([stats.sd_ratio_paired(a[i], b[i]).equivalent for i in range(sims)])
    assert wrong < 0.05 + 0.01


def test_degenerate_cases():
    x = np.array([0.1, 0.3, 0.2, 0.5, 0.4])
    same = stats.sd_ratio_paired(x, x)
    assert same.state == "identical" and same.ratio == 1.0 and same.p_equivalence == 0.0
    flat = stats.sd_ratio_paired(x, np.full(5, 0.3))
    assert flat.state == "one flat" and flat.ratio == math.inf and not flat.equivalent
    none = stats.sd_ratio_paired(np.full(5, 0.2), np.full(5, 0.3))
    assert none.state == "no spread" and math.isnan(none.ratio)
    line = stats.sd_ratio_paired(x, 2 * x)  # b is a exactly doubled: the ratio is known, 0.5
    assert line.ratio == pytest.approx(0.5) and line.low == pytest.approx(0.5) and not line.equivalent
    assert stats.sd_ratio_paired(x[:2], x[:2] + [0, 1]).state == "too few"
    with pytest.raises(InputError, match="margin"):
        stats.sd_ratio_paired(x, x[::-1], margin=0.9)


# --------------------------------------------------------------------------- comparisons.csv and prose


def _table(n=12, sd_b=1.0, seed=0, shift=0.0):
    """Paired arms a (SD 0.004) and b (SD 0.004 * sd_b), correlated through a shared seed effect."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        common = rng.normal()
        a = 0.9 + 0.004 * (0.8 * common + 0.6 * rng.normal())
        b = 0.9 + shift + 0.004 * sd_b * (0.8 * common + 0.6 * rng.normal())
        rows += [{"arm": "a", "seed": s, "accuracy": a}, {"arm": "b", "seed": s, "accuracy": b}]
    return pd.DataFrame(rows)


SPREAD_COLUMNS = ["sd_a", "sd_b", "sd_ratio", "sd_ratio_low", "sd_ratio_high", "sd_margin",
                  "p_sd_equivalence", "p_sd_equivalence_adj", "p_sd_difference", "p_sd_difference_adj",
                  "sd_test", "sd_verdict"]


def test_comparisons_carry_the_spread_and_the_words_follow_it():
    comp = compare_runs(_table(n=30), margins={"accuracy": 0.01})
    row = comp.table.iloc[0]
    assert all(c in comp.table.columns for c in SPREAD_COLUMNS)
    a = _table(n=30).query("arm == 'a'")["accuracy"].to_numpy()
    b = _table(n=30).query("arm == 'b'")["accuracy"].to_numpy()
    ref = stats.sd_ratio_paired(a, b)
    assert row["sd_ratio"] == pytest.approx(ref.ratio) and row["sd_ratio_low"] == pytest.approx(ref.low)
    assert row["sd_test"] == "pitman_morgan" and row["sd_margin"] == 1.5
    assert row["verdict"] == "equivalent" and row["sd_verdict"] == "equivalent"
    text = markdown(comp)
    assert "equal means and equal spread within the margins" in text
    assert "same distribution" not in text.lower()

    wide = compare_runs(_table(n=30, sd_b=3.0), margins={"accuracy": 0.05})
    row = wide.table.iloc[0]
    assert row["verdict"] == "equivalent" and row["sd_verdict"] == "different"
    text = markdown(wide)
    assert "equal means and equal spread" not in text and "same distribution" not in text.lower()
    assert "the spread differs" in text


def test_no_spread_verdict_below_five_pairs():
    comp = compare_runs(_table(n=4), margins={"accuracy": 0.05})
    row = comp.table.iloc[0]
    assert row["sd_verdict"] == "inconclusive" and np.isfinite(row["sd_ratio"])
    assert "equal spread" not in markdown(comp)
    assert "no verdict with fewer than 5 pairs" in markdown(comp)


def test_sd_ratio_margin_is_set_through_margins():
    base = compare_runs(_table(n=10), margins={"accuracy": 0.01})
    wide = compare_runs(_table(n=10), margins={"accuracy": 0.01, "sd_ratio": 3.0})
    assert wide.table["sd_margin"].iloc[0] == 3.0 and wide.sd_margin == 3.0
    assert wide.table["p_sd_equivalence"].iloc[0] < base.table["p_sd_equivalence"].iloc[0]
    assert "sd_ratio" not in wide.margins  # not a metric
    with pytest.raises(InputError, match="sd_ratio.*> 1"):
        compare_runs(_table(n=10), margins={"sd_ratio": 0.8})


def test_unpaired_rows_use_the_f_interval():
    rows = []
    rng = np.random.default_rng(5)
    for backend, sd in (("keras", 0.004), ("torch", 0.006)):
        rows += [{"backend": backend, "arm": "a", "seed": s, "accuracy": 0.9 + rng.normal(0, sd)} for s in range(12)]
    comp = compare_runs(pd.DataFrame(rows), margins={"accuracy": 0.01})
    row = comp.table.iloc[0]
    assert row["test"] == "welch_t" and row["sd_test"] == "f_test"
    frame = pd.DataFrame(rows)
    ref = stats.sd_ratio_independent(frame[frame.backend == "keras"]["accuracy"].to_numpy(),
                                     frame[frame.backend == "torch"]["accuracy"].to_numpy())
    assert (row["sd_ratio_low"], row["sd_ratio_high"]) == pytest.approx((ref.low, ref.high))
    assert "Spread:" in markdown(comp)


def test_identical_arms_have_identical_spread():
    t = _table(n=6)
    t.loc[t.arm == "b", "accuracy"] = t.loc[t.arm == "a", "accuracy"].to_numpy()
    row = compare_runs(t, margins={"accuracy": 0.01}).table.iloc[0]
    assert row["verdict"] == "identical" and row["sd_verdict"] == "identical" and row["sd_ratio"] == 1.0


def test_grid_and_cli_take_the_sd_ratio_margin(write_grid, tmp_path):
    from ablate.catalog import load_grid
    from ablate.errors import ConfigError
    from tests.helpers import run_cli
    from tests.conftest import TINY_GRID

    grid = load_grid(write_grid(TINY_GRID + "analysis: {margins: {sd_ratio: 2.0}}\n"))
    assert grid.analysis.margins["sd_ratio"] == 2.0
    with pytest.raises(ConfigError, match="analysis.margins.sd_ratio"):
        load_grid(write_grid(TINY_GRID + "analysis: {margins: {sd_ratio: 1.0}}\n"))
    path = tmp_path / "runs.csv"
    _table(n=8).to_csv(path, index=False)
    out = tmp_path / "out"
    proc = run_cli("report", "--runs", path, "--out", out, "--margin", "sd_ratio=2", "--no-figures", timeout=None)
    assert proc.returncode == 0, proc.stderr
    assert set(pd.read_csv(out / "comparisons.csv")["sd_margin"]) == {2.0}
    proc = run_cli("report", "--runs", path, "--out", tmp_path / "bad", "--margin", "sd_ratio=0.5", timeout=None)
    assert proc.returncode == 2 and "sd_ratio" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "bad").exists()
