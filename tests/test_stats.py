"""ablate.analysis.stats against statsmodels / scipy references and hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy import integrate
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from ablate.analysis import stats
from ablate.errors import InputError


def _pair(seed: int, n: int, shift: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0.9, 0.01, n)
    return a, a - shift + rng.normal(0.0, noise, n)


PAIRED_CASES = [  # (seed, n, shift, noise, margin)
    (0, 5, 0.0, 0.003, 0.005),
    (1, 12, 0.001, 0.002, 0.005),
    (2, 20, -0.004, 0.004, 0.005),
    (3, 8, 0.02, 0.01, 0.005),
    (4, 3, 0.0, 0.001, 0.01),
]


# --------------------------------------------------------------------------- TOST


@pytest.mark.parametrize("seed,n,shift,noise,margin", PAIRED_CASES)
def test_tost_paired_matches_statsmodels(seed, n, shift, noise, margin):
    a, b = _pair(seed, n, shift, noise)
    ours = stats.tost_paired(a, b, margin)
    p, (t1, p1, df1), (t2, p2, df2) = ttost_paired(a, b, -margin, margin)
    assert ours.p_equivalence == pytest.approx(p, abs=1e-9)
    assert (ours.p_lower, ours.p_upper) == pytest.approx((p1, p2), abs=1e-9)
    assert (ours.t_lower, ours.t_upper) == pytest.approx((t1, t2), rel=1e-9)
    assert ours.df == df1 == df2
    # Equivalence at alpha <=> the (1 - 2 alpha) CI lies inside the margin.
    inside = -margin < ours.ci_low and ours.ci_high < margin
    assert inside == (ours.p_equivalence < 0.05) == ours.equivalent


@pytest.mark.parametrize("n_a,n_b,sd_b,shift,margin", [(9, 14, 2.0, 0.3, 0.5), (5, 5, 1.0, 0.0, 1.0),
                                                       (20, 6, 0.3, -0.2, 0.4)])
def test_tost_welch_matches_statsmodels(n_a, n_b, sd_b, shift, margin):
    rng = np.random.default_rng(n_a * 100 + n_b)
    a, b = rng.normal(0, 1, n_a), rng.normal(shift, sd_b, n_b)
    ours = stats.tost_welch(a, b, margin)
    p, t1, t2 = ttost_ind(a, b, -margin, margin, usevar="unequal")
    assert ours.p_equivalence == pytest.approx(p, abs=1e-9)
    assert (ours.p_lower, ours.p_upper) == pytest.approx((t1[1], t2[1]), abs=1e-9)
    assert ours.df == pytest.approx(t1[2], rel=1e-12)
    assert (ours.n_a, ours.n_b) == (n_a, n_b)


def test_tost_ci_is_one_minus_two_alpha_t_interval():
    a, b = _pair(7, 10, 0.001, 0.003)
    d = a - b
    ours = stats.tost_paired(a, b, 0.005, alpha=0.1)
    low, high = st.t.interval(0.8, len(d) - 1, loc=d.mean(), scale=st.sem(d))
    assert (ours.ci_low, ours.ci_high) == pytest.approx((low, high), rel=1e-12)


# --------------------------------------------------------------------------- difference tests


@pytest.mark.parametrize("seed,n,shift,noise,margin", PAIRED_CASES)
def test_paired_t_matches_scipy(seed, n, shift, noise, margin):
    a, b = _pair(seed, n, shift, noise)
    ours, ref = stats.paired_t(a, b), st.ttest_rel(a, b)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10, abs=1e-15)
    assert ours.df == n - 1 and ours.test == "paired_t"


def test_welch_t_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 7), rng.normal(0.8, 3, 11)
    ours, ref = stats.welch_t(a, b), st.ttest_ind(a, b, equal_var=False)
    assert (ours.statistic, ours.p_value) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)
    assert ours.test == "welch_t"


@pytest.mark.parametrize("seed,n", [(0, 6), (1, 11), (2, 25), (3, 60)])
def test_wilcoxon_exact_matches_scipy_without_ties(seed, n):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, n), rng.normal(0.3, 1, n)
    ours = stats.wilcoxon_signed_rank(a, b)
    ref = st.wilcoxon(a, b, zero_method="pratt", method="exact")
    assert ours.method == "exact"
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    d = a - b
    assert ours.statistic == pytest.approx(st.rankdata(np.abs(d))[d > 0].sum())


@pytest.mark.parametrize("d", [
    [0.0, 0.0, 1.0, -1.0, 2.0, 2.0, 3.0, -3.0, 4.0, 5.0, 0.5, 2.0],  # zeros and ties
    [0.01, 0.01, 0.02, 0.0, -0.01, 0.03, 0.02, 0.02],
    [1.0, 1.0, 1.0, 1.0, 1.0, -1.0],
])
def test_wilcoxon_with_zeros_and_ties_matches_scipy_permutation(d):
    d = np.asarray(d)
    ours = stats.wilcoxon_signed_rank(d, np.zeros_like(d))
    # scipy's exact method is wrong with ties; its full sign-flip permutation is exact.
    ref = st.wilcoxon(d, zero_method="pratt", method=st.PermutationMethod(n_resamples=10**6))
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_wilcoxon_normal_approximation_matches_scipy():
    rng = np.random.default_rng(11)
    d = np.round(rng.normal(0.1, 1, 300), 1)  # many ties and some zeros
    ours = stats.wilcoxon_signed_rank(d, np.zeros_like(d), exact_max_n=100)
    ref = st.wilcoxon(d, zero_method="pratt", method="asymptotic", correction=True)
    assert ours.method == "normal approximation"
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    # The exact recursion agrees with the approximation at this size.
    exact = stats.wilcoxon_signed_rank(d, np.zeros_like(d), exact_max_n=300)
    assert exact.method == "exact" and exact.p_value == pytest.approx(ref.pvalue, rel=0.05)


@pytest.mark.parametrize("seed,n,shift,noise,margin", [c for c in PAIRED_CASES if c[1] <= 16])
def test_sign_flip_exact_matches_scipy_permutation_test(seed, n, shift, noise, margin):
    a, b = _pair(seed, n, shift, noise)
    ours = stats.sign_flip_test(a, b)
    ref = st.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis),
                              permutation_type="samples", n_resamples=np.inf, vectorized=True)
    assert ours.method == "exact"
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)


def test_sign_flip_monte_carlo_close_to_exact_and_needs_rng():
    a, b = _pair(5, 14, 0.002, 0.004)
    exact = stats.sign_flip_test(a, b)
    mc = stats.sign_flip_test(a, b, rng=np.random.default_rng(0), n_resamples=4000, exact_max_n=10)
    assert mc.method.startswith("monte carlo")
    assert mc.p_value == pytest.approx(exact.p_value, abs=0.03)
    again = stats.sign_flip_test(a, b, rng=np.random.default_rng(0), n_resamples=4000, exact_max_n=10)
    assert again == mc
    with pytest.raises(InputError, match="rng"):
        stats.sign_flip_test(a, b, exact_max_n=10)


# --------------------------------------------------------------------------- switching rule


def test_switching_rule_uses_wilcoxon_only_for_non_normal_differences_with_8_or_more_pairs():
    rng = np.random.default_rng(0)
    skewed = rng.exponential(1.0, 30) ** 3  # Shapiro-Wilk rejects clearly
    assert st.shapiro(skewed).pvalue < stats.NORMALITY_ALPHA
    zeros = np.zeros(30)
    assert stats.choose_difference_test(skewed, zeros) == "wilcoxon"
    assert stats.paired_difference(skewed, zeros).test == "wilcoxon"
    # Same skewed shape but only 7 pairs: too few for the pre-test, so the t-test.
    few = np.array([0.01, 0.02, 0.01, 0.03, 0.9, 0.02, 0.01])
    assert st.shapiro(few).pvalue < stats.NORMALITY_ALPHA
    assert stats.choose_difference_test(few, np.zeros(7)) == "paired_t"
    # Eight pairs of the same shape switch.
    eight = np.append(few, 0.02)
    assert st.shapiro(eight).pvalue < stats.NORMALITY_ALPHA
    assert stats.choose_difference_test(eight, np.zeros(8)) == "wilcoxon"
    # Normal differences and constant differences keep the t-test.
    normal = rng.normal(0, 1, 30)
    assert st.shapiro(normal).pvalue >= stats.NORMALITY_ALPHA
    assert stats.choose_difference_test(normal, zeros) == "paired_t"
    assert stats.choose_difference_test(np.full(10, 0.1), np.zeros(10)) == "paired_t"


# --------------------------------------------------------------------------- intervals & effects


def test_bca_matches_scipy_bootstrap_with_same_generator():
    a, b = _pair(1, 15, 0.002, 0.004)
    ours = stats.bca_interval(a, b, rng=np.random.default_rng(5), n_boot=1000, confidence=0.9)
    ref = st.bootstrap((a - b,), np.mean, method="BCa", n_resamples=1000, confidence_level=0.9,
                       rng=np.random.default_rng(5)).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), rel=1e-10)
    assert ours.estimate == pytest.approx(np.mean(a - b))


def test_bca_degenerate_cases():
    rng = np.random.default_rng(0)
    const = stats.bca_interval(np.full(6, 0.5), np.full(6, 0.4), rng=rng, n_boot=200)
    assert (const.low, const.high) == pytest.approx((0.1, 0.1))
    one = stats.bca_interval([1.0], [0.0], rng=rng, n_boot=200)
    assert math.isnan(one.low) and math.isnan(one.high)
    with pytest.raises(InputError, match="Generator"):
        stats.bca_interval([1.0, 2.0], [0.0, 1.0], rng=0, n_boot=200)


def test_t_interval_matches_scipy():
    x = np.array([0.91, 0.92, 0.90, 0.93, 0.915])
    ours = stats.t_interval(x)
    low, high = st.t.interval(0.95, 4, loc=x.mean(), scale=st.sem(x))
    assert (ours.low, ours.high) == pytest.approx((low, high), rel=1e-12)
    assert math.isnan(stats.t_interval([0.9]).low)


def test_effect_sizes_by_hand():
    # d = [1, 2, 3]: mean 2, sd 1.
    assert stats.cohens_dz([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) == pytest.approx(2.0)
    assert stats.cohens_dz([1.0, 1.0], [1.0, 1.0]) == 0.0
    # a - b means differ by -2, pooled sd 1, df 4: J = Gamma(2) / (sqrt(2) Gamma(1.5)).
    j = math.gamma(2) / (math.sqrt(2) * math.gamma(1.5))
    g = stats.hedges_g([1.0, 2.0, 3.0], [3.0, 4.0, 5.0])
    assert g == pytest.approx(-2 * j, rel=1e-12)
    assert g == pytest.approx(-2 * (1 - 3 / (4 * 4 - 1)), abs=0.01)


# --------------------------------------------------------------------------- multiplicity


@pytest.mark.parametrize("ours,ref", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjust_pvalues_matches_multipletests(ours, ref):
    rng = np.random.default_rng(2)
    p = np.concatenate([rng.uniform(0, 0.05, 6), rng.uniform(0, 1, 14), [0.0, 1.0, 0.01, 0.01]])
    assert np.allclose(stats.adjust_pvalues(p, ours), multipletests(p, method=ref)[1], rtol=1e-12)
    # NaN entries are outside the family.
    with_nan = np.insert(p, [0, 5], np.nan)
    adj = stats.adjust_pvalues(with_nan, ours)
    assert np.isnan(adj[[0, 6]]).all()
    assert np.allclose(np.delete(adj, [0, 6]), multipletests(p, method=ref)[1], rtol=1e-12)


def test_adjust_pvalues_rejects_unknown_method():
    with pytest.raises(InputError, match=r"one of \('holm', 'bh'\), but got 'bonferroni'"):
        stats.adjust_pvalues([0.1], "bonferroni")


# --------------------------------------------------------------------------- power


def _simulated_power(n, sd, margin, true_diff, design, reps, seed, alpha=0.05):
    rng = np.random.default_rng(seed)
    if design == "paired":
        d = rng.normal(true_diff, sd, (reps, n))
        m, se, df = d.mean(1), d.std(1, ddof=1) / np.sqrt(n), n - 1
    else:
        a, b = rng.normal(true_diff, sd, (reps, n)), rng.normal(0, sd, (reps, n))
        pooled = np.sqrt((a.var(1, ddof=1) + b.var(1, ddof=1)) / 2)
        m, se, df = a.mean(1) - b.mean(1), pooled * np.sqrt(2 / n), 2 * n - 2
    p = np.maximum(st.t.sf((m + margin) / se, df), st.t.cdf((m - margin) / se, df))
    return float(np.mean(p < alpha))


@pytest.mark.parametrize("n,sd,true_diff,design", [(5, 0.004, 0.0, "paired"), (10, 0.006, 0.001, "paired"),
                                                   (20, 0.008, 0.0, "paired"), (8, 0.004, 0.0, "two-sample")])
def test_tost_power_matches_simulation(n, sd, true_diff, design):
    exact = stats.tost_power(n, sd, 0.005, true_diff=true_diff, design=design)
    sim = _simulated_power(n, sd, 0.005, true_diff, design, reps=20000, seed=n)
    assert exact == pytest.approx(sim, abs=0.015)


def test_tost_power_quadrature_matches_adaptive_integration():
    n, sd, margin = 7, 0.004, 0.005
    df, tc = n - 1, st.t.ppf(0.95, n - 1)

    def integrand(s):  # s: sample SD; density of s from chi2
        half = margin - tc * s / math.sqrt(n)
        prob = st.norm.cdf(half / (sd / math.sqrt(n))) - st.norm.cdf(-half / (sd / math.sqrt(n)))
        return max(prob, 0.0) * st.chi2.pdf(df * s**2 / sd**2, df) * 2 * df * s / sd**2

    ref, _ = integrate.quad(integrand, 0, margin * math.sqrt(n) / tc, limit=200)
    assert stats.tost_power(n, sd, margin) == pytest.approx(ref, abs=1e-6)


def test_seeds_needed_is_the_first_n_reaching_80_percent():
    k = stats.seeds_needed(0.006, 0.005)
    assert stats.tost_power(k, 0.006, 0.005) >= 0.8 > stats.tost_power(k - 1, 0.006, 0.005)
    assert stats.seeds_needed(0.0, 0.005) == 2
    assert stats.seeds_needed(math.nan, 0.005) is None
    assert stats.seeds_needed(1.0, 0.005, max_n=50) is None
    # A true difference beyond the margin can never be shown equivalent.
    assert stats.seeds_needed(0.001, 0.005, true_diff=0.006, max_n=500) is None
    two = stats.seeds_needed(0.006, 0.005, design="two-sample")
    assert two > k  # unpaired needs more seeds at the same SD
    curve = stats.tost_power_curve([2, 5, 10, 40], 0.006, 0.005)
    assert curve.shape == (4,) and np.all(np.diff(curve) > 0)


# --------------------------------------------------------------------------- Bayesian


def test_posterior_matches_monte_carlo_of_the_flat_prior_model():
    a, b = _pair(4, 10, 0.002, 0.004)
    d = a - b
    post = stats.posterior_paired(a, b, 0.003)
    # Draw sigma^2 | d, then mu | sigma^2, d under p(mu, log sigma) flat.
    rng = np.random.default_rng(0)
    n = d.size
    sigma2 = (n - 1) * d.var(ddof=1) / rng.chisquare(n - 1, 200_000)
    mu = rng.normal(d.mean(), np.sqrt(sigma2 / n))
    assert post.p_below == pytest.approx(np.mean(mu < -0.003), abs=0.005)
    assert post.p_rope == pytest.approx(np.mean(np.abs(mu) <= 0.003), abs=0.005)
    assert post.p_above == pytest.approx(np.mean(mu > 0.003), abs=0.005)
    assert post.p_below + post.p_rope + post.p_above == pytest.approx(1.0)


def test_posterior_welch_uses_welch_scale():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.5, 3.0])
    post = stats.posterior_welch(a, b, 0.5)
    tost = stats.tost_welch(a, b, 0.5)
    assert (post.scale, post.df) == pytest.approx((tost.se, tost.df))
    assert post.p_rope == pytest.approx(st.t.cdf(0.5 / tost.se - tost.mean_diff / tost.se, tost.df)
                                        - st.t.cdf(-0.5 / tost.se - tost.mean_diff / tost.se, tost.df))


# --------------------------------------------------------------------------- hand-worked cases


def test_identical_arms():
    a = np.array([0.91, 0.92, 0.90, 0.93, 0.915, 0.92])
    res = stats.compare_paired(a, a.copy(), margin=0.005, rng=np.random.default_rng(0), n_boot=200)
    assert res.identical and res.mean_diff == 0.0 and res.sd_diff == 0.0
    assert res.tost.p_equivalence == 0.0 and (res.tost.ci_low, res.tost.ci_high) == (0.0, 0.0)
    assert res.ttest.p_value == 1.0 and res.wilcoxon.p_value == 1.0 and res.sign_flip.p_value == 1.0
    assert res.effect_dz == 0.0 and res.posterior.p_rope == 1.0
    assert (res.bca.low, res.bca.high) == (0.0, 0.0)
    assert res.seeds_needed == 2


def test_two_pairs_by_hand():
    # d = [0.01, 0.03]: mean 0.02, sd sqrt(2) * 0.01, se 0.01, df 1.
    a, b = np.array([0.91, 0.93]), np.array([0.90, 0.90])
    tost = stats.tost_paired(a, b, 0.05)
    assert tost.se == pytest.approx(0.01) and tost.df == 1
    assert tost.t_lower == pytest.approx(7.0) and tost.t_upper == pytest.approx(-3.0)
    assert tost.p_equivalence == pytest.approx(st.t.cdf(-3.0, 1))  # = 0.1024...
    assert stats.paired_t(a, b).p_value == pytest.approx(2 * st.t.sf(2.0, 1))
    assert stats.wilcoxon_signed_rank(a, b).p_value == pytest.approx(0.5)  # 2 * (1/4)
    assert stats.sign_flip_test(a, b).p_value == pytest.approx(0.5)


def test_constant_nonzero_differences():
    a, b = np.full(6, 0.92), np.full(6, 0.90)
    assert stats.paired_t(a, b).p_value == 0.0
    assert stats.tost_paired(a, b, 0.005).p_equivalence == 1.0  # 0.02 is outside ±0.005
    assert stats.tost_paired(a, b, 0.05).p_equivalence == 0.0
    assert stats.cohens_dz(a, b) == math.inf


def test_huge_margin_is_equivalent():
    a, b = _pair(9, 6, 0.01, 0.02)
    tost = stats.tost_paired(a, b, 1e6)
    assert tost.p_equivalence < 1e-12 and tost.equivalent
    assert stats.posterior_paired(a, b, 1e6).p_rope == pytest.approx(1.0)


def test_fewer_than_two_pairs_give_nan_not_errors():
    res = stats.compare_paired([0.9], [0.8], margin=0.005, rng=np.random.default_rng(0), n_boot=200)
    assert math.isnan(res.tost.p_equivalence) and math.isnan(res.ttest.p_value)
    assert res.seeds_needed is None and res.n == 1
    empty = stats.tost_paired([], [], 0.005)
    assert math.isnan(empty.p_equivalence) and math.isnan(empty.mean_diff)


@pytest.mark.parametrize("call,match", [
    (lambda: stats.tost_paired(np.ones((2, 2)), np.ones((2, 2)), 0.1), "1-D"),
    (lambda: stats.tost_paired([1.0, 2.0], [1.0], 0.1), "same shape"),
    (lambda: stats.paired_t([1.0, np.inf], [1.0, 2.0]), "finite"),
    (lambda: stats.tost_paired([1.0, 2.0], [1.0, 2.0], 0.0), "margin"),
    (lambda: stats.tost_paired([1.0, 2.0], [1.0, 2.0], 0.1, alpha=0.6), "alpha"),
    (lambda: stats.tost_power(5, 1.0, 0.1, design="crossover"), "design"),
])
def test_bad_input_raises_input_error(call, match):
    with pytest.raises(InputError, match=match):
        call()


# --------------------------------------------------------------------------- property




@settings(max_examples=40, deadline=None)
@given(hst.data())
def test_swapping_arms_flips_mean_diff_and_keeps_p_values(data):
    n = data.draw(hst.integers(2, 14))
    a = np.array(data.draw(hst.lists(hst.integers(0, 1000), min_size=n, max_size=n))) / 1000
    b = np.array(data.draw(hst.lists(hst.integers(0, 1000), min_size=n, max_size=n))) / 1000
    margin = data.draw(hst.sampled_from([0.005, 0.05, 0.3]))
    ab = stats.compare_paired(a, b, margin=margin, rng=np.random.default_rng(0), n_boot=200)
    ba = stats.compare_paired(b, a, margin=margin, rng=np.random.default_rng(0), n_boot=200)
    assert ba.mean_diff == -ab.mean_diff
    assert (ba.tost.ci_low, ba.tost.ci_high) == pytest.approx((-ab.tost.ci_high, -ab.tost.ci_low))
    close = dict(rel=1e-9, abs=1e-15)
    assert ba.tost.p_equivalence == pytest.approx(ab.tost.p_equivalence, nan_ok=True, **close)
    assert ba.difference.test == ab.difference.test
    for name in ("difference", "ttest", "wilcoxon", "sign_flip"):
        p_ab, p_ba = getattr(ab, name).p_value, getattr(ba, name).p_value
        assert (math.isnan(p_ab) and math.isnan(p_ba)) or p_ba == pytest.approx(p_ab, **close)
    assert ba.posterior.p_rope == pytest.approx(ab.posterior.p_rope, **close)
    assert ba.posterior.p_below == pytest.approx(ab.posterior.p_above, **close)
