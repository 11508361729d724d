"""Calibration and proper-scoring metrics on stored class probabilities (pure numpy).

This module is the one implementation of every calibration metric in ablate: the
report, the backends and the tests all call it, and no backend computes calibration
itself. It imports numpy only (scipy lazily, for :func:`fit_temperature`).

Every public function takes

- ``probs``: an (n, K) float array whose rows sum to 1 (class probabilities, *not*
  logits), K >= 2;
- ``labels``: an (n,) integer array of true classes in [0, K),

validates them with :func:`validate_probs`, and works in float64 whatever the input
dtype. Each metric is built from the same private steps (validate -> top-label
reduction -> bin -> compute), so no metric is computed two ways.

Binning convention
------------------
Bins partition [0, 1] and are **right-closed**: bin ``b`` holds the values ``v`` with
``edges[b] < v <= edges[b + 1]``, except that a value of exactly 0 (or anything at or
below the first interior edge) falls in the first bin. A confidence of exactly 1.0
therefore falls in the last bin. This is the interval definition of Guo et al. (2017),
``I_m = ((m - 1)/M, m/M]``.

- ``binning="uniform"``: ``edges = np.linspace(0, 1, n_bins + 1)`` (Guo et al. 2017).
- ``binning="quantile"``: equal-mass bins (adaptive ECE, Nixon et al. 2019). The
  interior edges are ``np.quantile(values, [1/B, ..., (B-1)/B])`` (linear
  interpolation), the outer edges stay 0 and 1. With n divisible by B and no ties
  every bin holds exactly n/B values; tied values are never split across bins, so
  ties (e.g. many confidences of 1.0) leave some bins empty.

Relation to torchmetrics: with uniform bins, :func:`ece` equals
``torchmetrics.functional.classification.multiclass_calibration_error`` (norms l1, l2
and max) whenever no confidence lies exactly on a bin edge. torchmetrics 1.x bins with
``torch.bucketize(..., right=True)``, i.e. left-closed ``[lo, hi)`` bins, and counts a
confidence of exactly 1.0 in an extra (n_bins + 1)-th bin of its own
(Lightning-AI/torchmetrics#3510); ablate follows the right-closed textbook definition
instead, so the two differ only for confidences exactly on an edge or exactly 1.0.

Empty bins are left out of every sum (their weight is 0) and out of the maximum.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from ablate.errors import InputError

Norm = Literal["l1", "l2", "max"]
Binning = Literal["uniform", "quantile"]
NORMS: tuple[str, ...] = get_args(Norm)
BINNINGS: tuple[str, ...] = get_args(Binning)

_PROB_FLOOR = 1e-12  # probabilities are clipped here before any log

__all__ = [
    "BINNINGS",
    "NORMS",
    "Binning",
    "CalibrationSummary",
    "Interval",
    "Norm",
    "ReliabilityData",
    "accuracy",
    "apply_temperature",
    "brier",
    "classwise_ece",
    "ece",
    "ece_bootstrap_ci",
    "fit_temperature",
    "mean_confidence",
    "nll",
    "overconfidence",
    "reliability_bins",
    "summarize",
    "validate_probs",
]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval: ``low <= high``, around a point ``estimate``."""

    low: float
    high: float
    estimate: float  # the statistic on the full, unresampled data
    level: float  # nominal coverage, e.g. 0.95


@dataclass(frozen=True, eq=False)
class ReliabilityData:
    """Per-bin reliability-diagram data; every array has shape (n_bins,).

    Arrays are read-only. Empty bins have ``count == 0`` and NaN ``confidence`` and
    ``accuracy``.
    """

    lower: np.ndarray  # lower bin edge (exclusive, except 0 for the first bin)
    upper: np.ndarray  # upper bin edge (inclusive)
    confidence: np.ndarray  # mean top-label confidence of the examples in the bin
    accuracy: np.ndarray  # fraction of those examples whose top label is correct
    count: np.ndarray  # number of examples in the bin (int64)

    def __post_init__(self) -> None:
        shapes = {
            f.name: np.shape(getattr(self, f.name)) for f in dataclasses.fields(self)
        }
        if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
            raise InputError(
                f"Expected every ReliabilityData array to have the same (n_bins,) shape, "
                f"but got shapes {shapes}."
            )
        for f in dataclasses.fields(self):
            arr = np.array(getattr(self, f.name), dtype=np.int64 if f.name == "count" else np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, f.name, arr)

    @property
    def n_bins(self) -> int:
        return int(self.count.shape[0])


@dataclass(frozen=True)
class CalibrationSummary:
    """Every calibration metric of one set of predictions (all floats)."""

    accuracy: float  # top-1 accuracy
    ece: float  # top-label ECE, L1 norm
    rms_ce: float  # top-label calibration error, L2 norm
    mce: float  # maximum calibration error (max norm)
    classwise_ece: float  # static / classwise calibration error
    nll: float  # mean negative log-likelihood (nats)
    brier: float  # multiclass Brier score
    mean_confidence: float  # mean top-label probability
    overconfidence: float  # mean_confidence - accuracy

    def as_dict(self) -> dict[str, float]:
        """The metrics as a plain ``{name: value}`` dict, in field order."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------- argument validation


def _check_option(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"Expected argument `{name}` to be one of {allowed}, but got {value!r}.")


def _check_n_bins(n_bins: Any) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError(f"Expected argument `n_bins` to be an integer >= 1, but got {n_bins!r}.")


def _check_positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not np.isfinite(v) or v <= 0:
        raise InputError(f"Expected argument `{name}` to be a finite number > 0, but got {value!r}.")
    return v


# ------------------------------------------------------------------ input validation


def _check_probs(probs: Any, atol: float) -> np.ndarray:
    """probs -> (n, K) float64 copy-or-view, or InputError."""
    arr = np.asarray(probs)
    if arr.dtype.kind not in "iuf":
        raise InputError(
            f"Expected `probs` to be a numeric (n, K) array of probabilities, but got dtype {arr.dtype}."
        )
    if arr.ndim != 2:
        raise InputError(f"Expected `probs` to be a 2-D (n, K) array, but got shape {arr.shape}.")
    n, k = arr.shape
    if n < 1:
        raise InputError(f"Expected `probs` to have at least one row, but got shape {arr.shape}.")
    if k < 2:
        raise InputError(
            f"Expected `probs` to have at least 2 columns (one per class), but got shape {arr.shape}."
        )
    p = arr.astype(np.float64, copy=False)
    finite = np.isfinite(p)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise InputError(
            f"Expected `probs` to be finite (no NaN or inf), but row {row} contains {p[row, col]}."
        )
    dev = np.abs(p.sum(axis=1) - 1.0)
    if (dev > atol).any():
        row = int(np.argmax(dev > atol))
        raise InputError(
            f"Expected `probs` rows to sum to 1 (|sum-1| <= {atol:g}), but row {row} sums to "
            f"{p[row].sum():.6g}; were logits passed instead of probabilities?"
        )
    bad = (p < 0) | (p > 1 + atol)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            f"Expected `probs` entries in [0, 1], but row {row} contains {p[row, col]:.6g}; "
            f"were logits passed instead of probabilities?"
        )
    return p


def _check_labels(labels: Any, n: int, k: int) -> np.ndarray:
    """labels -> (n,) int64 array of classes in [0, k), or InputError."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise InputError(
            f"Expected `labels` to be a 1-D (n,) array of class indices (not one-hot), "
            f"but got shape {arr.shape}."
        )
    if arr.shape[0] != n:
        raise InputError(
            f"Expected `labels` to have length {n} to match the rows of `probs`, "
            f"but got length {arr.shape[0]}."
        )
    if arr.dtype.kind not in "iu":
        raise InputError(f"Expected `labels` to be integer class indices, but got dtype {arr.dtype}.")
    bad = (arr < 0) | (arr >= k)
    if bad.any():
        pos = int(np.argmax(bad))
        raise InputError(
            f"Expected `labels` in [0, {k}) for {k} classes, but got {arr[pos]} at position {pos}."
        )
    return arr.astype(np.int64, copy=False)


def validate_probs(
    probs: Any, labels: Any, *, atol: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Check predictions and labels; return them as float64 / int64 arrays.

    Args:
        probs: (n, K) array of class probabilities, K >= 2, n >= 1. Every entry must be
            finite and in [0, 1] and every row must sum to 1 within ``atol``; the row-sum
            check is what catches logits passed by mistake.
        labels: (n,) integer array of true classes in [0, K).
        atol: tolerance on ``|row sum - 1|``.

    Returns:
        ``(probs, labels)``: (n, K) float64 and (n,) int64 arrays (views when no
        conversion is needed).

    Raises:
        InputError: (a ValueError) with one line naming the argument, what was expected
            and what was given.
    """
    atol = _check_positive("atol", atol)
    p = _check_probs(probs, atol)
    y = _check_labels(labels, *p.shape)
    return p, y


# ---------------------------------------------------------------------- private steps


def _top_label(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) probs, (n,) labels -> (n,) top-label confidence, (n,) 1.0/0.0 correctness."""
    pred = np.argmax(p, axis=1)
    conf = p[np.arange(p.shape[0]), pred]
    return conf, (pred == y).astype(np.float64)


def _bin_edges(values: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    """(n,) values in [0, 1] -> (n_bins + 1,) increasing edges, first 0 and last 1."""
    if binning == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    interior = np.quantile(values, np.arange(1, n_bins) / n_bins)
    return np.concatenate(([0.0], interior, [1.0]))


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(n,) values -> (n,) bin indices in [0, len(edges) - 2], right-closed bins.

    The index is the number of interior edges strictly below the value, so a value equal
    to an edge goes to the bin below it, 0 goes to the first bin and 1.0 to the last.
    """
    return np.searchsorted(edges[1:-1], values, side="left")


def _bin_stats(
    values: np.ndarray, hits: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin (count, mean value, mean hit), each (n_bins,); empty bins give NaN means."""
    n_bins = edges.shape[0] - 1
    idx = _bin_index(values, edges)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_value = np.bincount(idx, weights=values, minlength=n_bins) / count
        mean_hit = np.bincount(idx, weights=hits, minlength=n_bins) / count
    return count, mean_value, mean_hit


def _calibration_error(
    count: np.ndarray, confidence: np.ndarray, accuracy: np.ndarray, norm: str
) -> float:
    """Combine per-bin stats: l1 = sum w|gap|, l2 = sqrt(sum w gap^2), max = max |gap|."""
    keep = count > 0
    weight = count[keep] / count.sum()
    gap = np.abs(accuracy[keep] - confidence[keep])
    if norm == "l1":
        return float(np.sum(weight * gap))
    if norm == "l2":
        return float(np.sqrt(np.sum(weight * gap**2)))
    return float(np.max(gap))


def _binned_error(
    values: np.ndarray, hits: np.ndarray, n_bins: int, binning: str, norm: str
) -> float:
    edges = _bin_edges(values, n_bins, binning)
    return _calibration_error(*_bin_stats(values, hits, edges), norm)


def _ece(p: np.ndarray, y: np.ndarray, n_bins: int, binning: str, norm: str) -> float:
    return _binned_error(*_top_label(p, y), n_bins, binning, norm)


def _classwise_ece(p: np.ndarray, y: np.ndarray, n_bins: int, binning: str) -> float:
    per_class = [
        _binned_error(p[:, k], (y == k).astype(np.float64), n_bins, binning, "l1")
        for k in range(p.shape[1])
    ]
    return float(np.mean(per_class))


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(p, axis=1) == y))


def _mean_confidence(p: np.ndarray) -> float:
    return float(np.mean(np.max(p, axis=1)))


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    true_p = p[np.arange(p.shape[0]), y]
    return float(-np.mean(np.log(np.clip(true_p, _PROB_FLOOR, None))))


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    sq = np.sum(p**2, axis=1) - 2.0 * p[np.arange(p.shape[0]), y] + 1.0
    return float(np.mean(sq))


def _log_probs(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, _PROB_FLOOR, None))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _scaled_nll(logp: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean NLL of softmax(logp / T), computed stably in log space."""
    z = logp / temperature
    zmax = z.max(axis=1)
    lse = zmax + np.log(np.sum(np.exp(z - zmax[:, None]), axis=1))
    return float(np.mean(lse - z[np.arange(z.shape[0]), y]))


# ------------------------------------------------------------------------ public API


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy (ties go to the lowest class index).

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
    """
    return _accuracy(*validate_probs(probs, labels))


def mean_confidence(probs: np.ndarray, labels: np.ndarray | None = None) -> float:
    """Mean top-label probability, ``mean_i max_k p_ik``.

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: optional (n,) int array; accepted so that every metric takes
            ``(probs, labels)``, and validated when given, but not used.
    """
    if labels is None:
        return _mean_confidence(_check_probs(probs, 1e-3))
    p, _ = validate_probs(probs, labels)
    return _mean_confidence(p)


def overconfidence(probs: np.ndarray, labels: np.ndarray) -> float:
    """Over-confidence gap: mean top-label confidence minus accuracy (> 0: over-confident).

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
    """
    p, y = validate_probs(probs, labels)
    return _mean_confidence(p) - _accuracy(p, y)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class, in nats.

    The true-class probability is clipped at 1e-12 before the log, so one impossible
    prediction costs at most ``-log(1e-12) ~= 27.6`` instead of infinity.

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
    """
    return _nll(*validate_probs(probs, labels))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multiclass Brier score: ``mean_i sum_k (p_ik - y_ik)^2`` with one-hot ``y``; in [0, 2].

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
    """
    return _brier(*validate_probs(probs, labels))


def ece(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    n_bins: int = 15,
    binning: Binning = "uniform",
    norm: Norm = "l1",
) -> float:
    """Top-label expected calibration error (Guo et al. 2017) and its variants.

    Confidences ``max_k p_ik`` are binned (see the module docstring for the convention)
    and, with ``w_b`` the fraction of examples in bin b and ``acc_b``, ``conf_b`` its
    accuracy and mean confidence:

    - ``norm="l1"``: ECE = ``sum_b w_b |acc_b - conf_b|``;
    - ``norm="l2"``: RMS calibration error = ``sqrt(sum_b w_b (acc_b - conf_b)^2)``;
    - ``norm="max"``: MCE = ``max_b |acc_b - conf_b|`` over non-empty bins.

    ``binning="quantile"`` gives the equal-mass adaptive ECE of Nixon et al. (2019).

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
        n_bins: number of bins, >= 1.
        binning: "uniform" (equal width) or "quantile" (equal mass).
        norm: "l1", "l2" or "max".
    """
    _check_n_bins(n_bins)
    _check_option("binning", binning, BINNINGS)
    _check_option("norm", norm, NORMS)
    p, y = validate_probs(probs, labels)
    return _ece(p, y, int(n_bins), binning, norm)


def classwise_ece(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    n_bins: int = 15,
    binning: Binning = "uniform",
) -> float:
    """Classwise ECE / static calibration error (Kull et al. 2019; Nixon et al. 2019).

    For every class k, the probabilities ``p_ik`` of *all* n examples are binned (same
    convention as :func:`ece`; with "quantile" the edges are per class) and compared with
    the frequency of ``labels == k`` in each bin:
    ``SCE = (1/K) sum_k sum_b (n_bk / n) |freq_bk - conf_bk|``.

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
        n_bins: number of bins per class, >= 1.
        binning: "uniform" (equal width) or "quantile" (equal mass).
    """
    _check_n_bins(n_bins)
    _check_option("binning", binning, BINNINGS)
    p, y = validate_probs(probs, labels)
    return _classwise_ece(p, y, int(n_bins), binning)


def reliability_bins(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    n_bins: int = 15,
    binning: Binning = "uniform",
) -> ReliabilityData:
    """Per-bin top-label data for a reliability diagram, binned exactly as :func:`ece`.

    To pool seeds, concatenate their ``probs`` and ``labels`` before calling.

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
        n_bins: number of bins, >= 1.
        binning: "uniform" (equal width) or "quantile" (equal mass).

    Returns:
        :class:`ReliabilityData` whose arrays all have shape (n_bins,).
    """
    _check_n_bins(n_bins)
    _check_option("binning", binning, BINNINGS)
    conf, correct = _top_label(*validate_probs(probs, labels))
    edges = _bin_edges(conf, int(n_bins), binning)
    count, mean_conf, acc = _bin_stats(conf, correct, edges)
    return ReliabilityData(
        lower=edges[:-1], upper=edges[1:], confidence=mean_conf, accuracy=acc, count=count
    )


def ece_bootstrap_ci(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
    **ece_kwargs: Any,
) -> Interval:
    """Percentile bootstrap interval of :func:`ece` over test examples (one run).

    Each of ``n_boot`` replicates resamples the n examples with replacement (drawn from
    ``rng``) and recomputes the ECE with ``ece_kwargs`` (``n_bins``, ``binning``,
    ``norm``); with quantile binning the edges are recomputed per replicate. The interval
    is the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the replicates.

    Note that the binned ECE is biased upwards, and more so on resamples (which repeat
    examples), so for a nearly calibrated model the interval can lie above the estimate.

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
        rng: the source of the resampling; the same seed gives the same interval.
        n_boot: number of bootstrap replicates, >= 1.
        level: nominal coverage, in (0, 1).
        **ece_kwargs: keyword arguments of :func:`ece`.
    """
    if not isinstance(rng, np.random.Generator):
        raise InputError(
            f"Expected argument `rng` to be a numpy.random.Generator, but got {type(rng).__name__}."
        )
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise InputError(f"Expected argument `n_boot` to be an integer >= 1, but got {n_boot!r}.")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise InputError(f"Expected argument `level` to be a number in (0, 1), but got {level!r}.")
    unknown = sorted(set(ece_kwargs) - {"n_bins", "binning", "norm"})
    if unknown:
        raise InputError(
            f"Expected `ece_kwargs` among ('n_bins', 'binning', 'norm'), but got {unknown[0]!r}."
        )
    n_bins = ece_kwargs.get("n_bins", 15)
    binning = ece_kwargs.get("binning", "uniform")
    norm = ece_kwargs.get("norm", "l1")
    _check_n_bins(n_bins)
    _check_option("binning", binning, BINNINGS)
    _check_option("norm", norm, NORMS)
    conf, correct = _top_label(*validate_probs(probs, labels))
    n = conf.shape[0]
    estimate = _binned_error(conf, correct, int(n_bins), binning, norm)
    replicates = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        idx = rng.integers(0, n, size=n)
        replicates[b] = _binned_error(conf[idx], correct[idx], int(n_bins), binning, norm)
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return Interval(low=float(low), high=float(high), estimate=estimate, level=float(level))


TEMPERATURE_BOUNDS: tuple[float, float] = (0.01, 100.0)


def temperature_at_bound(temperature: float, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> bool:
    """Whether a fitted temperature sits at (within 1e-6 relative of) an end of its search range.

    Such a fit found no optimum inside the range: the validation split was classified
    perfectly (the NLL keeps falling as T -> 0, so the lower bound is returned) or is too
    small to pin T down, and the scaled metrics say more about the bound than the model.
    """
    t = float(temperature)
    lo, hi = (float(b) for b in bounds)
    return bool(np.isfinite(t) and (t <= lo * (1 + 1e-6) or t >= hi * (1 - 1e-6)))


def fit_temperature(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
) -> float:
    """Fit one temperature T > 0 minimising the NLL of ``softmax(log(probs) / T)``.

    Fit this on a validation split, never on the test set. Probabilities are clipped at
    1e-12 before the log. The NLL is convex in 1/T, so a bounded scalar search over
    log T (scipy's bounded Brent method) finds the optimum; if it lies outside
    ``bounds`` the nearest bound is returned. When every prediction is correct (the true
    class strictly the most probable in every row) the NLL falls all the way to T -> 0,
    so the lower bound is returned exactly.

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
        bounds: ``(lowest, highest)`` temperature searched, both > 0.

    Returns:
        The fitted temperature; T > 1 softens (the model was over-confident), T < 1
        sharpens. :func:`temperature_at_bound` tells whether it is a bound.
    """
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
        raise InputError(
            f"Expected argument `bounds` to be (low, high) with 0 < low < high, but got {bounds!r}."
        )
    from scipy.optimize import minimize_scalar

    p, y = validate_probs(probs, labels)
    logp = _log_probs(p)
    if _all_strictly_right(logp, y):
        # Every NLL term falls as T falls, so the optimum is T -> 0: the lower bound. A search
        # would stop anywhere on the flat floor (e.g. T = 0.02) and hide that it ran to the bound.
        return lo
    res = minimize_scalar(
        lambda log_t: _scaled_nll(logp, y, float(np.exp(log_t))),
        bounds=(np.log(lo), np.log(hi)),
        method="bounded",
        options={"xatol": 1e-7},
    )
    return float(np.clip(np.exp(res.x), lo, hi))


def _all_strictly_right(logp: np.ndarray, y: np.ndarray) -> bool:
    """(n, K) log-probabilities, (n,) labels -> every row's true class strictly above all others."""
    true = logp[np.arange(len(y)), y]
    others = logp.copy()
    others[np.arange(len(y)), y] = -np.inf
    return bool(len(y)) and bool(np.all(true > others.max(axis=1)))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scale probabilities: ``softmax(log(probs) / temperature)``.

    Probabilities are clipped at 1e-12 before the log, so exact zeros become small but
    positive after scaling.

    Args:
        probs: (n, K) float array whose rows sum to 1.
        temperature: T > 0, e.g. from :func:`fit_temperature`.

    Returns:
        (n, K) float64 array whose rows sum to 1.
    """
    t = _check_positive("temperature", temperature)
    return _softmax(_log_probs(_check_probs(probs, 1e-3)) / t)


def summarize(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    n_bins: int = 15,
    binning: Binning = "uniform",
) -> CalibrationSummary:
    """Every metric of this module at once (inputs validated once).

    Args:
        probs: (n, K) float array whose rows sum to 1.
        labels: (n,) int array of classes in [0, K).
        n_bins: number of bins for the ECE family, >= 1.
        binning: "uniform" (equal width) or "quantile" (equal mass).
    """
    _check_n_bins(n_bins)
    _check_option("binning", binning, BINNINGS)
    p, y = validate_probs(probs, labels)
    n_bins = int(n_bins)
    conf, correct = _top_label(p, y)
    stats = _bin_stats(conf, correct, _bin_edges(conf, n_bins, binning))
    acc = _accuracy(p, y)
    mean_conf = _mean_confidence(p)
    return CalibrationSummary(
        accuracy=acc,
        ece=_calibration_error(*stats, "l1"),
        rms_ce=_calibration_error(*stats, "l2"),
        mce=_calibration_error(*stats, "max"),
        classwise_ece=_classwise_ece(p, y, n_bins, binning),
        nll=_nll(p, y),
        brier=_brier(p, y),
        mean_confidence=mean_conf,
        overconfidence=mean_conf - acc,
    )
