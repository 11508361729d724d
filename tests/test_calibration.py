"""Tests for ablate.analysis.calibration: references (torchmetrics), hand-worked cases, bad inputs."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ablate.analysis import calibration as cal
from ablate.errors import InputError

# --------------------------------------------------------------------------- fixtures

# 5 examples, K = 3. Top-label confidence / correct:
#   row 0: 0.90 (class 0, label 0) correct
#   row 1: 0.80 (class 0, label 1) wrong
#   row 2: 0.70 (class 1, label 1) correct
#   row 3: 0.40 (class 0, label 0) correct
#   row 4: 0.45 (class 2, label 0) wrong
FIVE_PROBS = np.array(
    [
        [0.90, 0.05, 0.05],
        [0.80, 0.10, 0.10],
        [0.20, 0.70, 0.10],
        [0.40, 0.30, 0.30],
        [0.20, 0.35, 0.45],
    ]
)
FIVE_LABELS = np.array([0, 1, 1, 0, 0])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _random_probs(seed: int, n: int, k: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet probabilities mixed with 1% uniform, so no confidence is exactly 1.0."""
    rng = np.random.default_rng(seed)
    probs = 0.99 * rng.dirichlet(np.full(k, alpha), size=n) + 0.01 / k
    return probs, rng.integers(0, k, size=n)


def _miscalibrated(seed: int, n: int, k: int, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports softmax(t0 * z) (t0 > 1: over-confident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, k))
    true = _softmax(z)
    labels = (rng.random((n, 1)) > np.cumsum(true, axis=1)).sum(axis=1)
    return _softmax(t0 * z), np.minimum(labels, k - 1)


# ------------------------------------------------------------ torchmetrics reference


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("n_bins", [1, 5, 10, 15, 20])
@pytest.mark.parametrize("k,alpha", [(2, 1.0), (3, 0.3), (10, 1.0), (10, 5.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_ece_matches_torchmetrics(seed, k, alpha, n_bins, norm):
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.functional.classification")
    probs, labels = _random_probs(seed, 300, k, alpha)
    expected = tm.multiclass_calibration_error(
        torch.from_numpy(probs), torch.from_numpy(labels), num_classes=k, n_bins=n_bins, norm=norm
    ).item()
    # torchmetrics accumulates in float32, hence 1e-6 rather than float64 precision.
    assert cal.ece(probs, labels, n_bins=n_bins, norm=norm) == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------ hand-worked cases


def test_five_samples_two_bins_by_hand():
    # Bins (0, .5] and (.5, 1].
    #   (0, .5]: conf .40 (correct), .45 (wrong): acc .5, conf .425, |gap| .075, weight 2/5
    #   (.5, 1]: conf .9 (c), .8 (w), .7 (c): acc 2/3, conf .8, |gap| 2/15, weight 3/5
    # l1  = .4 * .075 + .6 * 2/15 = .03 + .08 = .11
    # l2  = sqrt(.4 * .075^2 + .6 * (2/15)^2) = sqrt(.00225 + .0106667) = sqrt(.0129167)
    # max = 2/15
    kw = {"n_bins": 2}
    assert cal.ece(FIVE_PROBS, FIVE_LABELS, **kw) == pytest.approx(0.11, abs=1e-12)
    assert cal.ece(FIVE_PROBS, FIVE_LABELS, norm="l2", **kw) == pytest.approx(
        math.sqrt(0.4 * 0.075**2 + 0.6 * (2 / 15) ** 2), abs=1e-12
    )
    assert cal.ece(FIVE_PROBS, FIVE_LABELS, norm="max", **kw) == pytest.approx(2 / 15, abs=1e-12)


def test_five_samples_right_closed_edges_by_hand():
    # Bins (0,.2], (.2,.4], (.4,.6], (.6,.8], (.8,1]; the confidences .4 and .8 sit exactly on
    # edges and, bins being right-closed, fall in the bin *below* the edge:
    #   (.2,.4]: .40 correct          -> |1 - .4|   = .60, weight .2 -> .12
    #   (.4,.6]: .45 wrong            -> |0 - .45|  = .45, weight .2 -> .09
    #   (.6,.8]: .70 correct, .80 wrong -> |.5 - .75| = .25, weight .4 -> .10
    #   (.8,1]:  .90 correct          -> |1 - .9|   = .10, weight .2 -> .02
    # ECE = .33, MCE = .6. (Left-closed bins, as in torchmetrics 1.x, would give .23.)
    assert cal.ece(FIVE_PROBS, FIVE_LABELS, n_bins=5) == pytest.approx(0.33, abs=1e-12)
    assert cal.ece(FIVE_PROBS, FIVE_LABELS, n_bins=5, norm="max") == pytest.approx(0.6, abs=1e-12)
    rel = cal.reliability_bins(FIVE_PROBS, FIVE_LABELS, n_bins=5)
    np.testing.assert_array_equal(rel.count, [0, 1, 1, 2, 1])
    np.testing.assert_allclose(rel.lower, [0.0, 0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(rel.upper, [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(rel.confidence[1:], [0.4, 0.45, 0.75, 0.9])
    np.testing.assert_allclose(rel.accuracy[1:], [1.0, 0.0, 0.5, 1.0])
    assert np.isnan(rel.confidence[0]) and np.isnan(rel.accuracy[0])


def test_five_samples_scores_by_hand():
    # accuracy: rows 0, 2, 3 correct -> 3/5
    # mean confidence: (.9 + .8 + .7 + .4 + .45) / 5 = 3.25 / 5 = .65; over-confidence .05
    # nll: -(ln .9 + ln .1 + ln .7 + ln .4 + ln .2) / 5
    # brier per row: .01+.0025+.0025 = .015; .64+.81+.01 = 1.46; .04+.09+.01 = .14;
    #                .36+.09+.09 = .54; .64+.1225+.2025 = .965 -> 3.12 / 5 = .624
    p, y = FIVE_PROBS, FIVE_LABELS
    assert cal.accuracy(p, y) == pytest.approx(0.6)
    assert cal.mean_confidence(p, y) == pytest.approx(0.65)
    assert cal.mean_confidence(p) == pytest.approx(0.65)
    assert cal.overconfidence(p, y) == pytest.approx(0.05)
    assert cal.nll(p, y) == pytest.approx(-np.log([0.9, 0.1, 0.7, 0.4, 0.2]).mean())
    assert cal.brier(p, y) == pytest.approx(0.624)


def test_confidence_exactly_one_falls_in_last_bin():
    # confidences 1.0 (wrong), .95 (correct), .6 (correct).
    # 2 bins: all three in (.5, 1]: acc 2/3, conf 2.55/3 = .85 -> ECE = |2/3 - .85| = 11/60.
    # 10 bins: 1.0 and .95 share (.9, 1]: acc .5, conf .975, gap .475, weight 2/3;
    #          .6 in (.5, .6]: gap .4, weight 1/3. ECE = .95/3 + .4/3 = .45.
    probs = np.array([[1.0, 0.0], [0.95, 0.05], [0.6, 0.4]])
    labels = np.array([1, 0, 0])
    assert cal.ece(probs, labels, n_bins=2) == pytest.approx(11 / 60, abs=1e-12)
    assert cal.ece(probs, labels, n_bins=10) == pytest.approx(0.45, abs=1e-12)
    rel = cal.reliability_bins(probs, labels, n_bins=10)
    assert rel.count[-1] == 2 and rel.count.sum() == 3
    assert rel.confidence[-1] == pytest.approx(0.975)


def test_quantile_binning_equal_mass_by_hand():
    # Top-label confidences (sorted) .55 c, .60 w, .70 c, .75 c, .90 w, .95 c; 3 equal-mass bins.
    # np.quantile edges: 1/3 -> position 5/3 -> .6 + (2/3)(.1) = .6667;
    #                    2/3 -> position 10/3 -> .75 + (1/3)(.15) = .8
    #   {.55, .60}: acc .5, conf .575, gap .075
    #   {.70, .75}: acc 1,  conf .725, gap .275
    #   {.90, .95}: acc .5, conf .925, gap .425
    # adaptive ECE = (.075 + .275 + .425) / 3 = .775 / 3
    # Uniform 3 bins for contrast: (1/3, 2/3] = {.55, .6}: gap .075, weight 1/3;
    #   (2/3, 1] = {.7, .75, .9, .95}: acc .75, conf .825, gap .075, weight 2/3 -> ECE .075.
    conf = np.array([0.9, 0.55, 0.7, 0.95, 0.6, 0.75])  # deliberately unsorted
    correct = np.array([0, 1, 1, 1, 0, 1], dtype=bool)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.where(correct, 0, 1)
    assert cal.ece(probs, labels, n_bins=3, binning="quantile") == pytest.approx(0.775 / 3, abs=1e-12)
    assert cal.ece(probs, labels, n_bins=3, binning="uniform") == pytest.approx(0.075, abs=1e-12)
    assert cal.ece(probs, labels, n_bins=3, binning="quantile", norm="max") == pytest.approx(0.425)
    rel = cal.reliability_bins(probs, labels, n_bins=3, binning="quantile")
    np.testing.assert_array_equal(rel.count, [2, 2, 2])
    np.testing.assert_allclose(rel.lower, [0.0, 2 / 3, 0.8])
    np.testing.assert_allclose(rel.upper, [2 / 3, 0.8, 1.0])
    np.testing.assert_allclose(rel.confidence, [0.575, 0.725, 0.925])
    np.testing.assert_allclose(rel.accuracy, [0.5, 1.0, 0.5])


def test_quantile_binning_does_not_split_ties():
    # Confidences .6, 1, 1, 1 in 2 equal-mass bins: the median edge is 1.0, so the three
    # tied 1.0s stay together in the bin (.., 1.0] with .6 and the second bin is empty.
    probs = np.array([[0.6, 0.4], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 0, 1, 1])
    rel = cal.reliability_bins(probs, labels, n_bins=2, binning="quantile")
    np.testing.assert_array_equal(rel.count, [4, 0])
    # one bin: acc 3/4, conf 3.6/4 = .9 -> ECE .15
    assert cal.ece(probs, labels, n_bins=2, binning="quantile") == pytest.approx(0.15)


@pytest.mark.parametrize("n,n_bins", [(12, 3), (100, 10), (300, 15)])
def test_quantile_bins_hold_equal_counts_without_ties(n, n_bins):
    probs, labels = _random_probs(n, n, 4, 1.0)
    rel = cal.reliability_bins(probs, labels, n_bins=n_bins, binning="quantile")
    np.testing.assert_array_equal(rel.count, np.full(n_bins, n // n_bins))


def test_classwise_ece_by_hand():
    # K = 3, 2 bins (0, .5] and (.5, 1]; a probability of 0 goes to the first bin.
    #  class 0: p = 1.0, .5, .2; is-class 1, 0, 0.
    #    (0,.5]: {.5, .2}: freq 0, conf .35, gap .35, weight 2/3 -> 7/30;  (.5,1]: {1.0}: gap 0
    #  class 1: p = 0, .5, .3; is-class 0, 1, 0. all in (0,.5]: freq 1/3, conf .8/3 -> 1/15
    #  class 2: p = 0, 0, .5;  is-class 0, 0, 1. all in (0,.5]: freq 1/3, conf 1/6 -> 1/6
    # SCE = (7/30 + 2/30 + 5/30) / 3 = 7/45
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    labels = np.array([0, 1, 2])
    assert cal.classwise_ece(probs, labels, n_bins=2) == pytest.approx(7 / 45, abs=1e-12)


def test_classwise_ece_binary_equals_per_class_gap():
    # K = 2, 2 bins. class 0: p = .9,.6,.3,.2, is-class 1,0,0,0:
    #   (0,.5]: {.3,.2} freq 0 conf .25 -> .5*.25; (.5,1]: {.9,.6} freq .5 conf .75 -> .5*.25
    # class 1 is the mirror image, so SCE = .25.
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    labels = np.array([0, 1, 1, 1])
    assert cal.classwise_ece(probs, labels, n_bins=2) == pytest.approx(0.25, abs=1e-12)


# ------------------------------------------------------------------------ consistency


def test_summary_matches_individual_metrics():
    probs, labels = _miscalibrated(3, 400, 5, 2.0)
    for binning in ("uniform", "quantile"):
        s = cal.summarize(probs, labels, n_bins=10, binning=binning)
        kw = {"n_bins": 10, "binning": binning}
        assert s.ece == cal.ece(probs, labels, **kw)
        assert s.rms_ce == cal.ece(probs, labels, norm="l2", **kw)
        assert s.mce == cal.ece(probs, labels, norm="max", **kw)
        assert s.classwise_ece == cal.classwise_ece(probs, labels, **kw)
        assert s.accuracy == cal.accuracy(probs, labels)
        assert s.nll == cal.nll(probs, labels)
        assert s.brier == cal.brier(probs, labels)
        assert s.mean_confidence == cal.mean_confidence(probs, labels)
        assert s.overconfidence == pytest.approx(cal.overconfidence(probs, labels))
        d = s.as_dict()
        assert list(d) == [
            "accuracy", "ece", "rms_ce", "mce", "classwise_ece",
            "nll", "brier", "mean_confidence", "overconfidence",
        ]
        assert all(isinstance(v, float) for v in d.values())


def test_reliability_bins_reproduce_ece():
    probs, labels = _miscalibrated(4, 500, 4, 1.5)
    rel = cal.reliability_bins(probs, labels, n_bins=12)
    filled = rel.count > 0
    weighted = np.sum(rel.count[filled] * np.abs(rel.accuracy - rel.confidence)[filled]) / 500
    assert weighted == pytest.approx(cal.ece(probs, labels, n_bins=12), abs=1e-12)
    assert rel.n_bins == 12 and rel.count.dtype == np.int64
    with pytest.raises(ValueError):
        rel.count[0] = 5  # arrays are read-only
    with pytest.raises(AttributeError):
        rel.count = np.zeros(12)  # the dataclass is frozen


def test_brier_matches_one_hot_definition():
    probs, labels = _random_probs(5, 50, 6, 1.0)
    onehot = np.eye(6)[labels]
    assert cal.brier(probs, labels) == pytest.approx(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def test_float32_inputs_are_computed_in_float64():
    probs, labels = _random_probs(6, 200, 5, 1.0)
    p32 = probs.astype(np.float32)
    p64 = p32.astype(np.float64)
    assert cal.summarize(p32, labels.astype(np.int32)) == cal.summarize(p64, labels)
    assert isinstance(cal.ece(p32, labels), float)


def test_lists_are_accepted():
    assert cal.accuracy(FIVE_PROBS.tolist(), FIVE_LABELS.tolist()) == pytest.approx(0.6)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    k=st.integers(2, 6),
    n_bins=st.integers(1, 20),
    binning=st.sampled_from(cal.BINNINGS),
)
def test_norm_ordering_and_ranges(seed, n, k, n_bins, binning):
    # Weighted mean |gap| <= sqrt(weighted mean gap^2) <= max |gap|, and all lie in [0, 1].
    probs, labels = _random_probs(seed, n, k, 0.7)
    kw = {"n_bins": n_bins, "binning": binning}
    l1, l2, mx = (cal.ece(probs, labels, norm=norm, **kw) for norm in ("l1", "l2", "max"))
    assert 0.0 <= l1 <= l2 + 1e-12 <= mx + 2e-12 <= 1.0 + 2e-12
    assert 0.0 <= cal.classwise_ece(probs, labels, **kw) <= 1.0
    rel = cal.reliability_bins(probs, labels, **kw)
    assert rel.count.sum() == n


# ----------------------------------------------------------------- temperature scaling


@pytest.mark.parametrize("t0", [2.0, 0.6])
def test_fit_temperature_recovers_known_temperature(t0):
    # The model reports softmax(t0 * z) for labels drawn from softmax(z); dividing its
    # log-probabilities by T = t0 restores the true distribution.
    probs, labels = _miscalibrated(7, 20000, 5, t0)
    t = cal.fit_temperature(probs, labels)
    assert t == pytest.approx(t0, rel=0.05)
    scaled = cal.apply_temperature(probs, t)
    assert cal.nll(scaled, labels) < cal.nll(probs, labels)
    assert cal.ece(scaled, labels) < cal.ece(probs, labels)


def test_fit_temperature_is_one_when_calibrated_and_hits_bound_when_all_correct():
    probs, labels = _miscalibrated(8, 20000, 5, 1.0)
    assert cal.fit_temperature(probs, labels) == pytest.approx(1.0, rel=0.05)
    # every prediction correct: NLL keeps falling as T -> 0, so the lower bound is returned
    easy = np.array([[0.7, 0.3], [0.2, 0.8]])
    assert cal.fit_temperature(easy, np.array([0, 1]), bounds=(0.1, 10.0)) == pytest.approx(
        0.1, rel=1e-4
    )


def test_apply_temperature():
    probs, _ = _random_probs(9, 20, 4, 1.0)
    np.testing.assert_allclose(cal.apply_temperature(probs, 1.0), probs, atol=1e-12)
    hot = cal.apply_temperature(probs, 3.0)
    np.testing.assert_allclose(hot.sum(axis=1), 1.0)
    assert np.all(hot.max(axis=1) < probs.max(axis=1))  # T > 1 softens
    np.testing.assert_array_equal(hot.argmax(axis=1), probs.argmax(axis=1))
    # by hand: [.8, .2] at T = 2 -> [sqrt(.8), sqrt(.2)] / (sqrt(.8) + sqrt(.2)) = [2/3, 1/3]
    np.testing.assert_allclose(cal.apply_temperature([[0.8, 0.2]], 2.0), [[2 / 3, 1 / 3]])


# ---------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_reproducible_and_contains_estimate():
    probs, labels = _miscalibrated(10, 500, 5, 2.5)
    kw = {"n_boot": 200, "n_bins": 10}
    a = cal.ece_bootstrap_ci(probs, labels, rng=np.random.default_rng(123), **kw)
    b = cal.ece_bootstrap_ci(probs, labels, rng=np.random.default_rng(123), **kw)
    c = cal.ece_bootstrap_ci(probs, labels, rng=np.random.default_rng(124), **kw)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.estimate == cal.ece(probs, labels, n_bins=10)
    assert a.low <= a.estimate <= a.high
    assert a.level == 0.95
    narrow = cal.ece_bootstrap_ci(
        probs, labels, rng=np.random.default_rng(123), level=0.5, **kw
    )
    assert a.low <= narrow.low <= narrow.high <= a.high


def test_bootstrap_ci_passes_ece_kwargs():
    probs, labels = _miscalibrated(11, 300, 4, 2.0)
    ci = cal.ece_bootstrap_ci(
        probs, labels, rng=np.random.default_rng(0), n_boot=50,
        n_bins=8, binning="quantile", norm="l2",
    )
    assert ci.estimate == cal.ece(probs, labels, n_bins=8, binning="quantile", norm="l2")
    assert 0 <= ci.low <= ci.high <= 1


# --------------------------------------------------------------------------- bad inputs

GOOD_P, GOOD_Y = FIVE_PROBS, FIVE_LABELS
_RNG = np.random.default_rng(0)


def _with(row: int, values) -> np.ndarray:
    p = GOOD_P.copy()
    p[row] = values
    return p


BAD_INPUTS = [
    # (call, substring of the message, which names the argument)
    pytest.param(lambda: cal.ece(np.log(GOOD_P), GOOD_Y), "`probs` rows to sum to 1", id="logits-negative"),
    pytest.param(lambda: cal.ece(GOOD_P * 4.2, GOOD_Y), "row 0 sums to 4.2", id="logits-scaled"),
    pytest.param(lambda: cal.ece(_with(2, [1.5, -0.5, 0.0]), GOOD_Y), "`probs` entries in [0, 1]", id="negative-entry"),
    pytest.param(lambda: cal.ece(_with(3, [np.nan, 0.5, 0.5]), GOOD_Y), "`probs` to be finite", id="nan"),
    pytest.param(lambda: cal.ece(_with(1, [np.inf, 0.0, 0.0]), GOOD_Y), "`probs` to be finite", id="inf"),
    pytest.param(lambda: cal.ece(GOOD_P[:, 0], GOOD_Y), "`probs` to be a 2-D (n, K) array", id="probs-1d"),
    pytest.param(lambda: cal.ece(np.ones((5, 1)), GOOD_Y), "`probs` to have at least 2 columns", id="one-class"),
    pytest.param(lambda: cal.ece(np.ones((0, 3)), GOOD_Y[:0]), "`probs` to have at least one row", id="empty"),
    pytest.param(lambda: cal.ece(np.array([["a", "b"]]), [0]), "`probs` to be a numeric", id="probs-str"),
    pytest.param(lambda: cal.ece(GOOD_P, GOOD_Y[:4]), "`labels` to have length 5", id="labels-short"),
    pytest.param(lambda: cal.ece(GOOD_P, np.eye(3)[GOOD_Y].astype(int)), "`labels` to be a 1-D", id="labels-onehot"),
    pytest.param(lambda: cal.ece(GOOD_P, GOOD_Y.astype(float)), "`labels` to be integer", id="labels-float"),
    pytest.param(lambda: cal.ece(GOOD_P, [0, 1, 3, 0, 0]), "`labels` in [0, 3)", id="label-too-big"),
    pytest.param(lambda: cal.ece(GOOD_P, [0, 1, -1, 0, 0]), "`labels` in [0, 3)", id="label-negative"),
    pytest.param(lambda: cal.nll(GOOD_P, [0, 1, 3, 0, 0]), "`labels` in [0, 3)", id="nll-labels"),
    pytest.param(lambda: cal.brier(GOOD_P * 2, GOOD_Y), "`probs` rows", id="brier-probs"),
    pytest.param(lambda: cal.accuracy(GOOD_P, GOOD_Y[:3]), "`labels`", id="accuracy-labels"),
    pytest.param(lambda: cal.mean_confidence(GOOD_P * 2), "`probs` rows", id="mean-confidence-probs"),
    pytest.param(lambda: cal.ece(GOOD_P, GOOD_Y, norm="l3"),
                 "Expected argument `norm` to be one of ('l1', 'l2', 'max'), but got 'l3'.", id="norm"),
    pytest.param(lambda: cal.ece(GOOD_P, GOOD_Y, binning="equal"),
                 "Expected argument `binning` to be one of ('uniform', 'quantile'), but got 'equal'.", id="binning"),
    pytest.param(lambda: cal.classwise_ece(GOOD_P, GOOD_Y, binning="adaptive"), "`binning`", id="classwise-binning"),
    pytest.param(lambda: cal.ece(GOOD_P, GOOD_Y, n_bins=0), "`n_bins` to be an integer >= 1", id="n_bins-0"),
    pytest.param(lambda: cal.ece(GOOD_P, GOOD_Y, n_bins=2.5), "`n_bins`", id="n_bins-float"),
    pytest.param(lambda: cal.reliability_bins(GOOD_P, GOOD_Y, n_bins=True), "`n_bins`", id="n_bins-bool"),
    pytest.param(lambda: cal.summarize(GOOD_P, GOOD_Y, n_bins=-3), "`n_bins`", id="summarize-n_bins"),
    pytest.param(lambda: cal.validate_probs(GOOD_P, GOOD_Y, atol=-1), "`atol`", id="atol"),
    pytest.param(lambda: cal.ece_bootstrap_ci(GOOD_P, GOOD_Y, rng=42), "`rng` to be a numpy.random.Generator", id="rng-int"),
    pytest.param(lambda: cal.ece_bootstrap_ci(GOOD_P, GOOD_Y, rng=_RNG, n_boot=0), "`n_boot`", id="n_boot"),
    pytest.param(lambda: cal.ece_bootstrap_ci(GOOD_P, GOOD_Y, rng=_RNG, level=1.5), "`level`", id="level"),
    pytest.param(lambda: cal.ece_bootstrap_ci(GOOD_P, GOOD_Y, rng=_RNG, bins=3), "`ece_kwargs`", id="ece_kwargs"),
    pytest.param(lambda: cal.ece_bootstrap_ci(GOOD_P, GOOD_Y, rng=_RNG, norm="l0"), "`norm`", id="bootstrap-norm"),
    pytest.param(lambda: cal.fit_temperature(GOOD_P, GOOD_Y, bounds=(2.0, 1.0)), "`bounds`", id="bounds"),
    pytest.param(lambda: cal.fit_temperature(np.log(GOOD_P), GOOD_Y), "`probs` rows", id="fit-logits"),
    pytest.param(lambda: cal.apply_temperature(GOOD_P, 0.0), "`temperature` to be a finite number > 0", id="temperature-0"),
    pytest.param(lambda: cal.apply_temperature(GOOD_P, float("nan")), "`temperature`", id="temperature-nan"),
    pytest.param(lambda: cal.apply_temperature(np.log(GOOD_P), 2.0), "`probs` rows", id="apply-logits"),
]


@pytest.mark.parametrize("call,message", BAD_INPUTS)
def test_bad_inputs_raise_one_line_input_error(call, message):
    with pytest.raises(InputError) as info:
        call()
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


def test_logit_message_gives_expected_and_given():
    logits = np.array([[0.0, 1.0], [2.0, 2.2]])
    with pytest.raises(InputError, match=r"row 1 sums to 4\.2; were logits passed"):
        cal.validate_probs(logits, np.array([0, 1]))


def test_validate_probs_tolerance_and_return_types():
    p = FIVE_PROBS.astype(np.float32) * (1 + 5e-4)  # rows sum to 1.0005
    out_p, out_y = cal.validate_probs(p, FIVE_LABELS.astype(np.uint8))
    assert out_p.dtype == np.float64 and out_y.dtype == np.int64
    with pytest.raises(InputError, match=r"\|sum-1\| <= 0\.0001"):
        cal.validate_probs(p, FIVE_LABELS, atol=1e-4)


def test_import_pulls_in_no_framework_or_plotting_library():
    code = (
        "import sys, ablate.analysis.calibration; "
        "bad = [m for m in ('torch', 'tensorflow', 'keras', 'jax', 'matplotlib', 'seaborn', 'scipy') "
        "if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
