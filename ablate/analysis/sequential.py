"""Group-sequential equivalence and difference tests over paired seeds.

A comparison of two arms is looked at after ``n_1 < n_2 < ... < n_K`` seeds (the
*looks*, fixed in advance, never chosen from the data). At look ``k`` the paired
differences of the first ``n_k`` seeds (in seed order) give the mean ``m_k`` and its
standard error ``se_k = s_k / sqrt(n_k)``, and two repeated confidence intervals:

* equivalence: ``m_k ± c_k(alpha) se_k``; inside ``(-margin, +margin)`` means the two
  one-sided tests (TOST) both reject at this look -> ``equivalent``;
* difference: ``m_k ± c_k(alpha / 2) se_k``; excluding 0 means the two-sided
  sequential test of "no difference" rejects -> ``different``.

``c_k(a)`` is the critical value of a one-sided group-sequential *t* test at level ``a``
(:func:`t_boundaries`): it spends the Lan-DeMets alpha-spending function at the
information fraction ``t_k = n_k / n_K`` exactly at the actual seed counts, the first
look by the t quantile, later ones with the probability of an earlier crossing taken
from a fixed, seeded sample of null paths (the look t statistics are pivotal). The
normal boundaries ``z_k`` (:func:`sequential_boundaries`) are reported beside them; the
usual small-sample shortcut ``t_{n_k - 1}^{-1}(Phi(z_k))`` (Jennison & Turnbull 2000,
section 3.8) undercorrects at 5-20 seeds (two-sided error 0.052-0.054 at 0.05, checked by
simulation in ``tests/test_sequential.py``). The first look that
decides ends the comparison; both at once is ``equivalent`` (different, but by less
than the margin). After the last look without a decision: ``inconclusive``; with
fewer seeds than the next look: ``continue``.

Error control: equivalence is declared with probability at most ``alpha`` when the
true difference is at or beyond ``±margin``; a difference with probability at most
``alpha`` when it is 0 (each one-sided sequential test spends its alpha by the
spending function; stopping early for the other decision can only lower it). Several
comparisons that share seeds are one family: :func:`sequential_comparisons` runs
each of its ``m`` comparisons at ``alpha / m`` (Bonferroni). Bonferroni, not Holm,
because it keeps every comparison's decision a function of its own data and the
planned family size only, so a stopped or resumed study makes the same decisions in
any order; Holm's recycling would make one comparison's boundary depend on when the
others were decided.

Boundaries are solved exactly (to the integration tolerance, ~1e-7) by the recursive
numerical integration of Armitage, McPherson & Rowe (1969) of the joint normal
density of the look statistics, ``corr(Z_j, Z_k) = sqrt(t_j / t_k)``, with Simpson's
rule on a fine grid: deterministic, no Monte Carlo. The t-test critical values use one
fixed sample of 2^19 null paths per set of looks (seeded, cached per process), so they
too are a deterministic function of the design.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as st

from ablate.analysis import table as runs_table
from ablate.errors import InputError
from ablate.statuses import COMPLETED

Spending = Literal["obrien-fleming", "pocock"]
SPENDINGS: tuple[str, ...] = ("obrien-fleming", "pocock")
DECISIONS: tuple[str, ...] = ("equivalent", "different", "continue", "inconclusive")
FAMILY_CORRECTIONS: tuple[str, ...] = ("bonferroni", "none")

_Z_LOW = -9.0  # the null density below this is < 1e-18: outside the grid
_H_MAX = 0.01  # grid step on the z scale; Simpson's error is O(h^4)


# --------------------------------------------------------------------------- boundaries


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 < value < 0.5:
        raise InputError(f"`{name}` must be in (0, 0.5), but got {alpha!r}")
    return value


def check_spending(spending: str) -> str:
    if spending not in SPENDINGS:
        raise InputError(f"`spending` must be one of {', '.join(SPENDINGS)}, but got {spending!r}")
    return spending


def _check_information(information) -> np.ndarray:
    try:
        t = np.asarray(information, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"`information` must be numbers, but got {information!r}") from None
    if t.ndim != 1 or t.size == 0:
        raise InputError(f"`information` must be a non-empty 1-D sequence, but got shape {t.shape}")
    if not np.all(np.isfinite(t)) or t[0] <= 0 or np.any(np.diff(t) <= 0) or abs(t[-1] - 1.0) > 1e-9:
        raise InputError("`information` must be strictly increasing fractions in (0, 1] ending at 1, "
                         f"but got {[round(float(v), 6) for v in t]}")
    t[-1] = 1.0
    return t


def spent_alpha(information, alpha: float, spending: Spending) -> np.ndarray:
    """Cumulative one-sided alpha spent by each look (Lan & DeMets 1983).

    information: (K,) fractions t_k. Returns (K,) values alpha(t_k):
    ``obrien-fleming``: 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)) (gsDesign ``sfLDOF``,
    rpact ``asOF``); ``pocock``: alpha ln(1 + (e - 1) t) (``sfLDPocock``, ``asP``).
    """
    t = np.asarray(information, dtype=float)
    if spending == "obrien-fleming":
        return 2.0 * st.norm.sf(st.norm.isf(alpha / 2.0) / np.sqrt(t))
    if spending == "pocock":
        return alpha * np.log1p((math.e - 1.0) * t)
    raise InputError(f"`spending` must be one of {', '.join(SPENDINGS)}, but got {spending!r}")


def _simpson(a: float, b: float, h_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid on [a, b] with an odd number of points and Simpson's weights."""
    n = max(int(math.ceil((b - a) / h_max)), 2)
    n += n % 2  # intervals must be even
    z = np.linspace(a, b, n + 1)
    h = (b - a) / n
    w = np.full(n + 1, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return z, w * h / 3.0


@lru_cache(maxsize=256)
def _boundaries(t: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    increments = np.diff(np.concatenate([[0.0], spent_alpha(t, alpha, spending)]))
    c = [float(st.norm.isf(increments[0]))]
    # Sub-density of Z_1 on the continuation region (-inf, c_1).
    z, w = _simpson(_Z_LOW, c[0], _H_MAX)
    f = st.norm.pdf(z)
    for k in range(1, len(t)):
        root_prev, root_k, sd = math.sqrt(t[k - 1]), math.sqrt(t[k]), math.sqrt(t[k] - t[k - 1])
        # Scores S = Z sqrt(t) have independent N(0, t_k - t_{k-1}) increments.
        mass = w * f

        def excess(ck: float) -> float:
            return float(np.sum(mass * st.norm.sf((ck * root_k - z * root_prev) / sd))) - increments[k]

        c.append(float(optimize.brentq(excess, -20.0, 40.0, xtol=1e-12, rtol=1e-12)))
        if k == len(t) - 1:
            break
        # The grid step must resolve the transition kernel (sd / root_k on the z scale).
        z_new, w_new = _simpson(_Z_LOW, c[k], min(_H_MAX, sd / root_k / 16.0))
        kernel = st.norm.pdf((z_new[None, :] * root_k - z[:, None] * root_prev) / sd) * (root_k / sd)
        f, z, w = mass @ kernel, z_new, w_new
    return tuple(c)


def sequential_boundaries(information, alpha: float = 0.025, spending: Spending = "obrien-fleming") -> np.ndarray:
    """One-sided critical values ``z_k`` of a group-sequential test with alpha spending.

    information: (K,) strictly increasing information fractions in (0, 1], the last
      equal to 1 (for paired seeds: ``n_k / n_K``).
    alpha: one-sided level in (0, 0.5).
    spending: ``obrien-fleming`` or ``pocock`` Lan-DeMets spending (:func:`spent_alpha`).
    Returns (K,) ``z_k`` with P_0(Z_1 < z_1, ..., Z_{k-1} < z_{k-1}, Z_k >= z_k) =
    alpha(t_k) - alpha(t_{k-1}) under the joint normal of the look statistics,
    ``corr(Z_j, Z_k) = sqrt(t_j / t_k)``. Deterministic; accurate to ~1e-6.
    """
    t = _check_information(information)
    return np.array(_boundaries(tuple(float(v) for v in t), _check_alpha(alpha), check_spending(spending)))


# --------------------------------------------------------------------------- one comparison


@dataclass(frozen=True)
class Look:
    """One look of :func:`sequential_tost` (all on the difference scale, a - b).

    n: seeds used; estimate: mean difference; se: its standard error (s / sqrt n).
    z_equivalence / z_difference: normal boundaries at level alpha and alpha / 2;
    c_equivalence / c_difference: the t-test critical values actually used (:func:`t_boundaries`);
    eq_low, eq_high: the repeated (1 - 2 alpha) interval (equivalence);
    diff_low, diff_high: the repeated (1 - alpha) interval (difference);
    equivalent / different: what this look alone shows.
    """

    n: int
    estimate: float
    se: float
    z_equivalence: float
    c_equivalence: float
    eq_low: float
    eq_high: float
    z_difference: float
    c_difference: float
    diff_low: float
    diff_high: float
    equivalent: bool
    different: bool


@dataclass(frozen=True)
class SequentialTost:
    """The result of :func:`sequential_tost`.

    decision: ``equivalent``, ``different``, ``continue`` (fewer seeds than the next
      look) or ``inconclusive`` (every look done, none decided).
    look: 0-based index into ``looks`` of the deciding look, None when undecided.
    n: seeds at the deciding look (``looks[look]``), None when undecided.
    looks: the planned looks (seeds); n_available: paired differences given.
    results: one :class:`Look` per planned look with enough seeds, including looks
      after the deciding one (to draw the path), so ``len(results) <= len(looks)``.
    also_different: at the deciding look the difference test also rejected 0 (a
      difference smaller than the margin).
    """

    decision: str
    look: int | None
    n: int | None
    looks: tuple[int, ...]
    margin: float
    alpha: float
    spending: str
    n_available: int
    results: tuple[Look, ...]
    also_different: bool = False


def check_looks(looks, name: str = "looks") -> tuple[int, ...]:
    """Validated looks: strictly increasing integers >= 2 (seeds at each analysis)."""
    try:
        values = [v for v in looks]
        ints = tuple(int(v) for v in values)
        if any(float(v) != i for v, i in zip(values, ints)):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"`{name}` must be increasing integers >= 2 (seeds at each look), "
                         f"but got {looks!r}") from None
    if not ints or ints[0] < 2 or any(b <= a for a, b in zip(ints, ints[1:])):
        raise InputError(f"`{name}` must be increasing integers >= 2 (seeds at each look), "
                         f"but got {list(ints)}")
    return ints


_CAL_PATHS = 2**19  # null paths of the calibration; its error on a level is ~sqrt(spent / paths)
_CAL_SEED = 20261123  # fixed: the critical values are a deterministic function of the design


@lru_cache(maxsize=16)
def _t_paths(looks: tuple[int, ...]) -> np.ndarray:
    """(P, K) t statistics ``mean / (s / sqrt n_k)`` of P seeded null paths of N(0, 1) data.

    The joint law of the look t statistics is pivotal (free of the mean and the SD), so one
    sample serves every study with these looks. Paths are drawn by sufficient statistics:
    per block of new seeds its sum ~ N(0, m) and its squared deviations ~ chi2(m - 1),
    pooled with Chan's update, so the cost is P x K whatever the seed counts.
    """
    rng = np.random.default_rng([_CAL_SEED, *looks])
    out = np.empty((_CAL_PATHS, len(looks)))
    total = np.zeros(_CAL_PATHS)
    ssd = np.zeros(_CAL_PATHS)
    prev = 0
    for k, n in enumerate(looks):
        m = n - prev
        block = rng.standard_normal(_CAL_PATHS) * math.sqrt(m)
        block_ssd = rng.chisquare(m - 1, _CAL_PATHS) if m > 1 else np.zeros(_CAL_PATHS)
        if prev:
            ssd = ssd + block_ssd + (prev * m / n) * (total / prev - block / m) ** 2
        else:
            ssd = block_ssd
        total = total + block
        out[:, k] = (total / n) / np.sqrt(ssd / (n - 1) / n)
        prev = n
    return out


@lru_cache(maxsize=256)
def _t_boundaries(looks: tuple[int, ...], alpha: float, spending: str) -> tuple[float, ...]:
    spent = spent_alpha(np.array(looks) / looks[-1], alpha, spending)
    increments = np.diff(np.concatenate([[0.0], spent]))
    c = [float(st.t.isf(increments[0], looks[0] - 1))]  # one look: the t test, exactly
    if len(looks) == 1:
        return tuple(c)
    paths = _t_paths(looks)
    crossed = paths[:, 0] >= c[0]
    for k in range(1, len(looks)):
        df = looks[k] - 1
        # P(T_k >= c, no earlier crossing) = P(T_k >= c) - P(T_k >= c, an earlier crossing):
        # the first term exactly (the marginal t law), only the small second one by simulation.
        above = np.sort(paths[crossed, k])

        def excess(ck: float) -> float:
            joint = (above.size - np.searchsorted(above, ck, side="left")) / _CAL_PATHS
            return float(st.t.sf(ck, df)) - joint - increments[k]

        hi = float(st.t.isf(increments[k], df))
        lo = float(st.t.isf(min(increments[k] + crossed.mean() + 1e-12, 0.999), df))
        ck = hi if excess(hi) >= 0 else float(optimize.brentq(excess, lo, hi, xtol=1e-10))
        c.append(ck)
        crossed |= paths[:, k] >= ck
    return tuple(c)


def t_boundaries(looks: Sequence[int], alpha: float = 0.025, spending: Spending = "obrien-fleming") -> np.ndarray:
    """Critical values for the look t statistics of a one-sided group-sequential t test.

    looks: (K,) increasing seed counts >= 2; alpha: one-sided level; spending: as
    :func:`sequential_boundaries`. Returns (K,) ``c_k`` with, for independent normal
    observations under the null, P(T_1 < c_1, ..., T_{k-1} < c_{k-1}, T_k >= c_k) =
    alpha(t_k) - alpha(t_{k-1}) at ``t_k = n_k / n_K``, ``T_k = mean_k / (s_k / sqrt n_k)``.
    ``c_1`` is the exact t quantile; later looks subtract the (small) probability of having
    crossed before, estimated on 2^19 seeded null paths (deterministic; the error on the
    spent alpha is about sqrt(alpha / 2^19) < 3e-4 at alpha = 0.05). The t quantiles at the
    normal boundaries' nominal levels (Jennison & Turnbull 2000, 3.8) undercorrect: their
    two-sided error at alpha = 0.05 is 0.052-0.054.
    """
    looks = check_looks(looks)
    return np.array(_t_boundaries(looks, _check_alpha(alpha), check_spending(spending)))


def sequential_tost(differences, looks: Sequence[int], margin: float, alpha: float = 0.05,
                    spending: Spending = "obrien-fleming") -> SequentialTost:
    """Group-sequential equivalence (TOST) and difference test on paired differences.

    differences: (N,) finite paired differences a - b in seed order; only the first
      ``looks[-1]`` are used (N may be smaller: the study is still running).
    looks: (K,) increasing seed counts >= 2 at which to analyse.
    margin: equivalence margin > 0 in the metric's units.
    alpha: equivalence is tested at alpha (repeated (1 - 2 alpha) intervals), the
      two-sided difference test at alpha (repeated (1 - alpha) intervals).
    spending: ``obrien-fleming`` or ``pocock`` (Lan-DeMets).
    Assumes independent seeds and approximately normal differences; a zero standard
    error (all differences equal) gives a point interval.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1:
        raise InputError(f"`differences` must be 1-D, but got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise InputError("`differences` must be finite; drop seeds with missing values first")
    looks = check_looks(looks)
    alpha = _check_alpha(alpha)
    spending = check_spending(spending)
    if not (isinstance(margin, (int, float, np.floating)) and math.isfinite(margin) and margin > 0):
        raise InputError(f"`margin` must be a number > 0, but got {margin!r}")
    t = tuple(n / looks[-1] for n in looks)
    z_eq = _boundaries(t, alpha, spending)
    z_diff = _boundaries(t, alpha / 2.0, spending)
    crit_eq = _t_boundaries(looks, alpha, spending)
    crit_diff = _t_boundaries(looks, alpha / 2.0, spending)
    results: list[Look] = []
    decision, where, also = None, None, False
    for k, n in enumerate(looks):
        if n > d.size:
            break
        x = d[:n]
        m, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(n))
        c_eq, c_diff = crit_eq[k], crit_diff[k]
        eq_low, eq_high = m - c_eq * se, m + c_eq * se
        diff_low, diff_high = m - c_diff * se, m + c_diff * se
        equivalent = bool(-margin < eq_low and eq_high < margin)
        different = bool(diff_low > 0 or diff_high < 0)
        results.append(Look(n, m, se, z_eq[k], c_eq, eq_low, eq_high, z_diff[k], c_diff, diff_low, diff_high,
                            equivalent, different))
        if decision is None and (equivalent or different):
            decision, where, also = ("equivalent" if equivalent else "different"), k, equivalent and different
    if decision is None:
        decision = "inconclusive" if len(results) == len(looks) else "continue"
    return SequentialTost(decision=decision, look=where, n=None if where is None else looks[where],
                          looks=looks, margin=float(margin), alpha=alpha, spending=spending,
                          n_available=int(d.size), results=tuple(results), also_different=also)


def family_alpha(alpha: float, m: int, correction: str = "bonferroni") -> float:
    """Per-comparison level for a family of ``m`` comparisons sharing seeds."""
    if correction not in FAMILY_CORRECTIONS:
        raise InputError(f"`correction` must be one of {', '.join(FAMILY_CORRECTIONS)}, but got {correction!r}")
    return float(alpha) / max(int(m), 1) if correction == "bonferroni" else float(alpha)


# --------------------------------------------------------------------------- a runs table

KEY = ("metric", "backend", "dataset", "model", "smoothing", "arm_a", "arm_b")
TABLE_COLUMNS = (*KEY, "n_available", "margin", "alpha_comparison", "decision", "decided_at", "look",
                 "estimate", "eq_low", "eq_high", "diff_low", "diff_high", "runs_fixed", "runs_used",
                 "runs_saved", "note")
LOOK_COLUMNS = (*KEY, "look", "n", "estimate", "se", "z_equivalence", "c_equivalence", "eq_low", "eq_high",
                "z_difference", "c_difference", "diff_low", "diff_high", "equivalent", "different", "margin")
ARM_COLUMNS = ("backend", "dataset", "model", "arm", "smoothing", "stops_at", "runs_fixed", "runs_used",
               "runs_saved")


@dataclass(frozen=True)
class SequentialComparisons:
    """The result of :func:`sequential_comparisons`.

    table: one row per comparison (:data:`TABLE_COLUMNS`): ``decided_at`` is the seeds
      at the deciding look (<NA> when undecided), ``estimate`` and the intervals are
      those of the deciding look (else the last look analysed), ``runs_fixed`` =
      2 x the last look, ``runs_used`` = 2 x ``decided_at`` (else 2 x the last look),
      ``runs_saved`` their difference: what this comparison alone would save.
    looks: one row per comparison and analysed look (:data:`LOOK_COLUMNS`).
    arms: one row per arm (backend, dataset, model, arm, its smoothing): an arm stops
      once every comparison that involves it, on every metric, is decided
      (``stops_at``); ``runs_saved`` = last look - ``stops_at``.
    runs_fixed / runs_used: totals over ``arms``.
    """

    table: pd.DataFrame
    looks: pd.DataFrame
    arms: pd.DataFrame
    notes: tuple[str, ...]
    looks_planned: tuple[int, ...]
    alpha: float
    spending: str
    correction: str
    runs_fixed: int
    runs_used: int

    @property
    def runs_saved(self) -> int:
        return self.runs_fixed - self.runs_used


def _units(runs: pd.DataFrame, pairs, *, metrics: bool = True) -> tuple[pd.DataFrame, list[tuple]]:
    """(the analysed rows, the comparisons) of a runs table, by the pair rule of
    :mod:`ablate.analysis.table`, so the fixed and the sequential comparisons pair the same arms in
    the same order. A comparison is ``(backend, dataset, model, eps, arm_a, arm_b, rows of a, rows of
    b)``; only completed runs (when there is a ``status`` column) and repeat 0 are analysed.
    """
    df = runs_table.normalise_runs(pd.DataFrame(runs), "runs table", metrics=metrics)
    known = list(dict.fromkeys(df["arm"]))  # a named pair may be of arms with no completed run
    if pairs is not None:  # a study run in looks has no runs of an arm before its first look
        pairs = [p for p in pairs if all(str(arm).strip() in known for arm in p)]
    if "status" in df.columns:
        df = df[df["status"] == COMPLETED]
    roles = runs_table.arm_roles(df)
    chosen = runs_table.check_pairs(pairs, roles.arms, known)
    df = df[df["repeat"] == 0]
    units = [(*key, float(eps), a, b, side_a, side_b)
             for key, eps, a, b, side_a, side_b in runs_table.paired_units(df, chosen, roles.flat)]
    return df, units


def _paired(frame_a: pd.DataFrame, frame_b: pd.DataFrame, metric: str):
    sa = frame_a.drop_duplicates("seed").set_index("seed")[metric]
    sb = frame_b.drop_duplicates("seed").set_index("seed")[metric]
    common = sa.index.intersection(sb.index).sort_values()
    a = pd.to_numeric(sa.loc[common], errors="coerce").to_numpy(float)
    b = pd.to_numeric(sb.loc[common], errors="coerce").to_numpy(float)
    ok = np.isfinite(a) & np.isfinite(b)
    dropped = len(set(sa.index) ^ set(sb.index)) + int((~ok).sum())
    return a[ok] - b[ok], dropped


def comparison_sides(runs: pd.DataFrame, pairs: Sequence[tuple[str, str]] | None = None) -> list[tuple]:
    """The comparisons :func:`sequential_comparisons` makes on ``runs``, without their data.

    runs: as for :func:`sequential_comparisons` (metric columns not needed; a plan of the
      runs a grid will make is enough). Returns one ``(key, side_a, side_b)`` per
      comparison and metric-independent: ``key`` = (backend, dataset, model, smoothing,
      arm_a, arm_b) as in the table, ``side`` = (backend, dataset, model, arm, smoothing)
      of the runs on that side (a flat arm's side has smoothing 0).
    """
    out = []
    for backend, dataset, model, eps, a, b, frame_a, frame_b in _units(runs, pairs, metrics=False)[1]:
        sides = tuple((backend, dataset, model, arm, float(frame["smoothing"].iloc[0]))
                      for arm, frame in ((a, frame_a), (b, frame_b)))
        out.append(((backend, dataset, model, eps, a, b), *sides))
    return out


def sequential_comparisons(
    runs: pd.DataFrame,
    *,
    looks: Sequence[int],
    margins: Mapping[str, float],
    pairs: Sequence[tuple[str, str]] | None = None,
    alpha: float = 0.05,
    spending: Spending = "obrien-fleming",
    correction: str = "bonferroni",
) -> SequentialComparisons:
    """Analyse a per-seed runs table as if it had been looked at ``looks`` seeds.

    runs: one row per run; columns ``arm``, ``seed``, the metric columns named in
      ``margins``, optional ``backend, dataset, model`` (default "-"), ``smoothing``
      (default 0), ``status`` (only "completed" rows) and ``repeat`` (only 0). Arms are
      paired by seed; seeds are taken in increasing order.
    looks: increasing seed counts >= 2; the last is the fixed design's seed count.
    margins: {metric: margin > 0}; a metric missing from the table is an error.
    pairs: (arm_a, arm_b) pairs to compare (differences a - b); None: every pair of
      arms present, reference arms first, as :func:`ablate.analysis.compare.compare_runs` pairs
      them (:func:`ablate.analysis.table.check_pairs`); a pair naming an arm with no row is left out.
    alpha, spending: as :func:`sequential_tost`; with ``correction="bonferroni"`` each
      comparison runs at alpha / m, m = the number of comparisons in the table (all
      metrics): the family-wise error over the table is at most alpha.
    """
    looks = check_looks(looks)
    alpha = _check_alpha(alpha)
    spending = check_spending(spending)
    if correction not in FAMILY_CORRECTIONS:
        raise InputError(f"`correction` must be one of {', '.join(FAMILY_CORRECTIONS)}, but got {correction!r}")
    df, units = _units(runs, pairs)
    absent = [m for m in margins if m not in df.columns]
    if absent:
        raise InputError(f"runs table: no column for metric(s) {', '.join(absent)} given a margin; "
                         f"columns: {', '.join(map(str, df.columns))}")
    m = len(units) * len(margins)
    level = family_alpha(alpha, m, correction)
    n_max = looks[-1]
    rows, look_rows, notes = [], [], []
    stops: dict[tuple, int] = {}
    for metric, margin in margins.items():
        margin = float(margin)
        if not (math.isfinite(margin) and margin > 0):
            raise InputError(f"margin for `{metric}` must be a number > 0, but got {margin!r}")
        for backend, dataset, model, eps, a, b, frame_a, frame_b in units:
            diffs, dropped = _paired(frame_a, frame_b, metric)
            key = dict(metric=metric, backend=backend, dataset=dataset, model=model, smoothing=eps, arm_a=a, arm_b=b)
            row_notes = []
            if dropped:
                row_notes.append(f"{dropped} seed(s) without a pair or a value dropped")
            if diffs.size > n_max:
                row_notes.append(f"{diffs.size - n_max} seed(s) beyond the last look ({n_max}) not used")
            res = sequential_tost(diffs[:n_max], looks, margin, level, spending)
            if res.also_different:
                row_notes.append("also different, by less than the margin")
            shown = res.results[res.look] if res.look is not None else (res.results[-1] if res.results else None)
            used = res.n if res.n is not None else n_max
            rows.append(dict(
                **key, n_available=int(diffs.size), margin=margin, alpha_comparison=level,
                decision=res.decision, decided_at=res.n, look=None if res.look is None else res.look + 1,
                estimate=shown.estimate if shown else math.nan, eq_low=shown.eq_low if shown else math.nan,
                eq_high=shown.eq_high if shown else math.nan, diff_low=shown.diff_low if shown else math.nan,
                diff_high=shown.diff_high if shown else math.nan, runs_fixed=2 * n_max, runs_used=2 * used,
                runs_saved=2 * (n_max - used), note="; ".join(row_notes)))
            for k, r in enumerate(res.results):
                look_rows.append(dict(**key, look=k + 1, n=r.n, estimate=r.estimate, se=r.se,
                                      z_equivalence=r.z_equivalence, c_equivalence=r.c_equivalence,
                                      eq_low=r.eq_low, eq_high=r.eq_high, z_difference=r.z_difference,
                                      c_difference=r.c_difference, diff_low=r.diff_low, diff_high=r.diff_high,
                                      equivalent=r.equivalent, different=r.different, margin=margin))
            for arm, frame in ((a, frame_a), (b, frame_b)):
                arm_eps = float(frame["smoothing"].iloc[0]) if len(frame) else eps
                unit = (backend, dataset, model, arm, arm_eps)
                stops[unit] = max(stops.get(unit, 0), used)
    if not units:
        notes.append("no pair of arms to compare in the runs table")
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    table["decided_at"] = table["decided_at"].astype("Int64")
    table["look"] = table["look"].astype("Int64")
    arms = pd.DataFrame([dict(backend=u[0], dataset=u[1], model=u[2], arm=u[3], smoothing=u[4], stops_at=s,
                              runs_fixed=n_max, runs_used=s, runs_saved=n_max - s)
                         for u, s in sorted(stops.items())], columns=list(ARM_COLUMNS))
    return SequentialComparisons(
        table=table, looks=pd.DataFrame(look_rows, columns=list(LOOK_COLUMNS)), arms=arms,
        notes=tuple(notes), looks_planned=looks, alpha=alpha, spending=spending, correction=correction,
        runs_fixed=int(arms["runs_fixed"].sum()), runs_used=int(arms["runs_used"].sum()))


# --------------------------------------------------------------------------- the report

def with_decisions(table: pd.DataFrame, seq: SequentialComparisons) -> pd.DataFrame:
    """``table`` (comparisons.csv) with ``decision`` and ``decided_at`` from ``seq``.

    Rows are matched on (metric, backend, dataset, model, smoothing, arm_a, arm_b);
    rows without a sequential analysis (e.g. across backends) get empty values, and
    sequential rows the table lacks are appended with the statistics they have.
    """
    extra = seq.table[list(KEY) + ["decision", "decided_at"]]
    base = table.drop(columns=[c for c in ("decision", "decided_at") if c in table])
    merged = base.merge(extra, on=list(KEY), how="left") if len(base) else \
        pd.DataFrame(columns=[*base.columns, "decision", "decided_at"])
    found = seq.table.merge(base[list(KEY)], on=list(KEY), how="left", indicator=True)
    missing = found[found["_merge"] == "left_only"].drop(columns="_merge")
    if len(missing):
        missing = missing.rename(columns={"estimate": "mean_diff", "n_available": "n"})
        missing = missing.reindex(columns=merged.columns)
        merged = pd.concat([merged, missing], ignore_index=True) if len(merged) else missing.reset_index(drop=True)
    merged["decided_at"] = merged["decided_at"].astype("Int64")
    return merged
