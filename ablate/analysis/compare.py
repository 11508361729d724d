"""The comparisons table (``comparisons.csv``): the fixed-design comparison engine.

:func:`compare_runs` turns a per-run table (one row per run; columns ``backend,
dataset, model, arm, smoothing, seed``, optional ``repeat`` and ``status``, plus
metric columns; read and validated by :mod:`ablate.analysis.table`) into one row per
comparison, with the statistics of :mod:`ablate.analysis.stats`; :func:`power_curves`
gives TOST power against seed count for its rows. Their report.md section is written by
:mod:`ablate.analysis.prose`. The rows, per metric that has a margin:

* **paired** (within one backend / dataset / model / smoothing, paired by seed, repeat
  0 only), one row per pair of arms ``(arm_a, arm_b)``. Arm names are free text; the
  pairs are given (``pairs=``, ``report --compare A:B``) or default to every pair of
  arms present, reference arms first (see below), then the others, each in sorted
  order; ``arm_a`` is the earlier (the pair rule of :mod:`ablate.analysis.table`, which the
  sequential comparisons share). An arm whose rows all have smoothing 0 is
  *flat*: it is paired with every smoothing value of the other arm, and the row carries
  that value. Two smoothed arms are paired at each smoothing value both have. Seeds
  missing from one side are dropped with a note. ``p_difference`` comes from the paired
  t-test or, under the rule of :func:`ablate.analysis.stats.choose_difference_test`,
  the Wilcoxon signed-rank test.
* **reference arms** (the baseline that assay sensitivity is judged against,
  :func:`ablate.analysis.table.arm_roles`): when the table names each arm's trick
  (``method``), the arms of a reference trick (plain cross-entropy); else the
  flat arms when some other arm has smoothing > 0; when no arm has (e.g. a table
  without a ``smoothing`` column), the arm named ``none`` if present; else there is none.
* **across backends** (unpaired, Welch): for each dataset / model / arm / smoothing
  run on two backends, ``backend`` holds ``"<a> vs <b>"`` (names in sorted order,
  e.g. ``"keras vs torch"``), ``arm_a`` and ``arm_b`` both hold the arm,
  ``mean_diff`` is backend a minus backend b, ``n`` is the smaller side's count
  (both counts are in ``note``), ``test`` is ``"welch_t"``, ``effect_dz`` holds
  Hedges' g and ``seeds_needed`` is per backend.
* **across backends, paired**: when every run of both sides has ``pairing`` ==
  ``"cross-backend"`` (the two frameworks started each seed from the same shared initial
  weights), the same rows are paired by seed instead, exactly as within a backend (paired
  t or Wilcoxon, TOST, dz); ``note`` says so.

Every difference is ``a - b`` in the metric's own units (accuracy as a fraction).
``ci_low``/``ci_high`` are the (1 - 2 alpha) t-interval of the difference, so
``p_equivalence < alpha`` exactly when it lies inside ``±margin``. The p-values are
adjusted over the whole table (every row, all metrics), separately for
``p_equivalence`` and ``p_difference``, by Holm or Benjamini-Hochberg; rows whose
p-value is NaN are not in the family.

Verdicts, in this order: fewer than 2 pairs, or fewer than 5 pairs with non-zero
differences, gives ``inconclusive`` (reason in ``note``); all differences exactly
zero gives ``identical``; adjusted TOST p < alpha gives ``equivalent`` (flagged in
``note`` as "different but practically equivalent" when the adjusted difference p is
also < alpha); adjusted difference p < alpha with the CI not inside ``±margin``
gives ``different``; anything else is ``inconclusive``. Differences that are constant
within float noise (``stats`` module doc) have no test: from 5 pairs on, the verdict is
``equivalent`` when that exact value is inside ``±margin`` and ``different`` otherwise.

Spread: every row also carries the SD ratio ``sd_a / sd_b`` with its exact (1 - 2 alpha)
interval (Pitman-Morgan when paired, F for Welch rows), a TOST of it against
``[1/m, m]`` (``m`` = the ``sd_ratio`` entry of ``margins``, default 1.5) and ``sd_verdict``
(:func:`_sd_verdict`: the mean's rules on the ratio; p-values adjusted as their own family).

``seeds_needed`` is the TOST sample size for 80% power if the arms were truly equal
(true difference 0); ``seeds_needed_observed`` the same if the true difference were
the observed mean difference (empty when that is at or beyond the margin: not
reachable). Both use the observed SD; neither is a promise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from ablate.analysis import stats
from ablate.analysis.columns import CELL, RUN_KEY
from ablate.analysis.table import (
    arm_roles,
    cell_label,
    check_finite_moments,
    check_pairs,
    metric_columns,
    normalise_runs,
    paired_units,
    row_where,
    text_columns,
    truthy,
)
from ablate.config import CORRECTIONS
from ablate.errors import InputError
from ablate.statuses import COMPLETED

COLUMNS = (
    "metric", "backend", "dataset", "model", "smoothing", "arm_a", "arm_b", "n",
    "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "margin",
    "p_equivalence", "p_equivalence_adj", "p_difference", "p_difference_adj", "test",
    "effect_dz", "p_rope", "seeds_needed", "seeds_needed_observed", "verdict", "note",
    "sd_a", "sd_b", "sd_ratio", "sd_ratio_low", "sd_ratio_high", "sd_margin", "p_sd_equivalence",
    "p_sd_equivalence_adj", "p_sd_difference", "p_sd_difference_adj", "sd_test", "sd_verdict",
)
# The margin key for the SD ratio (analysis.margins.sd_ratio, --margin sd_ratio=1.5): equivalence
# of spread means sd_a / sd_b inside [1/m, m]. It is not a metric.
SD_RATIO_KEY = "sd_ratio"
DEFAULT_SD_RATIO_MARGIN = stats.SD_RATIO_MARGIN
_SD_TEST = {"paired": "pitman_morgan", "independent": "f_test"}
_ADJUSTED = ("p_equivalence_adj", "p_difference_adj", "verdict", "note", "p_sd_equivalence_adj",
             "p_sd_difference_adj", "sd_verdict")
DEFAULT_MARGINS: Mapping[str, float] = MappingProxyType({"accuracy": 0.005, "ece": 0.01, "nll": 0.02})
# Direction of improvement, used only for wording ("beats" / "is worse than").
HIGHER_IS_BETTER: Mapping[str, bool] = MappingProxyType(
    {"accuracy": True, "ece": False, "nll": False, "brier": False})
MIN_PAIRS = 5
TARGET_POWER = 0.8
CROSS_PAIRED_NOTE = "paired by seed: both backends started from shared initial weights (pairing: cross-backend)"
# The word every at-chance note and sentence carries (see _chance_note).
CHANCE = "chance"
# A run whose fitted temperature sits at its search bound has these left empty by the report.
BOUND_NOTE = "temperature at its search bound"

Correction = Literal["holm", "bh"]
CORRECTION_NAMES = {"holm": "Holm", "bh": "BH"}


@dataclass(frozen=True)
class Comparisons:
    """The result of :func:`compare_runs`.

    table: one row per comparison, columns exactly :data:`COLUMNS` (comparisons.csv).
    details: the same rows (same order, same key columns) with the statistics the
      contract leaves out: ``design`` ("paired"/"welch"), ``n_a, n_b, sd_diff``
      (SD of paired differences, or pooled SD for Welch), ``mean_abs_diff``,
      ``p_lower, p_upper`` (the one-sided TOST p), ``p_ttest, p_wilcoxon,
      p_sign_flip, sign_flip_method, bca_low, bca_high`` ((1 - 2 alpha) BCa interval;
      paired only), ``hedges_g, p_below, p_above`` (posterior mass outside the
      margin) and ``a_low, a_high, b_low, b_high`` (95% t-interval of each cell).
    floor: the nondeterminism floor, one row per cell (backend, dataset, model, arm,
      smoothing) and metric where a seed was run more than once: ``n_pairs`` re-runs
      compared with repeat 0, and the mean and max of ``|repeat k - repeat 0|``.
    sensitivity: assay sensitivity, one row per paired row of a reference arm
      (``reference``) with a non-reference ``arm``: ``gain`` (arm minus reference),
      ``p_difference_adj``, ``detected`` (at least 5 pairs and the adjusted difference
      p < alpha, or a constant non-zero difference) and the row's ``verdict``.
    notes: table-wide remarks (dropped seeds, runs left out, unused metrics).
    arms: the arms of the analysed runs, reference arms first; ``references`` and
      ``flat`` (smoothing 0 on every row) are subsets; ``pairs`` the compared pairs.
    """

    table: pd.DataFrame
    details: pd.DataFrame
    floor: pd.DataFrame
    sensitivity: pd.DataFrame
    notes: tuple[str, ...]
    margins: Mapping[str, float]
    alpha: float
    correction: Correction
    arms: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    flat: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    sd_margin: float = DEFAULT_SD_RATIO_MARGIN


def _by_seed(frame: pd.DataFrame, metric: str) -> pd.Series:
    return frame.set_index("seed")[metric].sort_index()


def _at_bound(side: pd.DataFrame, seeds) -> np.ndarray:
    """(len(seeds),) bool: the side's run at each seed has ``temperature_at_bound`` set."""
    if "temperature_at_bound" not in side:
        return np.zeros(len(seeds), bool)
    flags = side.set_index("seed")["temperature_at_bound"].map(truthy)
    return flags.reindex(seeds).fillna(False).to_numpy(dtype=bool)


def _chance_note(side_a: pd.DataFrame, side_b: pd.DataFrame, margin: float | None) -> str:
    """A note when both sides' mean accuracy lies within the accuracy margin of chance (1/K), else "".

    K comes from a ``classes`` column (runs.csv has one); without it, or without an
    ``accuracy`` column, nothing can be said and "" is returned.
    """
    if margin is None or "classes" not in side_a or "accuracy" not in side_a:
        return ""
    k = pd.to_numeric(pd.concat([side_a["classes"], side_b["classes"]]), errors="coerce").dropna()
    if k.empty or k.nunique() != 1 or k.iloc[0] < 2:
        return ""
    chance = 1.0 / float(k.iloc[0])
    means = [float(pd.to_numeric(s["accuracy"], errors="coerce").mean()) for s in (side_a, side_b)]
    if not all(np.isfinite(m) and abs(m - chance) <= margin for m in means):
        return ""
    return (f"both arms are at {CHANCE} accuracy (mean {means[0]:.1%} and {means[1]:.1%}, within "
            f"±{margin * 100:g} pp of 1/K = {chance:.1%}): neither model learned, so 'equivalent' or "
            f"'identical' here is vacuous")


def _seed_list(seeds) -> str:
    return ", ".join(str(int(s)) for s in sorted(seeds))


def _spread_row(spread: stats.SpreadComparison) -> dict:
    return dict(sd_a=spread.sd_a, sd_b=spread.sd_b, sd_ratio=spread.ratio, sd_ratio_low=spread.low,
                sd_ratio_high=spread.high, sd_margin=spread.margin, p_sd_equivalence=spread.p_equivalence,
                p_sd_difference=spread.p_difference, sd_test=_SD_TEST[spread.design])


def _paired_rows(metric, margin, key, eps, side_a, side_b, arm_a, arm_b, alpha, rng, n_boot,
                 sd_margin=DEFAULT_SD_RATIO_MARGIN):
    label = cell_label(*key, eps)
    sa, sb = _by_seed(side_a, metric), _by_seed(side_b, metric)
    notes = []
    only_a, only_b = sorted(set(sa.index) - set(sb.index)), sorted(set(sb.index) - set(sa.index))
    if only_a:
        notes.append(f"{label}, {arm_a} vs {arm_b}: seed(s) {_seed_list(only_a)} dropped (no {arm_b} run)")
    if only_b:
        notes.append(f"{label}, {arm_a} vs {arm_b}: seed(s) {_seed_list(only_b)} dropped (no {arm_a} run)")
    common = sa.index.intersection(sb.index)
    a, b = sa.loc[common], sb.loc[common]
    nan = a.isna().to_numpy() | b.isna().to_numpy()
    bound = _at_bound(side_a, common) | _at_bound(side_b, common)
    if (nan & bound).any():
        notes.append(f"{label}, {arm_a} vs {arm_b}: seed(s) {_seed_list(common[nan & bound])} dropped "
                     f"({BOUND_NOTE})")
    if (nan & ~bound).any():
        notes.append(f"{label}, {arm_a} vs {arm_b}: seed(s) {_seed_list(common[nan & ~bound])} dropped "
                     f"(no {metric} value)")
    a, b = a.to_numpy()[~nan], b.to_numpy()[~nan]
    res = stats.compare_paired(a, b, margin=margin, alpha=alpha, rng=rng, n_boot=n_boot,
                               target_power=TARGET_POWER, sd_margin=sd_margin)
    row = dict(
        metric=metric, backend=key[0], dataset=key[1], model=key[2], smoothing=float(eps),
        arm_a=arm_a, arm_b=arm_b, n=res.n, mean_a=res.mean_a, mean_b=res.mean_b,
        mean_diff=res.mean_diff, ci_low=res.tost.ci_low, ci_high=res.tost.ci_high, margin=margin,
        p_equivalence=res.tost.p_equivalence, p_difference=res.difference.p_value,
        test=res.difference.test, effect_dz=res.effect_dz, p_rope=res.posterior.p_rope,
        seeds_needed=res.seeds_needed, seeds_needed_observed=res.seeds_needed_observed,
        **_spread_row(res.spread),
    )
    detail = dict(
        design="paired", sd_state=res.spread.state, constant=res.constant, n_a=res.n, n_b=res.n, sd_diff=res.sd_diff,
        mean_abs_diff=float(np.mean(np.abs(a - b))) if res.n else math.nan,
        p_lower=res.tost.p_lower, p_upper=res.tost.p_upper, p_ttest=res.ttest.p_value,
        p_wilcoxon=res.wilcoxon.p_value, p_sign_flip=res.sign_flip.p_value,
        sign_flip_method=res.sign_flip.method, bca_low=res.bca.low, bca_high=res.bca.high,
        hedges_g=res.hedges_g, p_below=res.posterior.p_below, p_above=res.posterior.p_above,
        a_low=res.interval_a.low, a_high=res.interval_a.high,
        b_low=res.interval_b.low, b_high=res.interval_b.high,
    )
    row_notes = [n.split(": ", 1)[1] for n in notes]
    design_sd = _design_sd(side_a, side_b, metric, common[~nan])
    if design_sd is not None and not res.constant and not res.identical:
        row["seeds_needed"] = stats.seeds_needed(design_sd, margin, power=TARGET_POWER, alpha=alpha)
        row["seeds_needed_observed"] = stats.seeds_needed(design_sd, margin, power=TARGET_POWER, alpha=alpha,
                                                          true_diff=res.mean_diff)
        detail["sd_diff"] = design_sd
        row_notes.append(f"seeds_needed uses the SD of the paired difference that the factorial implies "
                         f"when each seed draws every source anew ({design_sd:.4g}; the sum of its variance "
                         f"components)")
    return row, detail, row_notes, notes, res.identical, res.constant


def _design_sd(side_a: pd.DataFrame, side_b: pd.DataFrame, metric: str, seeds) -> float | None:
    """The SD of a - b implied by a balanced factorial seed design (None when it is not one)."""
    from ablate.analysis import variance

    factors = variance.design_factors(side_a)
    if not factors or not len(seeds):
        return None
    a = side_a.set_index("seed").loc[seeds]
    b = side_b.set_index("seed").loc[seeds]
    frame = a[factors].assign(d=a[metric].to_numpy() - b[metric].to_numpy()).reset_index(drop=True)
    table = variance.balanced_table(frame, factors, "d")
    if table is None:
        return None
    res = variance.variance_components(table[0], factors, rng=np.random.default_rng(0), n_draws=0)
    return math.sqrt(res.total) if res.total > 0 else None


def _welch_rows(metric, margin, backend_a, backend_b, key, arm, eps, side_a, side_b, alpha,
                sd_margin=DEFAULT_SD_RATIO_MARGIN):
    a = side_a[metric].dropna().to_numpy()
    b = side_b[metric].dropna().to_numpy()
    res = stats.compare_unpaired(a, b, margin=margin, alpha=alpha, target_power=TARGET_POWER,
                                 sd_margin=sd_margin)
    row = dict(
        metric=metric, backend=f"{backend_a} vs {backend_b}", dataset=key[0], model=key[1],
        smoothing=float(eps), arm_a=arm, arm_b=arm, n=min(res.n_a, res.n_b),
        mean_a=res.mean_a, mean_b=res.mean_b, mean_diff=res.mean_diff,
        ci_low=res.tost.ci_low, ci_high=res.tost.ci_high, margin=margin,
        p_equivalence=res.tost.p_equivalence, p_difference=res.difference.p_value,
        test=res.difference.test, effect_dz=res.hedges_g, p_rope=res.posterior.p_rope,
        seeds_needed=res.seeds_needed, seeds_needed_observed=res.seeds_needed_observed,
        **_spread_row(res.spread),
    )
    detail = dict(
        design="welch", sd_state=res.spread.state, constant=res.constant, n_a=res.n_a, n_b=res.n_b, sd_diff=res.sd_pooled,
        mean_abs_diff=abs(res.mean_diff), p_lower=res.tost.p_lower, p_upper=res.tost.p_upper,
        p_ttest=res.difference.p_value, p_wilcoxon=math.nan, p_sign_flip=math.nan,
        sign_flip_method="", bca_low=math.nan, bca_high=math.nan, hedges_g=res.hedges_g,
        p_below=res.posterior.p_below, p_above=res.posterior.p_above,
        a_low=res.interval_a.low, a_high=res.interval_a.high,
        b_low=res.interval_b.low, b_high=res.interval_b.high,
    )
    note = (f"unpaired (Welch): {res.n_a} {backend_a} and {res.n_b} {backend_b} runs; "
            f"effect_dz holds Hedges' g; seeds_needed is per backend")
    return row, detail, [note], res.constant


def _shared_start(side_a: pd.DataFrame, side_b: pd.DataFrame) -> bool:
    """Whether two backends' runs form pairs: every one started from shared initial weights."""
    return bool((side_a["pairing"] == "cross-backend").all() and (side_b["pairing"] == "cross-backend").all())


def cross_rows(table: pd.DataFrame) -> pd.Series:
    """Rows comparing two backends (``backend`` holds "<a> vs <b>"), paired or Welch."""
    return table["backend"].astype(str).str.contains(" vs ", regex=False)


def _verdict(row, identical: bool, alpha: float, correction: str,
             constant: bool = False) -> tuple[str, list[str]]:
    n = row["n"]
    corr = CORRECTION_NAMES[correction]
    if n < 2:
        unit = "run(s) on the smaller side" if row["test"] == "welch_t" else "pair(s)"
        return "inconclusive", [f"only {n} {unit}: too few for any test"]
    if identical:
        return "identical", [f"all {n} differences are exactly zero"]
    if n < MIN_PAIRS:
        if row["test"] == "welch_t":
            return "inconclusive", [f"only {n} runs on the smaller side (fewer than {MIN_PAIRS}): no verdict"]
        return "inconclusive", [f"only {n} pairs (fewer than {MIN_PAIRS}): no verdict"]
    if constant:
        inside = abs(row["mean_diff"]) < row["margin"]
        return ("equivalent" if inside else "different"), [
            f"the difference is {row['mean_diff']:.6g} with zero variance (float noise at most): no "
            f"test; the verdict follows from that value being {'inside' if inside else 'outside'} the margin"]
    eq = row["p_equivalence_adj"] < alpha
    diff = row["p_difference_adj"] < alpha
    inside = -row["margin"] < row["ci_low"] and row["ci_high"] < row["margin"]
    if eq:
        if diff:
            return "equivalent", [f"different but practically equivalent: the difference is "
                                  f"significant ({corr} p = {row['p_difference_adj']:.3g}) "
                                  f"yet smaller than the margin"]
        return "equivalent", []
    if diff and not inside:
        return "different", []
    if diff:
        return "inconclusive", [f"the difference is significant but its CI lies inside the "
                                f"margin, and equivalence does not survive {corr} adjustment"]
    return "inconclusive", []


def _sd_verdict(row, state: str, alpha: float) -> str:
    """The spread verdict (module doc): the same rules as the mean's, on the SD ratio."""
    if row["n"] < MIN_PAIRS:
        return "inconclusive"
    if state in ("identical", "no spread"):
        return "identical"
    if state == "one flat":
        return "different"
    low, high, m = row["sd_ratio_low"], row["sd_ratio_high"], row["sd_margin"]
    if state == "degenerate":
        return "equivalent" if 1 / m < row["sd_ratio"] < m else "different"
    if row["p_sd_equivalence_adj"] < alpha:
        return "equivalent"
    if row["p_sd_difference_adj"] < alpha and not (1 / m < low and high < m):
        return "different"
    return "inconclusive"


def _sd_margin(margins: Mapping[str, float] | None) -> tuple[dict, float]:
    """(the metric margins, the SD-ratio margin) from one margins mapping."""
    margins = dict(margins or {})
    if SD_RATIO_KEY not in margins:
        return margins, DEFAULT_SD_RATIO_MARGIN
    value = margins.pop(SD_RATIO_KEY)
    try:
        number = float(value) if not isinstance(value, (bool, str)) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 1):
        raise InputError(f"margin for `{SD_RATIO_KEY}` must be a number > 1 (the SD ratio's band is "
                         f"[1/m, m]), but got {value!r}")
    return margins, number


def _check_options(alpha, correction, n_boot):
    if correction not in CORRECTION_NAMES:
        raise InputError(f"Expected argument `correction` to be one of {CORRECTIONS}, but got {correction!r}")
    if not 0.0 < alpha < 0.5:
        raise InputError(f"Expected argument `alpha` in (0, 0.5), but got {alpha!r}")
    if int(n_boot) < 100:
        raise InputError(f"Expected argument `n_boot` >= 100, but got {n_boot!r}")


def _resolve_margins(df: pd.DataFrame, margins: Mapping[str, float] | None, notes: list[str],
                     text: Mapping[str, str] | None = None) -> dict[str, float]:
    given = {}
    for metric, value in dict(margins or {}).items():
        try:
            number = float(value) if not isinstance(value, (bool, str)) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise InputError(f"margin for `{metric}` must be a number > 0, but got {value!r}")
        given[str(metric)] = number
    metric_cols = metric_columns(df)
    text = dict(text or {})
    for metric in given:
        if metric in text:
            raise InputError(f"margin given for `{metric}`, but column `{metric}` is not numeric "
                             f"(e.g. {text[metric]}); metric columns: {', '.join(metric_cols)}")
    absent = [m for m in given if m not in metric_cols]
    if absent:
        raise InputError(f"margin given for metric(s) {', '.join(absent)} that the runs table "
                         f"lacks; its metric columns: {', '.join(metric_cols)}")
    if text:
        notes.append("column(s) holding text, not compared: " +
                     "; ".join(f"`{c}` (e.g. {where})" for c, where in text.items()))
    merged = {**DEFAULT_MARGINS, **given}
    used = {m: float(v) for m, v in merged.items() if m in metric_cols}
    unused = [m for m in metric_cols if m not in used]
    if unused:
        notes.append(f"metric(s) without a margin, not compared: {', '.join(unused)} "
                     f"(give one with --margin METRIC=VALUE)")
    if not used:
        raise InputError(f"no metric with a margin; metric columns: {', '.join(metric_cols)}; "
                         f"defaults exist for {', '.join(DEFAULT_MARGINS)}")
    return used


def _floor(df: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    columns = [*CELL, "metric", "n_pairs", "mean_abs_diff", "max_abs_diff"]
    again = df[df["repeat"] > 0]
    if again.empty:
        return pd.DataFrame(columns=columns)
    first = df[df["repeat"] == 0]
    keys = [*CELL, "seed"]
    merged = again.merge(first, on=keys, suffixes=("", "_0"))
    out = []
    for cell, group in merged.groupby(list(CELL), sort=True):
        for metric in metrics:
            gap = (group[metric] - group[f"{metric}_0"]).abs().dropna()
            if len(gap):
                out.append(dict(zip(CELL, cell), metric=metric, n_pairs=len(gap),
                                mean_abs_diff=float(gap.mean()), max_abs_diff=float(gap.max())))
    return pd.DataFrame(out, columns=columns)


# --------------------------------------------------------------------------- main entry


def compare_runs(
    runs: pd.DataFrame,
    *,
    margins: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    correction: Correction = "holm",
    rng: np.random.Generator | None = None,
    n_boot: int = 2000,
    pairs=None,
) -> Comparisons:
    """Build the comparisons table from a per-run table (see the module doc for the rows).

    runs: one row per run (runs.csv, or :func:`load_runs_table` output). Only
      ``status == "completed"`` rows are used when a ``status`` column exists.
    margins: equivalence margins ±δ per metric in its own units; they extend
      :data:`DEFAULT_MARGINS` (accuracy 0.005, ece 0.01, nll 0.02). Metrics without a
      margin get no rows (a note says so); a margin for a missing metric is an error.
    rng: drives the BCa bootstrap and Monte Carlo sign flips; ``None`` means
      ``np.random.default_rng(0)`` so that reports are reproducible.
    pairs: the ``(arm_a, arm_b)`` pairs to compare (differences are a - b); None: every
      pair of arms present, reference arms first (module doc).
    """
    _check_options(alpha, correction, n_boot)
    rng = np.random.default_rng(0) if rng is None else rng
    df = normalise_runs(pd.DataFrame(runs), "runs table")
    df["_row"] = np.arange(1, len(df) + 1)
    text = text_columns(df)
    known = list(dict.fromkeys(df["arm"]))
    notes: list[str] = []
    if "status" in df.columns:
        left_out = df[df["status"] != COMPLETED]
        if len(left_out):
            counts = ", ".join(f"{k}: {v}" for k, v in left_out["status"].value_counts().sort_index().items())
            notes.append(f"{len(left_out)} run(s) that did not complete were left out ({counts})")
        df = df[df["status"] == COMPLETED]
    dup = df.duplicated(list(RUN_KEY), keep=False)
    if dup.any():
        example = df.loc[dup, list(RUN_KEY)].iloc[0].to_dict()
        raise InputError(f"runs table: {int(dup.sum())} rows share backend/dataset/model/arm/"
                         f"smoothing/seed/repeat with another completed run, e.g. {example}")
    margins, sd_margin = _sd_margin(margins)
    used = _resolve_margins(df, margins, notes, text)
    for metric in metric_columns(df):  # all of them: the summary table reads more than `used`
        infinite = np.isinf(df[metric].to_numpy(dtype=np.float64))
        if infinite.any():
            first = df.index[infinite][0]
            raise InputError(f"runs table: column `{metric}` holds {df.loc[first, metric]} in "
                             f"{row_where(df, first)}; metric values must be finite "
                             f"(leave the cell empty for a missing value)")
        check_finite_moments(df, metric)
    roles = arm_roles(df)
    arms, references, flat = roles.arms, roles.references, roles.flat
    chosen = check_pairs(pairs, arms, known)
    base = df[df["repeat"] == 0]

    rows, details, row_notes, identical, constant = [], [], [], [], []
    acc_margin = used.get("accuracy", DEFAULT_MARGINS["accuracy"])
    for metric, margin in used.items():
        for key, eps, arm_a, arm_b, side_a, side_b in paired_units(base, chosen, flat):
            row, detail, rnotes, tnotes, same, const = _paired_rows(
                metric, margin, key, eps, side_a, side_b, arm_a, arm_b, alpha, rng, n_boot, sd_margin)
            rnotes = [*rnotes, *filter(None, [_chance_note(side_a, side_b, acc_margin)])]
            rows.append(row), details.append(detail), row_notes.append(rnotes)
            identical.append(same), constant.append(const)
            notes.extend(tnotes)
        for (dataset, model, arm, eps), cell in base.groupby(["dataset", "model", "arm", "smoothing"], sort=True):
            backends = sorted(cell["backend"].unique())
            for i, backend_a in enumerate(backends):
                for backend_b in backends[i + 1:]:
                    side_a, side_b = cell[cell["backend"] == backend_a], cell[cell["backend"] == backend_b]
                    if _shared_start(side_a, side_b):
                        row, detail, rnotes, tnotes, same, const = _paired_rows(
                            metric, margin, (f"{backend_a} vs {backend_b}", dataset, model), eps,
                            side_a, side_b, arm, arm, alpha, rng, n_boot, sd_margin)
                        rnotes = [CROSS_PAIRED_NOTE, *rnotes]
                        notes.extend(tnotes)
                    else:
                        row, detail, rnotes, const = _welch_rows(
                            metric, margin, backend_a, backend_b, (dataset, model), arm, eps,
                            side_a, side_b, alpha, sd_margin)
                        same = False
                    rnotes = [*rnotes, *filter(None, [_chance_note(side_a, side_b, acc_margin)])]
                    rows.append(row), details.append(detail), row_notes.append(rnotes)
                    identical.append(same), constant.append(const)

    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in _ADJUSTED])
    for column in ("p_equivalence", "p_difference", "p_sd_equivalence", "p_sd_difference"):
        table[f"{column}_adj"] = stats.adjust_pvalues(table[column].to_numpy(float), correction)
    sd_states = [d["sd_state"] for d in details]
    table["sd_verdict"] = [_sd_verdict(row, sd_states[i], alpha) for i, row in enumerate(table.to_dict("records"))]
    verdicts, final_notes = [], []
    for i, row in enumerate(table.to_dict("records")):
        verdict, extra = _verdict(row, identical[i], alpha, correction, constant[i])
        verdicts.append(verdict)
        final_notes.append("; ".join([*row_notes[i], *extra]))
    table["verdict"] = verdicts
    table["note"] = final_notes
    for column in ("seeds_needed", "seeds_needed_observed"):
        table[column] = table[column].astype("Int64")
    table["n"] = table["n"].astype(np.int64)
    table = table[list(COLUMNS)].reset_index(drop=True)
    keys = ["metric", "backend", "dataset", "model", "smoothing", "arm_a", "arm_b"]
    details_df = pd.concat([table[keys], pd.DataFrame(details)], axis=1) \
        if details else pd.DataFrame(columns=keys + ["constant"])

    ref_a, ref_b = table["arm_a"].isin(references), table["arm_b"].isin(references)
    links = (~cross_rows(table) & (ref_a != ref_b)).to_numpy()
    linked = table[links]
    first = ref_a.to_numpy()[links]  # the reference is arm_a (else arm_b: the sign flips)
    const = details_df["constant"].to_numpy(dtype=bool)[links] if len(details_df) else np.zeros(0, bool)
    detected = ((linked["n"] >= MIN_PAIRS).to_numpy()
                & ((linked["p_difference_adj"] < alpha).to_numpy()
                   | (const & (linked["mean_diff"] != 0).to_numpy())))
    sensitivity = pd.DataFrame({
        "metric": linked["metric"], "backend": linked["backend"],
        "dataset": linked["dataset"], "model": linked["model"], "smoothing": linked["smoothing"],
        "reference": np.where(first, linked["arm_a"], linked["arm_b"]),
        "arm": np.where(first, linked["arm_b"], linked["arm_a"]),
        "gain": np.where(first, -linked["mean_diff"], linked["mean_diff"]),
        "p_difference_adj": linked["p_difference_adj"], "detected": detected, "verdict": linked["verdict"],
    }).reset_index(drop=True)

    return Comparisons(
        table=table,
        details=details_df,
        floor=_floor(df, list(used)),
        sensitivity=sensitivity,
        notes=tuple(dict.fromkeys(notes)),
        margins=MappingProxyType(used),
        alpha=float(alpha),
        correction=correction,
        arms=tuple(arms),
        references=tuple(references),
        flat=tuple(flat),
        pairs=tuple(chosen),
        sd_margin=float(sd_margin),
    )


def power_curves(
    comparisons: Comparisons,
    *,
    arms: tuple[str, str] | None = ("explicit", "loss"),
    n_max: int = 40,
    pairs=None,
) -> pd.DataFrame:
    """TOST power against seed count at each row's margin and observed SD.

    arms: keep only rows comparing these arms (None: every row); pairs: a list of such
    ``(arm_a, arm_b)`` tuples, used instead of ``arms`` when given. Returns a long
    DataFrame with columns ``label, metric, n, power, sd, margin, design`` for
    n = 2..n_max (Welch rows use the two-sample design, n per backend).
    """
    t, d = comparisons.table, comparisons.details
    keep = np.ones(len(t), dtype=bool)
    if pairs is not None:
        keep = np.array([(a, b) in set(map(tuple, pairs)) for a, b in zip(t["arm_a"], t["arm_b"])], dtype=bool)
    elif arms is not None:
        keep = ((t["arm_a"] == arms[0]) & (t["arm_b"] == arms[1])).to_numpy()
    ns = np.arange(2, max(int(n_max), 2) + 1)
    out = []
    for i in np.flatnonzero(keep):
        row, sd = t.iloc[i], float(d["sd_diff"].iloc[i])
        if not np.isfinite(sd):
            continue
        design = "two-sample" if d["design"].iloc[i] == "welch" else "paired"
        power = stats.tost_power_curve(ns, sd, float(row["margin"]), alpha=comparisons.alpha,
                                       design=design)
        if row["test"] == "welch_t":
            where = cell_label("-", row["dataset"], row["model"], row["smoothing"])
            label = f"{row['backend']} · {where} · {row['arm_a']}"
        else:
            where = cell_label(row["backend"], row["dataset"], row["model"], row["smoothing"])
            label = f"{where} · {row['arm_a']} vs {row['arm_b']}"
        out.extend(dict(label=label, metric=row["metric"], n=int(k), power=float(p), sd=sd,
                        margin=float(row["margin"]), design=design) for k, p in zip(ns, power))
    return pd.DataFrame(out, columns=["label", "metric", "n", "power", "sd", "margin", "design"])

