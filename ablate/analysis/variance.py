"""Variance components of a factorial seed design: pure numpy on a balanced table.

A study whose ``seeds:`` is a mapping (``{init: 4, order: 4, split: 3}``) runs every
combination of the sources' seeds. For one arm and metric its results form a balanced
array ``y`` of shape ``(a_1, ..., a_k, r)``: one axis per randomised source (``a_f`` seeds
each) and one for the ``r`` repeats of a cell. The random-effects model is

    y = mu + sum over every non-empty subset U of the sources of e_U + residual,

with independent effects ``e_U ~ N(0, var_U)`` (main effects and all their interactions)
and a residual ``N(0, var_residual)`` (the nondeterminism floor, measured when r > 1).
With one run per cell (r = 1) the highest interaction and the residual cannot be told
apart: that term is reported as ``<interaction> + residual``.

Estimates are the balanced ANOVA ones (expected mean squares, inverted by Möbius
inversion over the subsets): with ``c_U = r * prod_{f not in U} a_f``,

    var_U = (1 / c_U) * sum_{V ⊇ U} (-1)^(|V| - |U|) MS_V        (minus MS_residual for the top term)

They are unbiased and may be negative; ``share`` uses them truncated at 0. In balanced
designs they equal the REML estimates whenever every estimate is positive (checked in
the tests against statsmodels' ``MixedLM`` with variance components).

Intervals are generalized confidence intervals (Weerahandi 1993; Burdick, Borror &
Montgomery 2005, ch. 7): under normality the mean squares are independent, ``MS_V ~
E[MS_V] chi2(df_V) / df_V``, so the generalized pivot ``sum_V k_V ms_V df_V / W_V``
(``W_V ~ chi2(df_V)``, ``k_V`` the estimator's coefficients, ``ms_V`` the observed mean
squares) is drawn ``n_draws`` times from a seeded generator, truncated at 0, and its
quantiles are the interval. The share's interval comes from the same draws.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ablate.analysis.columns import SOURCE_COLUMNS
from ablate.errors import InputError
from ablate.statuses import COMPLETED

RESIDUAL = "residual"


@dataclass(frozen=True)
class Component:
    """One variance component: ``source`` is a source name, an interaction ``"init:order"``,
    ``"residual"``, or the top interaction ``"init:order + residual"`` when r = 1."""

    source: str
    variance: float  # the ANOVA estimate (may be negative)
    share: float  # max(0, variance) / sum of the truncated estimates
    ci_low: float
    ci_high: float
    share_low: float
    share_high: float
    df: float  # the degrees of freedom of the term's mean square


@dataclass(frozen=True)
class VarianceComponents:
    """:func:`variance_components` for one table: the components, main effects first."""

    factors: tuple[str, ...]
    levels: tuple[int, ...]
    repeats: int
    components: tuple[Component, ...]
    total: float  # the sum of the truncated estimates: the variance of one run with every source drawn anew
    confidence: float

    def as_dict(self) -> dict[str, float]:
        return {c.source: c.variance for c in self.components}


def _terms(k: int) -> list[tuple[int, ...]]:
    """Every non-empty subset of range(k), by size, then in order."""
    return [t for size in range(1, k + 1) for t in itertools.combinations(range(k), size)]


def mean_squares(y: np.ndarray) -> tuple[dict[tuple[int, ...], tuple[float, float]], tuple[float, float] | None]:
    """Balanced ANOVA mean squares of ``y`` with shape (a_1, ..., a_k, r).

    Returns ({term: (MS, df)} for every non-empty subset of the k factor axes,
    (MS, df) of the residual or None when r = 1).
    """
    y = np.asarray(y, dtype=np.float64)
    k = y.ndim - 1
    levels, r = y.shape[:k], y.shape[k]
    cells = y.mean(axis=k)  # (a_1, ..., a_k)
    marg: dict[tuple[int, ...], np.ndarray] = {}
    for size in range(0, k + 1):
        for t in itertools.combinations(range(k), size):
            others = tuple(a for a in range(k) if a not in t)
            marg[t] = cells.mean(axis=others, keepdims=True) if others else cells
    out = {}
    for t in _terms(k):
        effect = np.zeros_like(marg[t])
        for size in range(len(t) + 1):
            for v in itertools.combinations(t, size):
                effect = effect + (-1) ** (len(t) - size) * marg[v]
        c = r * math.prod(levels[a] for a in range(k) if a not in t)
        ss = c * float(np.sum(effect**2))
        df = math.prod(levels[a] - 1 for a in t)
        out[t] = (ss / df, float(df))
    residual = None
    if r > 1:
        ss = float(np.sum((y - cells[..., None]) ** 2))
        df = math.prod(levels) * (r - 1)
        residual = (ss / df, float(df))
    return out, residual


def variance_components(
    y,
    factors,
    *,
    rng: np.random.Generator,
    confidence: float = 0.95,
    n_draws: int = 4000,
) -> VarianceComponents:
    """Variance components of a balanced factorial table (see the module doc).

    y: (a_1, ..., a_k, r) results, one axis per factor (each with >= 2 levels) and the
    repeats last (r >= 1). factors: the k factor names. rng: draws the generalized pivots.
    """
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"Expected `rng` to be a np.random.Generator, but got {type(rng).__name__}")
    y = np.asarray(y, dtype=np.float64)
    factors = tuple(str(f) for f in factors)
    k = len(factors)
    if y.ndim != k + 1:
        raise InputError(f"`y` must have one axis per factor ({k}) plus one for repeats, got shape {y.shape}")
    if k == 0 or any(a < 2 for a in y.shape[:k]) or y.shape[k] < 1:
        raise InputError(f"every factor needs >= 2 levels and every cell a run, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise InputError("`y` must be finite (a balanced table with every cell present)")
    levels, r = tuple(y.shape[:k]), y.shape[k]
    ms, residual = mean_squares(y)
    terms = _terms(k)
    top = tuple(range(k))
    # Estimator coefficients on the mean squares: {term: {ms key: coefficient}}.
    coef: dict[tuple, dict[object, float]] = {}
    for t in terms:
        c = r * math.prod(levels[a] for a in range(k) if a not in t)
        row: dict[object, float] = {}
        for v in terms:
            if set(t) <= set(v):
                row[v] = (-1) ** (len(v) - len(t)) / c
        if t == top and residual is not None:
            row[RESIDUAL] = -1.0 / c
        coef[t] = row
    if residual is not None:
        coef[RESIDUAL] = {RESIDUAL: 1.0}
    keys = [*terms] + ([RESIDUAL] if residual is not None else [])
    value = {**{t: ms[t][0] for t in terms}, **({RESIDUAL: residual[0]} if residual else {})}
    dof = {**{t: ms[t][1] for t in terms}, **({RESIDUAL: residual[1]} if residual else {})}
    estimates = {t: sum(w * value[v] for v, w in coef[t].items()) for t in keys}
    # Generalized pivots: each mean square's pivot ms * df / chi2(df), shared by every component.
    # n_draws = 0: point estimates only (the intervals are NaN).
    pivots = {v: value[v] * dof[v] / rng.chisquare(dof[v], max(n_draws, 1)) for v in keys}
    if n_draws == 0:
        pivots = {v: np.full(1, np.nan) for v in keys}
    with np.errstate(invalid="ignore"):
        draws = {t: np.maximum(sum(w * pivots[v] for v, w in coef[t].items()), 0.0) for t in keys}
    total_draws = sum(draws.values())
    truncated = {t: max(0.0, estimates[t]) for t in keys}
    total = sum(truncated.values())
    lo_q, hi_q = (1 - confidence) / 2, (1 + confidence) / 2
    comps = []
    for t in keys:
        name = RESIDUAL if t == RESIDUAL else ":".join(factors[a] for a in t)
        if t == top and residual is None:
            name += f" + {RESIDUAL}"
        with np.errstate(invalid="ignore", divide="ignore"):
            share_draws = np.where(total_draws > 0, draws[t] / total_draws, np.nan)
        finite = np.isfinite(share_draws)
        share_lo, share_hi = (np.quantile(share_draws[finite], [lo_q, hi_q]) if finite.any()
                              else (math.nan, math.nan))
        ci_lo, ci_hi = (np.quantile(draws[t], [lo_q, hi_q]) if n_draws else (math.nan, math.nan))
        comps.append(Component(
            source=name, variance=float(estimates[t]),
            share=float(truncated[t] / total) if total > 0 else math.nan,
            ci_low=float(ci_lo), ci_high=float(ci_hi),
            share_low=float(share_lo), share_high=float(share_hi), df=float(dof[t])))
    return VarianceComponents(factors, levels, r, tuple(comps), float(total), float(confidence))


def balanced_table(frame, factors, value: str, repeat: str = "repeat"):
    """(y, levels) from a long table: one row per run with the factor columns, ``repeat`` and ``value``.

    frame: a pandas DataFrame. Returns y of shape (a_1, ..., a_k, r) and the sorted levels
    of each factor, or None when the table is not a complete balanced factorial.
    """
    factors = list(factors)
    levels = [sorted(frame[f].unique()) for f in factors]
    reps = sorted(frame[repeat].unique()) if repeat in frame else [0]
    shape = tuple(len(v) for v in levels) + (len(reps),)
    if len(frame) != math.prod(shape):
        return None
    y = np.full(shape, np.nan)
    index = [{v: i for i, v in enumerate(lv)} for lv in levels]
    rep_index = {v: i for i, v in enumerate(reps)}
    for row in frame.itertuples(index=False):
        pos = tuple(index[j][getattr(row, f)] for j, f in enumerate(factors))
        pos += (rep_index[getattr(row, repeat)] if repeat in frame else 0,)
        if not np.isnan(y[pos]):
            return None
        y[pos] = getattr(row, value)
    if not np.all(np.isfinite(y)):
        return None
    return y, levels


TABLE_COLUMNS = ("backend", "dataset", "model", "arm", "smoothing", "metric", "source", "variance", "share",
                 "ci_low", "ci_high", "share_low", "share_high", "df", "n_runs")


def design_factors(frame) -> list[str]:
    """The source columns of ``frame`` that vary (``augment`` dropped when it always equals ``order``)."""
    present = [c for c in SOURCE_COLUMNS if c in frame and frame[c].notna().all() and frame[c].nunique() > 1]
    if "augment" in present and "order" in present and (frame["augment"] == frame["order"]).all():
        present.remove("augment")
    return present


def components_table(runs, metrics, *, rng: np.random.Generator, confidence: float = 0.95,
                     n_draws: int = 4000):
    """variance.csv: one row per (backend, dataset, model, arm, smoothing, metric, source).

    runs: the runs table (completed runs used; ``repeat`` gives the residual when > 0 exists),
    with the source columns of a factorial ``seeds:`` mapping. A cell that is not a complete
    balanced factorial (a failed run, a source with one seed) gets no rows. Returns an empty
    table with the columns when no cell qualifies.
    """
    import pandas as pd

    done = runs[runs["status"] == COMPLETED] if "status" in runs else runs
    out = []
    keys = ["backend", "dataset", "model", "arm", "smoothing"]
    present = [k for k in keys if k in done]
    if not len(done):
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    for cell, group in done.groupby(present, sort=True, dropna=False):
        cell = cell if isinstance(cell, tuple) else (cell,)
        factors = design_factors(group)
        if not factors:
            continue
        frame = group.assign(repeat=group["repeat"].fillna(0) if "repeat" in group else 0)
        for metric in metrics:
            if metric not in frame or frame[metric].isna().any():
                continue
            table = balanced_table(frame, factors, metric)
            if table is None:
                continue
            res = variance_components(table[0], factors, rng=rng, confidence=confidence, n_draws=n_draws)
            base = {**dict.fromkeys(keys, "-"), **dict(zip(present, cell)), "metric": metric}
            for c in res.components:
                out.append({**base, "source": c.source, "variance": c.variance, "share": c.share,
                            "ci_low": c.ci_low, "ci_high": c.ci_high, "share_low": c.share_low,
                            "share_high": c.share_high, "df": c.df, "n_runs": int(table[0].size)})
    return pd.DataFrame(out, columns=list(TABLE_COLUMNS))
