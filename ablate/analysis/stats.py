"""Statistics for ablation comparisons: pure functions on numpy arrays.

Every public function takes 1-D arrays and returns a float, an array or a frozen
dataclass. Paired functions take ``a`` and ``b`` of shape ``(n,)``, element ``i`` of
both coming from the same seed, and work on the differences ``d = a - b``; unpaired
(Welch) functions take ``a`` of shape ``(n_a,)`` and ``b`` of shape ``(n_b,)``. All
differences, intervals and effects are signed ``a - b``.

Degenerate inputs are answered, not refused, because a comparisons table must have a
row for every pair of arms:

* fewer than 2 observations (per side): standard errors, p-values and intervals are NaN;
* a standard error of exactly zero (e.g. every difference equal): a t statistic with a
  non-zero numerator is ``±inf`` (p = 0 or 1), and ``0 / 0`` is taken as ``t = 0`` (no
  evidence either way), so all-zero differences give a difference p of 1 and an
  equivalence p of 0 for any positive margin.

Float noise (:func:`compare_paired`, :func:`compare_unpaired`, the bundles the report
uses): two runs whose metric differs only by rounding must not look "significant" at
p = 1e-15 with an effect size of 1e14. A spread is *numerically zero* when it is at most
``NOISE_RTOL * scale`` (``NOISE_RTOL = 1e-12``; ``scale`` = the largest ``|value|`` of
either arm, i.e. the metric's magnitude, so the rule is scale-free and only ever catches
differences a few thousand ULPs wide). Then:

* every ``|a - b|`` numerically zero: the arms are treated as identical (``b`` is
  replaced by ``a``, so all statistics are those of exactly-zero differences);
* the differences' SD (paired) or both arms' SDs (unpaired) numerically zero but the
  mean difference not: the differences are *constant* (``constant=True``). There is no
  variance to test against, so ``p_equivalence``, the difference p-values and the effect
  sizes are NaN; the interval is the point ``[mean, mean]`` and the verdict is read
  from that exact value (see :mod:`ablate.analysis.compare`).

The single-purpose functions (:func:`paired_t`, :func:`tost_paired`, ...) keep the
exact-arithmetic conventions above and match scipy/statsmodels, noise included.

Which test gives ``p_difference`` (see :func:`choose_difference_test`): the paired
t-test, unless there are at least ``NORMALITY_MIN_N = 8`` pairs with non-constant
differences and Shapiro-Wilk rejects normality of the differences at
``NORMALITY_ALPHA = 0.05``; then the Wilcoxon signed-rank test. The pre-test makes the
choice data-dependent; it is kept simple and reported in the ``test`` column so a
reader can see which test was used. Note that with n pairs the smallest exact two-sided
Wilcoxon p is 2^(1 - n) (0.0078 at n = 8), which a Holm correction over a large table
may not let through.

Spread (:func:`pitman_morgan`, :func:`sd_ratio_paired`, :func:`sd_ratio_independent`): the
ratio of two arms' seed-to-seed SDs with its exact interval under normality (Pitman-Morgan
inverted for paired arms, F for independent ones) and a TOST of the ratio against
``[1/margin, margin]``; the bundles attach it as ``spread``.

Randomness (the bootstrap and Monte Carlo sign flips) only comes from an
``np.random.Generator`` that the caller passes in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special
from scipy import stats as st

from ablate.config import CORRECTIONS
from ablate.errors import InputError

NORMALITY_ALPHA = 0.05
NOISE_RTOL = 1e-12
NORMALITY_MIN_N = 8
WILCOXON_ZERO_METHOD = "pratt"
WILCOXON_EXACT_MAX_N = 200
SIGN_FLIP_EXACT_MAX_N = 16

Design = Literal["paired", "two-sample"]
Correction = Literal["holm", "bh"]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Tost:
    """Two one-sided t-tests (Schuirmann) of H0: |mean difference| >= margin.

    ``p_lower`` tests H0: diff <= -margin, ``p_upper`` tests H0: diff >= +margin, and
    ``p_equivalence = max(p_lower, p_upper)``. ``[ci_low, ci_high]`` is the
    (1 - 2 alpha) t-interval of the difference, so ``p_equivalence < alpha`` exactly
    when the interval lies strictly inside ``(-margin, +margin)``.
    """

    mean_diff: float
    se: float
    df: float
    margin: float
    alpha: float
    t_lower: float
    p_lower: float
    t_upper: float
    p_upper: float
    p_equivalence: float
    ci_low: float
    ci_high: float
    n_a: int
    n_b: int

    @property
    def equivalent(self) -> bool:
        return bool(self.p_equivalence < self.alpha)


@dataclass(frozen=True)
class SignificanceTest:
    """A two-sided test of no difference.

    test: "paired_t", "welch_t", "wilcoxon" or "sign_flip".
    statistic: t for the t-tests, R+ (the sum of the ranks of positive differences,
    Pratt zero handling) for "wilcoxon", the mean difference for "sign_flip".
    df: degrees of freedom of the t-tests, NaN otherwise.
    method: how the p-value was obtained ("t distribution", "exact", "normal
    approximation", "monte carlo (N resamples)", "no non-zero differences", ...).
    """

    test: str
    statistic: float
    p_value: float
    df: float
    n: int
    method: str


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval of ``estimate`` at level ``confidence``."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str


@dataclass(frozen=True)
class Posterior:
    """Posterior of the mean difference: ``mean + scale * t(df)``.

    p_below = P(diff < -margin), p_rope = P(-margin <= diff <= margin),
    p_above = P(diff > margin); they sum to 1.
    """

    mean: float
    scale: float
    df: float
    margin: float
    p_below: float
    p_rope: float
    p_above: float


@dataclass(frozen=True)
class PairedComparison:
    """Everything :func:`compare_paired` computes for one pair of arms.

    ``difference`` is the test chosen by :func:`choose_difference_test`; ``ttest``,
    ``wilcoxon`` and ``sign_flip`` are all kept. ``identical`` is True when every
    difference is zero (exactly, or within float noise: see the module doc), and
    ``constant`` when the differences are one non-zero value within float noise (no
    test then: p-values and effect sizes NaN). ``seeds_needed`` assumes a true
    difference of 0, ``seeds_needed_observed`` the observed mean difference (None when
    that is at or beyond the margin: equivalence is then not reachable); both use the
    observed SD and are None when it is unknown (n < 2) or past the search limit.
    """

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    sd_diff: float
    identical: bool
    tost: Tost
    difference: SignificanceTest
    ttest: SignificanceTest
    wilcoxon: SignificanceTest
    sign_flip: SignificanceTest
    bca: Interval
    interval_a: Interval
    interval_b: Interval
    effect_dz: float
    hedges_g: float
    posterior: Posterior
    seeds_needed: int | None
    seeds_needed_observed: int | None = None
    constant: bool = False
    spread: SpreadComparison | None = None


@dataclass(frozen=True)
class UnpairedComparison:
    """Everything :func:`compare_unpaired` computes (Welch) for two independent samples.

    ``seeds_needed`` and ``seeds_needed_observed`` are per side, from a two-sample TOST
    with the pooled SD (true difference 0, resp. the observed one). ``constant``: both
    samples are constant within float noise and their means differ (no test then).
    """

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    mean_diff: float
    sd_pooled: float
    tost: Tost
    difference: SignificanceTest
    interval_a: Interval
    interval_b: Interval
    hedges_g: float
    posterior: Posterior
    seeds_needed: int | None
    seeds_needed_observed: int | None = None
    constant: bool = False
    spread: SpreadComparison | None = None


# --------------------------------------------------------------------------- helpers


def _vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(f"`{name}` must be a 1-D array of shape (n,), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise InputError(f"`{name}` must be finite, got {bad} non-finite value(s)")
    return arr


def _differences(a, b) -> np.ndarray:
    a, b = _vector(a, "a"), _vector(b, "b")
    if a.shape != b.shape:
        raise InputError(f"paired `a` and `b` must have the same shape, got {a.shape} and {b.shape}")
    return a - b


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise InputError(f"Expected `alpha` in (0, 0.5), but got {alpha!r}")


def _check_margin(margin: float) -> None:
    if not (np.isfinite(margin) and margin > 0):
        raise InputError(f"Expected `margin` > 0, but got {margin!r}")


def _ratio(num: float, se: float) -> float:
    """num / se, with a zero standard error handled as described in the module doc."""
    if se > 0:
        return num / se
    if num == 0:
        return 0.0
    return math.copysign(math.inf, num)


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if x.size >= 2 else math.nan


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else math.nan


def _tost_from(m, se, df, margin, alpha, n_a, n_b) -> Tost:
    if not (df > 0 and np.isfinite(se)):
        nan = math.nan
        return Tost(m, se, df, margin, alpha, nan, nan, nan, nan, nan, nan, nan, n_a, n_b)
    t_lo = _ratio(m + margin, se)
    t_hi = _ratio(m - margin, se)
    # Same one-sided formulas as statsmodels (sf for "larger", cdf for "smaller").
    p_lo = float(st.t.sf(t_lo, df))
    p_hi = float(st.t.cdf(t_hi, df))
    half = float(st.t.ppf(1 - alpha, df)) * se
    return Tost(m, se, df, margin, alpha, t_lo, p_lo, t_hi, p_hi, max(p_lo, p_hi),
                m - half, m + half, n_a, n_b)


def _welch_se_df(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan
    va, vb = np.var(a, ddof=1) / a.size, np.var(b, ddof=1) / b.size
    se = math.sqrt(va + vb)
    den = va**2 / (a.size - 1) + vb**2 / (b.size - 1)
    # Both variances zero: Satterthwaite is 0/0; any df gives the same p (t is 0 or inf).
    df = (va + vb) ** 2 / den if den > 0 else float(a.size + b.size - 2)
    return se, float(df)


# --------------------------------------------------------------------------- equivalence


def tost_paired(a, b, margin: float, *, alpha: float = 0.05) -> Tost:
    """Paired TOST of the mean of ``a - b`` against ``±margin``.

    a, b: (n,) paired values. Matches
    ``statsmodels.stats.weightstats.ttost_paired(a, b, -margin, margin)``.
    """
    _check_margin(margin)
    _check_alpha(alpha)
    d = _differences(a, b)
    n = d.size
    se = _sd(d) / math.sqrt(n) if n >= 2 else math.nan
    return _tost_from(_mean(d), se, float(n - 1), margin, alpha, n, n)


def tost_welch(a, b, margin: float, *, alpha: float = 0.05) -> Tost:
    """Welch (unequal variances) TOST of ``mean(a) - mean(b)`` against ``±margin``.

    a: (n_a,), b: (n_b,) independent samples. Matches
    ``statsmodels.stats.weightstats.ttost_ind(a, b, -margin, margin, usevar="unequal")``.
    """
    _check_margin(margin)
    _check_alpha(alpha)
    a, b = _vector(a, "a"), _vector(b, "b")
    se, df = _welch_se_df(a, b)
    m = _mean(a) - _mean(b) if a.size and b.size else math.nan
    return _tost_from(m, se, df, margin, alpha, a.size, b.size)


# --------------------------------------------------------------------------- difference


def paired_t(a, b) -> SignificanceTest:
    """Two-sided paired t-test of mean(a - b) = 0. a, b: (n,). Matches ``scipy.stats.ttest_rel``."""
    d = _differences(a, b)
    n = d.size
    if n < 2:
        return SignificanceTest("paired_t", math.nan, math.nan, math.nan, n, "n < 2")
    t = _ratio(_mean(d), _sd(d) / math.sqrt(n))
    return SignificanceTest("paired_t", t, float(2 * st.t.sf(abs(t), n - 1)), float(n - 1), n,
                            "t distribution")


def welch_t(a, b) -> SignificanceTest:
    """Two-sided Welch t-test of mean(a) = mean(b). a: (n_a,), b: (n_b,).

    Matches ``scipy.stats.ttest_ind(a, b, equal_var=False)``; ``n`` is ``min(n_a, n_b)``.
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    se, df = _welch_se_df(a, b)
    n = min(a.size, b.size)
    if not np.isfinite(se):
        return SignificanceTest("welch_t", math.nan, math.nan, math.nan, n, "n < 2 on a side")
    t = _ratio(_mean(a) - _mean(b), se)
    return SignificanceTest("welch_t", t, float(2 * st.t.sf(abs(t), df)), df, n, "t distribution")


def _signed_rank_pmf(weights: np.ndarray) -> np.ndarray:
    """Null pmf of sum(w_i * [sign_i > 0]) for independent fair signs.

    weights: (m,) positive integers (doubled midranks). Returns (sum(w) + 1,) pmf.
    """
    pmf = np.zeros(int(weights.sum()) + 1)
    pmf[0] = 1.0
    top = 0
    for w in weights:
        w = int(w)
        # Halving at each step keeps it a probability vector (no 2^m overflow).
        shifted = pmf[: top + 1].copy()
        pmf[: top + 1] *= 0.5
        pmf[w : w + top + 1] += 0.5 * shifted
        top += w
    return pmf


def wilcoxon_signed_rank(a, b, *, exact_max_n: int = WILCOXON_EXACT_MAX_N) -> SignificanceTest:
    """Two-sided Wilcoxon signed-rank test of d = a - b symmetric about 0.

    a, b: (n,). Zeros are handled with Pratt's method (``zero_method="pratt"``): zero
    differences take part in ranking |d| (midranks for ties) and then contribute to
    neither sign. For ``n <= exact_max_n`` the p-value is exact: the conditional null
    distribution of R+ given the observed ranks (ties and zeros included), computed
    by a subset-sum recursion over doubled midranks. It equals scipy's
    ``wilcoxon(a, b, zero_method="pratt")`` with its exact method when there are no
    ties or zeros, and its full sign-flip permutation otherwise. Larger n uses the
    normal approximation with tie and zero corrections and a 0.5 continuity
    correction (scipy's ``method="asymptotic", correction=True``). All-zero differences give p = 1.
    """
    d = _differences(a, b)
    n = d.size
    if n == 0:
        return SignificanceTest("wilcoxon", math.nan, math.nan, math.nan, 0, "n = 0")
    nonzero = d != 0
    if not nonzero.any():
        return SignificanceTest("wilcoxon", 0.0, 1.0, math.nan, n, "no non-zero differences")
    ranks = st.rankdata(np.abs(d))  # Pratt: zeros are ranked, then dropped
    doubled = np.rint(2 * ranks).astype(np.int64)  # midranks are multiples of 1/2
    w = doubled[nonzero]
    pos = d[nonzero] > 0
    t2 = int(w[pos].sum())
    r_plus = t2 / 2
    if n <= exact_max_n:
        pmf = _signed_rank_pmf(w)
        p = 2 * min(pmf[: t2 + 1].sum(), pmf[t2:].sum())
        return SignificanceTest("wilcoxon", r_plus, float(min(1.0, p)), math.nan, n, "exact")
    r = w / 2
    mean = r.sum() / 2
    se = math.sqrt(float(np.sum(r**2)) / 4)
    z = (r_plus - mean - math.copysign(0.5, r_plus - mean) * (r_plus != mean)) / se
    return SignificanceTest("wilcoxon", r_plus, float(min(1.0, 2 * st.norm.sf(abs(z)))),
                            math.nan, n, "normal approximation")


def sign_flip_test(
    a,
    b,
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = 9999,
    exact_max_n: int = SIGN_FLIP_EXACT_MAX_N,
) -> SignificanceTest:
    """Two-sided paired permutation test of mean(a - b) = 0 by flipping signs of d.

    a, b: (n,). Exact (all 2^n sign vectors) when ``n <= exact_max_n``; otherwise
    ``n_resamples`` random sign vectors from ``rng`` (required then) and the
    (count + 1) / (n_resamples + 1) p-value. The p-value is
    ``min(1, 2 * min(P(null <= obs), P(null >= obs)))`` with scipy's relative
    tolerance for ties, so it equals ``scipy.stats.permutation_test`` with
    ``permutation_type="samples"`` and the statistic mean(x - y).
    """
    d = _differences(a, b)
    n = d.size
    if n == 0:
        return SignificanceTest("sign_flip", math.nan, math.nan, math.nan, 0, "n = 0")
    observed = float(np.mean(d))
    if n <= exact_max_n:
        codes = np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n)
        signs = 1.0 - 2.0 * (codes & 1)  # (2^n, n), row 0 is the identity
        null = signs @ d / n
        adjustment, count, method = 0, 2**n, "exact"
    else:
        if rng is None:
            raise InputError(f"`rng` (np.random.Generator) is required for the Monte Carlo "
                             f"sign-flip test when n > {exact_max_n}, got n = {n}")
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(n_resamples, n))
        null = signs @ d / n
        adjustment, count = 1, n_resamples
        method = f"monte carlo ({n_resamples} resamples)"
    gamma = abs(observed) * np.finfo(np.float64).eps * 100  # scipy's tie tolerance
    less = (np.count_nonzero(null <= observed + gamma) + adjustment) / (count + adjustment)
    greater = (np.count_nonzero(null >= observed - gamma) + adjustment) / (count + adjustment)
    return SignificanceTest("sign_flip", observed, float(min(1.0, 2 * min(less, greater))),
                            math.nan, n, method)


def choose_difference_test(a, b) -> Literal["paired_t", "wilcoxon"]:
    """The test behind ``p_difference`` for paired data a, b: (n,).

    "wilcoxon" when n >= NORMALITY_MIN_N (8), the differences are not all equal, and
    Shapiro-Wilk on the differences gives p < NORMALITY_ALPHA (0.05); else "paired_t".
    Below 8 pairs Shapiro-Wilk has too little power to be worth the switch.
    """
    d = _differences(a, b)
    if d.size < NORMALITY_MIN_N or np.ptp(d) == 0:
        return "paired_t"
    return "wilcoxon" if st.shapiro(d).pvalue < NORMALITY_ALPHA else "paired_t"


def paired_difference(a, b) -> SignificanceTest:
    """The paired difference test chosen by :func:`choose_difference_test`. a, b: (n,)."""
    if choose_difference_test(a, b) == "wilcoxon":
        return wilcoxon_signed_rank(a, b)
    return paired_t(a, b)


# --------------------------------------------------------------------------- intervals


def t_interval(x, *, confidence: float = 0.95) -> Interval:
    """t-interval of the mean of one cell. x: (n,) values (e.g. one arm's seeds)."""
    x = _vector(x, "x")
    m = _mean(x)
    if x.size < 2:
        return Interval(m, math.nan, math.nan, confidence, "t")
    half = float(st.t.ppf(0.5 + confidence / 2, x.size - 1)) * _sd(x) / math.sqrt(x.size)
    return Interval(m, m - half, m + half, confidence, "t")


def bca_interval(
    a, b, *, rng: np.random.Generator, n_boot: int = 2000, confidence: float = 0.95
) -> Interval:
    """BCa bootstrap interval of the mean paired difference mean(a - b).

    a, b: (n,). Resamples are drawn as ``rng.integers(0, n, (n_boot, n))``, so with the
    same generator state it equals ``scipy.stats.bootstrap((a - b,), np.mean,
    method="BCa", n_resamples=n_boot)``. Constant differences give the point
    interval [d, d]; n < 2 gives NaN bounds.
    """
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"Expected `rng` to be a np.random.Generator, but got {type(rng).__name__}")
    d = _differences(a, b)
    n = d.size
    theta = _mean(d)
    if n < 2:
        return Interval(theta, math.nan, math.nan, confidence, "bca")
    if np.ptp(d) == 0:
        return Interval(theta, theta, theta, confidence, "bca (constant differences)")
    boot = d[rng.integers(0, n, (n_boot, n))].mean(axis=1)
    # Bias correction: mid-rank percentile of theta in the bootstrap distribution.
    z0 = special.ndtri((np.count_nonzero(boot < theta) + np.count_nonzero(boot <= theta))
                       / (2 * n_boot))
    # Acceleration from the jackknife (Efron & Tibshirani eq. 14.15).
    jack = (d.sum() - d) / (n - 1)
    u = (n - 1) * (jack.mean() - jack)
    acc = (np.sum(u**3) / n**3) / (6 * (np.sum(u**2) / n**2) ** 1.5)
    z = special.ndtri((1 - confidence) / 2)
    levels = [special.ndtr(z0 + (z0 + zz) / (1 - acc * (z0 + zz))) for zz in (z, -z)]
    if not np.all(np.isfinite(levels)):
        return Interval(theta, math.nan, math.nan, confidence, "bca (degenerate)")
    low, high = np.quantile(boot, levels)
    return Interval(theta, float(low), float(high), confidence, "bca")


# --------------------------------------------------------------------------- effect sizes


def cohens_dz(a, b) -> float:
    """Cohen's d_z = mean(d) / sd(d) for paired a, b: (n,) (ddof=1).

    All-zero differences give 0; constant non-zero differences give ±inf; n < 2 gives NaN.
    """
    d = _differences(a, b)
    if d.size < 2:
        return math.nan
    return _ratio(_mean(d), _sd(d))


def hedges_g(a, b) -> float:
    """Hedges' g: (mean(a) - mean(b)) / pooled SD, times the exact small-sample factor.

    a: (n_a,), b: (n_b,). J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)) with
    df = n_a + n_b - 2 (≈ 1 - 3 / (4 df - 1)). NaN when df < 2.
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    df = a.size + b.size - 2
    if a.size < 1 or b.size < 1 or df < 2:
        return math.nan
    pooled = math.sqrt((np.sum((a - a.mean()) ** 2) + np.sum((b - b.mean()) ** 2)) / df)
    j = math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    return _ratio(float(a.mean() - b.mean()), pooled) * j


# --------------------------------------------------------------------------- multiplicity


def adjust_pvalues(p, method: Correction = "holm") -> np.ndarray:
    """Holm (step-down FWER) or Benjamini-Hochberg (step-up FDR) adjusted p-values.

    p: (m,) raw p-values; NaN entries are not part of the family and stay NaN.
    Returns (m,) adjusted p-values, equal to statsmodels ``multipletests`` with
    ``"holm"`` / ``"fdr_bh"`` on the finite entries.
    """
    if method not in CORRECTIONS:
        raise InputError(f"Expected argument `method` to be one of {CORRECTIONS}, but got {method!r}")
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise InputError(f"`p` must be a 1-D array of shape (m,), got shape {p.shape}")
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    ranked = q[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adj = np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
    adj = np.minimum(adj, 1.0)
    back = np.empty(m)
    back[order] = adj
    out[ok] = back
    return out


# --------------------------------------------------------------------------- power


def _design(n: int, design: Design) -> tuple[float, float]:
    """(df, c) such that se = sigma * c for n seeds (per side for two-sample)."""
    if design == "paired":
        return float(n - 1), 1.0 / math.sqrt(n)
    if design == "two-sample":
        return float(2 * n - 2), math.sqrt(2.0 / n)
    raise InputError(f"Expected argument `design` to be one of ('paired', 'two-sample'), but got {design!r}")


_GL_X, _GL_W = np.polynomial.legendre.leggauss(96)


def tost_power(
    n: int,
    sd: float,
    margin: float,
    *,
    alpha: float = 0.05,
    true_diff: float = 0.0,
    design: Design = "paired",
) -> float:
    """Exact power of the TOST at ``±margin`` with ``n`` seeds.

    sd: SD of the paired differences (``design="paired"``) or of each arm
    (``design="two-sample"``, equal n and variances, pooled df = 2n - 2).
    TOST rejects iff -margin + t_c s c < mean < margin - t_c s c. Conditioning on the
    sample SD s (s^2 ~ sd^2 chi2_df / df, independent of the mean) gives a normal
    probability; it is integrated over the chi-square quantiles with 96-point
    Gauss-Legendre (Owen's 1965 exact power, as a one-dimensional integral).
    """
    _check_alpha(alpha)
    _check_margin(margin)
    if n < 2:
        return math.nan
    df, c = _design(n, design)
    if not np.isfinite(sd) or sd < 0:
        return math.nan
    if sd == 0:
        return float(abs(true_diff) < margin)
    tc = float(st.t.ppf(1 - alpha, df))
    v_max = df * (margin / (tc * c * sd)) ** 2  # beyond it the acceptance region is empty
    u_max = float(st.chi2.cdf(v_max, df))
    if u_max <= 0:
        return 0.0
    u = 0.5 * u_max * (_GL_X + 1.0)
    v = st.chi2.ppf(u, df)
    half = margin - tc * c * sd * np.sqrt(v / df)
    scale = sd * c
    prob = st.norm.cdf((half - true_diff) / scale) - st.norm.cdf((-half - true_diff) / scale)
    return float(np.clip(0.5 * u_max * np.sum(_GL_W * np.maximum(prob, 0.0)), 0.0, 1.0))


def tost_power_curve(
    ns,
    sd: float,
    margin: float,
    *,
    alpha: float = 0.05,
    true_diff: float = 0.0,
    design: Design = "paired",
) -> np.ndarray:
    """:func:`tost_power` for each seed count. ns: (k,) ints >= 2. Returns (k,) powers."""
    return np.array([tost_power(int(k), sd, margin, alpha=alpha, true_diff=true_diff,
                                design=design) for k in np.asarray(ns).ravel()])


def seeds_needed(
    sd: float,
    margin: float,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    true_diff: float = 0.0,
    design: Design = "paired",
    max_n: int = 100_000,
) -> int | None:
    """Smallest n >= 2 whose TOST power at ``±margin`` reaches ``power``.

    Planning assumes a true difference of ``true_diff`` (0: the arms really are
    equal) and the given SD (the observed one). None when sd or true_diff is NaN,
    when ``|true_diff| >= margin`` (power then stays below 1/2 for every n, so
    equivalence is not reachable), or when more than ``max_n`` seeds would be needed.
    Power is increasing in n, so doubling then bisection finds the boundary.
    """
    if not (np.isfinite(sd) and np.isfinite(true_diff)):
        return None
    if abs(true_diff) >= margin and power > 0.5:  # TOST power <= 1/2 there, whatever n
        return None

    def ok(k: int) -> bool:
        return tost_power(k, sd, margin, alpha=alpha, true_diff=true_diff, design=design) >= power

    if ok(2):
        return 2
    lo, hi = 2, 4
    while not ok(hi):
        if hi >= max_n:
            return None
        lo, hi = hi, min(2 * hi, max_n)
    while hi - lo > 1:  # invariant: not ok(lo), ok(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


# --------------------------------------------------------------------------- Bayesian


def _posterior(mean: float, scale: float, df: float, margin: float) -> Posterior:
    if not (df > 0 and np.isfinite(scale)):
        return Posterior(mean, scale, df, margin, math.nan, math.nan, math.nan)
    if scale == 0:  # point mass at the mean
        below, above = float(mean < -margin), float(mean > margin)
    else:
        below = float(st.t.cdf((-margin - mean) / scale, df))
        above = float(st.t.sf((margin - mean) / scale, df))
    return Posterior(mean, scale, df, margin, below, max(0.0, 1.0 - below - above), above)


def posterior_paired(a, b, margin: float) -> Posterior:
    """Posterior of the mean paired difference under the flat prior p(mu, log sigma) ∝ 1.

    a, b: (n,). The marginal posterior is mean(d) + sd(d)/sqrt(n) * t(n - 1); its mass
    below -margin, inside [-margin, margin] (``p_rope``) and above +margin is returned.
    """
    _check_margin(margin)
    d = _differences(a, b)
    n = d.size
    scale = _sd(d) / math.sqrt(n) if n >= 2 else math.nan
    return _posterior(_mean(d), scale, float(n - 1), margin)


def posterior_welch(a, b, margin: float) -> Posterior:
    """Approximate posterior of mean(a) - mean(b) for independent samples, flat priors.

    a: (n_a,), b: (n_b,). The exact posterior (Behrens-Fisher) is approximated by a t
    with the Welch standard error and Satterthwaite df.
    """
    _check_margin(margin)
    a, b = _vector(a, "a"), _vector(b, "b")
    se, df = _welch_se_df(a, b)
    m = _mean(a) - _mean(b) if a.size and b.size else math.nan
    return _posterior(m, se, df, margin)


# --------------------------------------------------------------------------- spread (SD ratio)

SD_RATIO_MARGIN = 1.5


@dataclass(frozen=True)
class SpreadComparison:
    """The ratio of two arms' seed-to-seed SDs, ``sd_a / sd_b``, and its equivalence test.

    design: "paired" (Pitman-Morgan, exact under bivariate normality) or "independent"
    (the F distribution, exact under normality). ``[low, high]`` is the (1 - 2 alpha)
    interval of the ratio, so ``p_equivalence < alpha`` exactly when it lies strictly
    inside ``(1 / margin, margin)``. ``p_difference`` tests ratio = 1 (two-sided).
    ``state``: "ok" (a test was made), "identical" (paired values all equal: the ratio
    is exactly 1), "no spread" (both SDs zero), "one flat" (one SD zero, the other
    not: the ratio is 0 or inf, outside any margin), "too few" (n < 3 pairs, or < 2 runs
    on a side) or "degenerate" (|corr(a, b)| = 1 exactly at a tested ratio: 0 / 0, no
    test). With |corr(a, b)| = 1 otherwise the ratio is known exactly: the interval is
    that point and the t statistics are infinite.
    """

    n_a: int
    n_b: int
    sd_a: float
    sd_b: float
    ratio: float
    low: float
    high: float
    margin: float
    alpha: float
    p_lower: float
    p_upper: float
    p_equivalence: float
    p_difference: float
    design: str
    state: str = "ok"

    @property
    def equivalent(self) -> bool:
        return bool(self.p_equivalence < self.alpha)


def _check_ratio_margin(margin: float) -> None:
    if not (np.isfinite(margin) and margin > 1):
        raise InputError(f"Expected the SD-ratio `margin` > 1 (e.g. 1.5 for [1/1.5, 1.5]), but got {margin!r}")


def _pm_t(var_a, var_b, cov, n, ratio0):
    """Pitman-Morgan t for H0: sd_a / sd_b = ratio0 (arrays broadcast).

    It is the t statistic of the correlation between u = a + k b and v = a - k b with
    k = ratio0 (cov(u, v) = var_a - k^2 var_b vanishes exactly under H0), written in
    the sample moments: t = r sqrt(n - 2) / sqrt(1 - r^2).
    """
    k2 = np.asarray(ratio0, dtype=np.float64) ** 2
    s_uv = var_a - k2 * var_b
    with np.errstate(divide="ignore", invalid="ignore"):
        # 1 - r^2 = (s_uu s_vv - s_uv^2) / (s_uu s_vv) = 4 k^2 (var_a var_b - cov^2) / (s_uu s_vv)
        t = s_uv * np.sqrt(n - 2.0) / np.sqrt(4.0 * k2 * (var_a * var_b - cov**2))
    return t


def pitman_morgan(a, b, *, ratio: float = 1.0) -> SignificanceTest:
    """Pitman-Morgan test of H0: sd(a) / sd(b) = ``ratio`` for paired a, b: (n,).

    Exact under bivariate normality: with k = ratio, u = a + k b and v = a - k b are
    uncorrelated exactly under H0, so the t-test of their correlation (t(n - 2)) is the
    test. ``statistic`` is t (positive when sd(a) / sd(b) > ratio). Needs n >= 3; a
    perfect correlation of a and b (|r| = 1) leaves no test (NaN), unless the SD ratio
    is then exactly ``ratio``.
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    _differences(a, b)
    if not (np.isfinite(ratio) and ratio > 0):
        raise InputError(f"Expected `ratio` > 0, but got {ratio!r}")
    n = a.size
    if n < 3:
        return SignificanceTest("pitman_morgan", math.nan, math.nan, math.nan, n, "n < 3")
    cov = np.cov(a, b, ddof=1)
    t = float(_pm_t(cov[0, 0], cov[1, 1], cov[0, 1], n, ratio))
    if math.isnan(t):  # 0 / 0: perfectly correlated with exactly the tested ratio
        return SignificanceTest("pitman_morgan", math.nan, math.nan, float(n - 2), n,
                                "perfectly correlated at the tested ratio: no test")
    return SignificanceTest("pitman_morgan", t, float(2 * st.t.sf(abs(t), n - 2)), float(n - 2), n,
                            "t distribution (correlation of sums and differences)")


def sd_ratio_paired_interval(var_a, var_b, cov, n, *, confidence: float = 0.95):
    """The exact Pitman-Morgan interval of sd_a / sd_b, vectorised over samples.

    var_a, var_b, cov: sample variances and covariance (ddof=1), any broadcastable
    shape; n: pairs (>= 3). Inverting the Pitman-Morgan test gives, for the variance
    ratio, ``(var_a / var_b) * (K -+ sqrt(K^2 - 1))`` with
    ``K = 1 + 2 (1 - r^2) t^2 / (n - 2)``, t the (1 + confidence)/2 quantile of
    t(n - 2) and r the correlation of a and b; the SD ratio's bounds are their square
    roots. Returns (ratio, low, high) arrays.
    """
    var_a, var_b, cov = (np.asarray(x, dtype=np.float64) for x in (var_a, var_b, cov))
    tq = st.t.ppf(0.5 + confidence / 2, n - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = var_a / var_b
        r2 = np.clip(cov**2 / (var_a * var_b), 0.0, 1.0)
        k = 1.0 + 2.0 * (1.0 - r2) * tq**2 / (n - 2)
        root = np.sqrt(k**2 - 1.0)
        return np.sqrt(f), np.sqrt(f * (k - root)), np.sqrt(f * (k + root))


def _spread_nan(n_a, n_b, sd_a, sd_b, margin, alpha, design, state, ratio=math.nan):
    nan = math.nan
    low = high = ratio if state in ("identical", "one flat") else nan
    p_eq = 0.0 if state == "identical" else nan
    p_diff = 1.0 if state == "identical" else nan
    if state == "one flat":
        p_eq, p_diff = 1.0, 0.0
    return SpreadComparison(n_a, n_b, sd_a, sd_b, ratio, low, high, margin, alpha, nan, nan,
                            p_eq, p_diff, design, state)


def sd_ratio_paired(a, b, *, margin: float = SD_RATIO_MARGIN, alpha: float = 0.05) -> SpreadComparison:
    """SD ratio sd(a) / sd(b) of paired a, b: (n,), with its exact interval and TOST.

    The interval is the (1 - 2 alpha) inversion of the Pitman-Morgan test
    (:func:`sd_ratio_paired_interval`); equivalence is two one-sided Pitman-Morgan
    tests at ratio 1/margin (H0: ratio <= 1/margin) and at ratio margin
    (H0: ratio >= margin); ``p_equivalence`` is the larger p.
    """
    _check_ratio_margin(margin)
    _check_alpha(alpha)
    a, b = _vector(a, "a"), _vector(b, "b")
    d = _differences(a, b)
    n = a.size
    sd_a, sd_b = _sd(a), _sd(b)
    if n >= 1 and np.all(d == 0):
        return _spread_nan(n, n, sd_a, sd_b, margin, alpha, "paired", "identical", 1.0)
    if n < 3:
        return _spread_nan(n, n, sd_a, sd_b, margin, alpha, "paired", "too few")
    flat = _flat_spread(n, n, sd_a, sd_b, margin, alpha, "paired")
    if flat is not None:
        return flat
    cov = np.cov(a, b, ddof=1)
    va, vb, c = cov[0, 0], cov[1, 1], cov[0, 1]
    ratio, low, high = (float(x) for x in sd_ratio_paired_interval(va, vb, c, n, confidence=1 - 2 * alpha))
    t_lo = float(_pm_t(va, vb, c, n, 1.0 / margin))
    t_hi = float(_pm_t(va, vb, c, n, margin))
    t_one = float(_pm_t(va, vb, c, n, 1.0))
    if any(math.isnan(t) for t in (t_lo, t_hi, t_one)):  # |r| = 1 exactly at a tested ratio
        return SpreadComparison(n, n, sd_a, sd_b, ratio, ratio, ratio, margin, alpha, math.nan, math.nan,
                                math.nan, math.nan, "paired", "degenerate")
    p_lo, p_hi = float(st.t.sf(t_lo, n - 2)), float(st.t.cdf(t_hi, n - 2))
    return SpreadComparison(n, n, sd_a, sd_b, ratio, low, high, margin, alpha, p_lo, p_hi, max(p_lo, p_hi),
                            float(2 * st.t.sf(abs(t_one), n - 2)), "paired")


def _flat_spread(n_a: int, n_b: int, sd_a: float, sd_b: float, margin: float, alpha: float,
                 design: str) -> SpreadComparison | None:
    """No test when an arm does not vary across seeds: both flat ("no spread"), or one ("one flat",
    ratio 0 or inf); None when both vary."""
    if sd_a == 0 and sd_b == 0:
        return _spread_nan(n_a, n_b, sd_a, sd_b, margin, alpha, design, "no spread")
    if sd_a == 0 or sd_b == 0:
        return _spread_nan(n_a, n_b, sd_a, sd_b, margin, alpha, design, "one flat", 0.0 if sd_a == 0 else math.inf)
    return None


def sd_ratio_independent(a, b, *, margin: float = SD_RATIO_MARGIN, alpha: float = 0.05) -> SpreadComparison:
    """SD ratio sd(a) / sd(b) of independent a: (n_a,), b: (n_b,), from the F distribution.

    F = var(a) / var(b) / theta ~ F(n_a - 1, n_b - 1) under normality, so the
    (1 - 2 alpha) interval of the SD ratio is sqrt(F / F_{1-alpha}) .. sqrt(F / F_{alpha})
    and equivalence is two one-sided F tests at theta = 1/margin^2 and margin^2.
    """
    _check_ratio_margin(margin)
    _check_alpha(alpha)
    a, b = _vector(a, "a"), _vector(b, "b")
    n_a, n_b = a.size, b.size
    sd_a, sd_b = _sd(a), _sd(b)
    if n_a < 2 or n_b < 2:
        return _spread_nan(n_a, n_b, sd_a, sd_b, margin, alpha, "independent", "too few")
    flat = _flat_spread(n_a, n_b, sd_a, sd_b, margin, alpha, "independent")
    if flat is not None:
        return flat
    df1, df2 = n_a - 1, n_b - 1
    f = (sd_a / sd_b) ** 2
    low = math.sqrt(f / st.f.ppf(1 - alpha, df1, df2))
    high = math.sqrt(f / st.f.ppf(alpha, df1, df2))
    p_lo = float(st.f.sf(f * margin**2, df1, df2))  # H0: ratio <= 1/margin
    p_hi = float(st.f.cdf(f / margin**2, df1, df2))  # H0: ratio >= margin
    p_diff = float(min(1.0, 2 * min(st.f.cdf(f, df1, df2), st.f.sf(f, df1, df2))))
    return SpreadComparison(n_a, n_b, sd_a, sd_b, math.sqrt(f), low, high, margin, alpha, p_lo, p_hi,
                            max(p_lo, p_hi), p_diff, "independent")


# --------------------------------------------------------------------------- bundles


def _noise(*arrays: np.ndarray) -> float:
    """The float-noise tolerance: NOISE_RTOL times the largest |value| (see the module doc)."""
    scale = max((float(np.max(np.abs(x))) for x in arrays if x.size), default=0.0)
    return NOISE_RTOL * scale


def _flatten_noise(a: np.ndarray, b: np.ndarray, tol: float, *, paired: bool = True):
    """(a, b) for the spread: an arm whose SD is float noise becomes its mean."""
    if paired and a.size and np.all(np.abs(a - b) <= tol):
        return a, a.copy()
    if a.size >= 2 and _sd(a) <= tol:
        a = np.full_like(a, _mean(a))
    if b.size >= 2 and _sd(b) <= tol:
        b = np.full_like(b, _mean(b))
    return a, b


def _nan_test(test: SignificanceTest, why: str) -> SignificanceTest:
    return SignificanceTest(test.test, math.nan, math.nan, test.df, test.n, why)


def _nan_tost(tost: Tost, m: float) -> Tost:
    nan = math.nan
    return Tost(m, 0.0, tost.df, tost.margin, tost.alpha, nan, nan, nan, nan, nan, m, m, tost.n_a, tost.n_b)


def compare_paired(
    a,
    b,
    *,
    margin: float,
    alpha: float = 0.05,
    rng: np.random.Generator,
    n_boot: int = 2000,
    target_power: float = 0.8,
    sd_margin: float = SD_RATIO_MARGIN,
) -> PairedComparison:
    """All paired statistics for arms a, b: (n,) paired by seed, at ``±margin``.

    Differences at float-noise level are handled as the module doc says (identical
    or constant), so no p-value or effect size comes from rounding error. ``spread`` is
    :func:`sd_ratio_paired` at ``[1/sd_margin, sd_margin]``, with an arm whose SD is
    float noise taken as constant.
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    d = _differences(a, b)
    tol = _noise(a, b)
    if d.size and np.all(np.abs(d) <= tol):
        b, d = a.copy(), np.zeros_like(d)  # numerically identical: exactly zero differences
    n = d.size
    constant = bool(n >= 2 and np.any(d != 0) and _sd(d) <= tol)
    sd = 0.0 if constant else _sd(d)
    m = _mean(d)
    tost, ttest, diff = tost_paired(a, b, margin, alpha=alpha), paired_t(a, b), paired_difference(a, b)
    wilcoxon, sign_flip = wilcoxon_signed_rank(a, b), sign_flip_test(a, b, rng=rng)
    bca = bca_interval(a, b, rng=rng, n_boot=n_boot, confidence=1 - 2 * alpha)
    effect_dz, g = cohens_dz(a, b), hedges_g(a, b)
    posterior = posterior_paired(a, b, margin)
    if constant:
        why = "constant differences (zero variance): no test"
        tost, ttest, diff = _nan_tost(tost, m), _nan_test(ttest, why), _nan_test(diff, why)
        wilcoxon, sign_flip = _nan_test(wilcoxon, why), _nan_test(sign_flip, why)
        bca = Interval(m, m, m, bca.confidence, "bca (constant differences)")
        effect_dz, g = math.nan, math.nan
        posterior = _posterior(m, 0.0, float(n - 1), margin)
    return PairedComparison(
        n=n,
        mean_a=_mean(a),
        mean_b=_mean(b),
        mean_diff=m,
        sd_diff=sd,
        identical=bool(n >= 1 and np.all(d == 0)),
        tost=tost,
        difference=diff,
        ttest=ttest,
        wilcoxon=wilcoxon,
        sign_flip=sign_flip,
        bca=bca,
        interval_a=t_interval(a),
        interval_b=t_interval(b),
        effect_dz=effect_dz,
        hedges_g=g,
        posterior=posterior,
        seeds_needed=seeds_needed(sd, margin, power=target_power, alpha=alpha),
        seeds_needed_observed=seeds_needed(sd, margin, power=target_power, alpha=alpha, true_diff=m),
        constant=constant,
        spread=sd_ratio_paired(*_flatten_noise(a, b, tol), margin=sd_margin, alpha=alpha),
    )


def compare_unpaired(
    a, b, *, margin: float, alpha: float = 0.05, target_power: float = 0.8,
    sd_margin: float = SD_RATIO_MARGIN,
) -> UnpairedComparison:
    """All Welch statistics for independent samples a: (n_a,), b: (n_b,) at ``±margin``.

    Both samples constant within float noise: see the module doc (``constant``).
    ``spread`` is :func:`sd_ratio_independent` at ``[1/sd_margin, sd_margin]``.
    """
    a, b = _vector(a, "a"), _vector(b, "b")
    tol = _noise(a, b)
    spread = sd_ratio_independent(*_flatten_noise(a, b, tol, paired=False), margin=sd_margin, alpha=alpha)
    flat = a.size >= 2 and b.size >= 2 and _sd(a) <= tol and _sd(b) <= tol
    if flat:  # rounding noise only: each sample is its mean
        a, b = np.full_like(a, _mean(a)), np.full_like(b, _mean(b))
        if abs(_mean(a) - _mean(b)) <= tol:
            b = np.full_like(b, _mean(a))
    df = a.size + b.size - 2
    pooled = (math.sqrt((np.sum((a - _mean(a)) ** 2) + np.sum((b - _mean(b)) ** 2)) / df)
              if a.size and b.size and df > 0 else math.nan)
    m = _mean(a) - _mean(b) if a.size and b.size else math.nan
    constant = bool(flat and m != 0)
    tost, diff, g = tost_welch(a, b, margin, alpha=alpha), welch_t(a, b), hedges_g(a, b)
    if constant:
        why = "constant samples (zero variance): no test"
        tost, diff, g = _nan_tost(tost, m), _nan_test(diff, why), math.nan
    return UnpairedComparison(
        n_a=a.size,
        n_b=b.size,
        mean_a=_mean(a),
        mean_b=_mean(b),
        mean_diff=m,
        sd_pooled=pooled,
        tost=tost,
        difference=diff,
        interval_a=t_interval(a),
        interval_b=t_interval(b),
        hedges_g=g,
        posterior=posterior_welch(a, b, margin),
        seeds_needed=seeds_needed(pooled, margin, power=target_power, alpha=alpha,
                                  design="two-sample"),
        seeds_needed_observed=seeds_needed(pooled, margin, power=target_power, alpha=alpha,
                                           true_diff=m, design="two-sample"),
        constant=constant,
        spread=spread,
    )
