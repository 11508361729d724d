"""The comparisons table (``comparisons.csv``) and its report.md section.

:func:`compare_runs` turns a per-run table (one row per run; columns ``backend,
dataset, model, arm, smoothing, seed``, optional ``repeat`` and ``status``, plus
metric columns) into one row per comparison, with the statistics of
:mod:`ablate.analysis.stats`. The rows, per metric that has a margin:

* **paired** (within one backend / dataset / model / smoothing, paired by seed, repeat
  0 only): ``explicit`` vs ``loss``, ``none`` vs ``explicit``, ``none`` vs ``loss``.
  The ``none`` arm (smoothing 0) is paired with every smoothing value's arms, and
  its rows carry that smoothing value. Seeds missing from one side are dropped with
  a note. ``p_difference`` comes from the paired t-test or, under the rule of
  :func:`ablate.analysis.stats.choose_difference_test`, the Wilcoxon signed-rank test.
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
gives ``different``; anything else is ``inconclusive``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from ablate.analysis import stats
from ablate.errors import InputError

COLUMNS = (
    "metric", "backend", "dataset", "model", "smoothing", "arm_a", "arm_b", "n",
    "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "margin",
    "p_equivalence", "p_equivalence_adj", "p_difference", "p_difference_adj", "test",
    "effect_dz", "p_rope", "seeds_needed", "verdict", "note",
)
DEFAULT_MARGINS: Mapping[str, float] = MappingProxyType({"accuracy": 0.005, "ece": 0.01, "nll": 0.02})
# Direction of improvement, used only for wording ("beats" / "is worse than").
HIGHER_IS_BETTER: Mapping[str, bool] = MappingProxyType(
    {"accuracy": True, "ece": False, "nll": False, "brier": False})
ARMS = ("none", "explicit", "loss")
PAIRS = (("explicit", "loss"), ("none", "explicit"), ("none", "loss"))
MIN_PAIRS = 5
TARGET_POWER = 0.8
REQUIRED = ("arm", "seed")
OPTIONAL_DEFAULTS: Mapping[str, object] = MappingProxyType(
    {"backend": "-", "dataset": "-", "model": "-", "smoothing": 0.0, "repeat": 0,
     "pairing": "within-backend"})
PAIRINGS = ("within-backend", "cross-backend")
CROSS_PAIRED_NOTE = "paired by seed: both backends started from shared initial weights (pairing: cross-backend)"
# Columns of runs.csv that are bookkeeping, never metrics.
NON_METRIC = frozenset({*REQUIRED, *OPTIONAL_DEFAULTS, "status", "run_id", "started_at",
                        "finished_at", "seconds", "error"})
KNOWN_METRICS = ("accuracy", "ece", "nll", "brier")
RUN_KEY = ("backend", "dataset", "model", "arm", "smoothing", "seed", "repeat")
CELL = ("backend", "dataset", "model", "arm", "smoothing")

Correction = Literal["holm", "bh"]
_CORRECTION_NAME = {"holm": "Holm", "bh": "BH"}


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
    sensitivity: assay sensitivity, one row per smoothing arm compared with ``none``:
      ``gain`` (arm minus none), ``p_difference_adj``, ``detected`` (adjusted
      difference p < alpha) and the row's ``verdict``.
    notes: table-wide remarks (dropped seeds, runs left out, unused metrics).
    """

    table: pd.DataFrame
    details: pd.DataFrame
    floor: pd.DataFrame
    sensitivity: pd.DataFrame
    notes: tuple[str, ...]
    margins: Mapping[str, float]
    alpha: float
    correction: Correction


# --------------------------------------------------------------------------- input


def _fail(source: str, message: str) -> None:
    raise InputError(f"{source}: {message}")


def _listing(values) -> str:
    values = list(values)
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:5])
    return shown + (f" (+{len(values) - 5} more)" if len(values) > 5 else "")


def _as_number(df: pd.DataFrame, column: str, source: str, *, integer: bool) -> pd.Series:
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna()
    if integer:
        bad |= values != np.round(values)
    if bad.any():
        kind = "integers" if integer else "numbers"
        _fail(source, f"column `{column}` must hold {kind}; got {_listing(raw[bad].unique())}")
    return values.astype(np.int64) if integer else values.astype(np.float64)


def _metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in NON_METRIC and pd.api.types.is_numeric_dtype(df[c])]


def _normalise(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Validated copy with every optional column present and typed."""
    df = df.rename(columns=lambda c: str(c).strip())
    allowed = (f"required: {', '.join(REQUIRED)} and at least one numeric metric column; "
               f"optional: {', '.join([*OPTIONAL_DEFAULTS, 'status'])}")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        _fail(source, f"missing column(s) {', '.join(missing)}; {allowed}; "
                      f"got {', '.join(map(str, df.columns)) or 'no columns'}")
    dupes = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dupes:
        _fail(source, f"duplicate column(s) {', '.join(dupes)}; {allowed}")
    df = df.copy()
    for column, default in OPTIONAL_DEFAULTS.items():
        if column not in df.columns:
            df[column] = default
    for column in ("backend", "dataset", "model"):
        df[column] = df[column].fillna("-").astype(str).str.strip().replace("", "-")
    df["arm"] = df["arm"].astype(str).str.strip()
    df["pairing"] = df["pairing"].fillna("within-backend").astype(str).str.strip()
    bad_pairing = sorted(set(df["pairing"]) - set(PAIRINGS))
    if bad_pairing:
        _fail(source, f"column `pairing` has unknown value(s) {_listing(bad_pairing)}; "
                      f"allowed: {', '.join(PAIRINGS)}")
    unknown = sorted(set(df["arm"]) - set(ARMS))
    if unknown:
        _fail(source, f"column `arm` has unknown value(s) {_listing(unknown)}; "
                      f"allowed: {', '.join(ARMS)}")
    df["seed"] = _as_number(df, "seed", source, integer=True)
    df["repeat"] = _as_number(df, "repeat", source, integer=True)
    if (df["repeat"] < 0).any():
        given = _listing(df.loc[df["repeat"] < 0, "repeat"].unique())
        _fail(source, f"column `repeat` must be >= 0; got {given}")
    df["smoothing"] = _as_number(df, "smoothing", source, integer=False)
    out_of_range = (df["smoothing"] < 0) | (df["smoothing"] >= 1)
    if out_of_range.any():
        given = _listing(df.loc[out_of_range, "smoothing"].unique())
        _fail(source, f"column `smoothing` must be in [0, 1); got {given}")
    if "status" in df.columns:
        df["status"] = df["status"].astype(str).str.strip()
    for column in KNOWN_METRICS:
        if column in df.columns and not pd.api.types.is_numeric_dtype(df[column]):
            values = pd.to_numeric(df[column], errors="coerce")
            bad = values.isna() & df[column].notna()
            if bad.any():
                _fail(source, f"metric column `{column}` must be numeric; got {_listing(df.loc[bad, column].unique())}")
            df[column] = values
    if not _metric_columns(df):
        _fail(source, f"no numeric metric column (e.g. {', '.join(KNOWN_METRICS)}); {allowed}; "
                      f"got {', '.join(map(str, df.columns))}")
    return df


def load_runs_table(path) -> pd.DataFrame:
    """Read a user-made per-run CSV for ``ablate report --runs FILE.csv``.

    Required columns: ``arm`` (none / explicit / loss), ``seed`` (integers) and at least
    one numeric metric column. Optional: ``backend, dataset, model`` (default "-"),
    ``smoothing`` (default 0, in [0, 1)), ``repeat`` (default 0) and ``status`` (only
    "completed" rows are analysed). Any problem raises :class:`InputError` with one line
    naming the file, the columns, what is allowed and what was given.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IsADirectoryError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable CSV table ({first})") from None
    if df.empty:
        raise InputError(f"{path}: no rows; expected one row per run with columns "
                         f"{', '.join(REQUIRED)} and metric columns, got columns {', '.join(map(str, df.columns))}")
    return _normalise(df, str(path))


# --------------------------------------------------------------------------- helpers


def _label(backend: str, dataset: str, model: str, smoothing: float | None = None) -> str:
    parts = [p for p in (backend, dataset, model) if p != "-"]
    text = " / ".join(parts) if parts else "all runs"
    return text if smoothing is None else f"{text}, ε = {smoothing:g}"


def _by_seed(frame: pd.DataFrame, metric: str) -> pd.Series:
    return frame.set_index("seed")[metric].sort_index()


def _seed_list(seeds) -> str:
    return ", ".join(str(int(s)) for s in sorted(seeds))


def _paired_rows(metric, margin, key, eps, side_a, side_b, arm_a, arm_b, alpha, rng, n_boot):
    label = _label(*key, eps)
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
    if nan.any():
        notes.append(f"{label}, {arm_a} vs {arm_b}: seed(s) {_seed_list(common[nan])} dropped "
                     f"(no {metric} value)")
    a, b = a.to_numpy()[~nan], b.to_numpy()[~nan]
    res = stats.compare_paired(a, b, margin=margin, alpha=alpha, rng=rng, n_boot=n_boot,
                               target_power=TARGET_POWER)
    row = dict(
        metric=metric, backend=key[0], dataset=key[1], model=key[2], smoothing=float(eps),
        arm_a=arm_a, arm_b=arm_b, n=res.n, mean_a=res.mean_a, mean_b=res.mean_b,
        mean_diff=res.mean_diff, ci_low=res.tost.ci_low, ci_high=res.tost.ci_high, margin=margin,
        p_equivalence=res.tost.p_equivalence, p_difference=res.difference.p_value,
        test=res.difference.test, effect_dz=res.effect_dz, p_rope=res.posterior.p_rope,
        seeds_needed=res.seeds_needed,
    )
    detail = dict(
        design="paired", n_a=res.n, n_b=res.n, sd_diff=res.sd_diff,
        mean_abs_diff=float(np.mean(np.abs(a - b))) if res.n else math.nan,
        p_lower=res.tost.p_lower, p_upper=res.tost.p_upper, p_ttest=res.ttest.p_value,
        p_wilcoxon=res.wilcoxon.p_value, p_sign_flip=res.sign_flip.p_value,
        sign_flip_method=res.sign_flip.method, bca_low=res.bca.low, bca_high=res.bca.high,
        hedges_g=res.hedges_g, p_below=res.posterior.p_below, p_above=res.posterior.p_above,
        a_low=res.interval_a.low, a_high=res.interval_a.high,
        b_low=res.interval_b.low, b_high=res.interval_b.high,
    )
    row_notes = [n.split(": ", 1)[1] for n in notes]
    return row, detail, row_notes, notes, res.identical


def _welch_rows(metric, margin, backend_a, backend_b, key, arm, eps, side_a, side_b, alpha):
    a = side_a[metric].dropna().to_numpy()
    b = side_b[metric].dropna().to_numpy()
    res = stats.compare_unpaired(a, b, margin=margin, alpha=alpha, target_power=TARGET_POWER)
    row = dict(
        metric=metric, backend=f"{backend_a} vs {backend_b}", dataset=key[0], model=key[1],
        smoothing=float(eps), arm_a=arm, arm_b=arm, n=min(res.n_a, res.n_b),
        mean_a=res.mean_a, mean_b=res.mean_b, mean_diff=res.mean_diff,
        ci_low=res.tost.ci_low, ci_high=res.tost.ci_high, margin=margin,
        p_equivalence=res.tost.p_equivalence, p_difference=res.difference.p_value,
        test=res.difference.test, effect_dz=res.hedges_g, p_rope=res.posterior.p_rope,
        seeds_needed=res.seeds_needed,
    )
    detail = dict(
        design="welch", n_a=res.n_a, n_b=res.n_b, sd_diff=res.sd_pooled,
        mean_abs_diff=abs(res.mean_diff), p_lower=res.tost.p_lower, p_upper=res.tost.p_upper,
        p_ttest=res.difference.p_value, p_wilcoxon=math.nan, p_sign_flip=math.nan,
        sign_flip_method="", bca_low=math.nan, bca_high=math.nan, hedges_g=res.hedges_g,
        p_below=res.posterior.p_below, p_above=res.posterior.p_above,
        a_low=res.interval_a.low, a_high=res.interval_a.high,
        b_low=res.interval_b.low, b_high=res.interval_b.high,
    )
    note = (f"unpaired (Welch): {res.n_a} {backend_a} and {res.n_b} {backend_b} runs; "
            f"effect_dz holds Hedges' g; seeds_needed is per backend")
    return row, detail, [note]


def _shared_start(side_a: pd.DataFrame, side_b: pd.DataFrame) -> bool:
    """Whether two backends' runs form pairs: every one started from shared initial weights."""
    return bool((side_a["pairing"] == "cross-backend").all() and (side_b["pairing"] == "cross-backend").all())


def _cross(table: pd.DataFrame) -> pd.Series:
    """Rows comparing two backends (``backend`` holds "<a> vs <b>"), paired or Welch."""
    return table["backend"].astype(str).str.contains(" vs ", regex=False)


def _verdict(row, identical: bool, alpha: float, correction: str) -> tuple[str, list[str]]:
    n = row["n"]
    corr = _CORRECTION_NAME[correction]
    if n < 2:
        unit = "run(s) on the smaller side" if row["test"] == "welch_t" else "pair(s)"
        return "inconclusive", [f"only {n} {unit}: too few for any test"]
    if identical:
        return "identical", [f"all {n} differences are exactly zero"]
    if n < MIN_PAIRS:
        if row["test"] == "welch_t":
            return "inconclusive", [f"only {n} runs on the smaller side (fewer than {MIN_PAIRS}): no verdict"]
        return "inconclusive", [f"only {n} pairs (fewer than {MIN_PAIRS}): no verdict"]
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


def _check_options(alpha, correction, n_boot):
    if correction not in _CORRECTION_NAME:
        raise InputError(f"Expected argument `correction` to be one of ('holm', 'bh'), but got {correction!r}")
    if not 0.0 < alpha < 0.5:
        raise InputError(f"Expected argument `alpha` in (0, 0.5), but got {alpha!r}")
    if int(n_boot) < 100:
        raise InputError(f"Expected argument `n_boot` >= 100, but got {n_boot!r}")


def _resolve_margins(df: pd.DataFrame, margins: Mapping[str, float] | None, notes: list[str]) -> dict[str, float]:
    given = {}
    for metric, value in dict(margins or {}).items():
        try:
            number = float(value) if not isinstance(value, (bool, str)) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise InputError(f"margin for `{metric}` must be a number > 0, but got {value!r}")
        given[str(metric)] = number
    metric_cols = _metric_columns(df)
    absent = [m for m in given if m not in metric_cols]
    if absent:
        raise InputError(f"margin given for metric(s) {', '.join(absent)} that the runs table "
                         f"lacks; its metric columns: {', '.join(metric_cols)}")
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
) -> Comparisons:
    """Build the comparisons table from a per-run table (see the module doc for the rows).

    runs: one row per run (runs.csv, or :func:`load_runs_table` output). Only
      ``status == "completed"`` rows are used when a ``status`` column exists.
    margins: equivalence margins ±δ per metric in its own units; they extend
      :data:`DEFAULT_MARGINS` (accuracy 0.005, ece 0.01, nll 0.02). Metrics without a
      margin get no rows (a note says so); a margin for a missing metric is an error.
    rng: drives the BCa bootstrap and Monte Carlo sign flips; ``None`` means
      ``np.random.default_rng(0)`` so that reports are reproducible.
    """
    _check_options(alpha, correction, n_boot)
    rng = np.random.default_rng(0) if rng is None else rng
    df = _normalise(pd.DataFrame(runs), "runs table")
    notes: list[str] = []
    if "status" in df.columns:
        left_out = df[df["status"] != "completed"]
        if len(left_out):
            counts = ", ".join(f"{k}: {v}" for k, v in left_out["status"].value_counts().sort_index().items())
            notes.append(f"{len(left_out)} run(s) that did not complete were left out ({counts})")
        df = df[df["status"] == "completed"]
    dup = df.duplicated(list(RUN_KEY), keep=False)
    if dup.any():
        example = df.loc[dup, list(RUN_KEY)].iloc[0].to_dict()
        raise InputError(f"runs table: {int(dup.sum())} rows share backend/dataset/model/arm/"
                         f"smoothing/seed/repeat with another completed run, e.g. {example}")
    none_eps = df.loc[df["arm"] == "none", "smoothing"]
    if (none_eps != 0).any():
        notes.append("the `none` arm's smoothing values were set to 0 (it has no smoothing)")
        df.loc[df["arm"] == "none", "smoothing"] = 0.0
    used = _resolve_margins(df, margins, notes)
    base = df[df["repeat"] == 0]

    rows, details, row_notes, identical = [], [], [], []
    for metric, margin in used.items():
        for key, cell in base.groupby(["backend", "dataset", "model"], sort=True):
            sides_none = cell[cell["arm"] == "none"]
            smoothed = cell[cell["arm"] != "none"]
            for eps in sorted(smoothed["smoothing"].unique()):
                sides = {"none": sides_none}
                for arm in ("explicit", "loss"):
                    sides[arm] = smoothed[(smoothed["arm"] == arm) & (smoothed["smoothing"] == eps)]
                for arm_a, arm_b in PAIRS:
                    if sides[arm_a].empty or sides[arm_b].empty:
                        continue
                    row, detail, rnotes, tnotes, same = _paired_rows(
                        metric, margin, key, eps, sides[arm_a], sides[arm_b], arm_a, arm_b,
                        alpha, rng, n_boot)
                    rows.append(row), details.append(detail), row_notes.append(rnotes)
                    identical.append(same)
                    notes.extend(tnotes)
        for (dataset, model, arm, eps), cell in base.groupby(["dataset", "model", "arm", "smoothing"], sort=True):
            backends = sorted(cell["backend"].unique())
            for i, backend_a in enumerate(backends):
                for backend_b in backends[i + 1:]:
                    side_a, side_b = cell[cell["backend"] == backend_a], cell[cell["backend"] == backend_b]
                    if _shared_start(side_a, side_b):
                        row, detail, rnotes, tnotes, same = _paired_rows(
                            metric, margin, (f"{backend_a} vs {backend_b}", dataset, model), eps,
                            side_a, side_b, arm, arm, alpha, rng, n_boot)
                        rnotes = [CROSS_PAIRED_NOTE, *rnotes]
                        notes.extend(tnotes)
                    else:
                        row, detail, rnotes = _welch_rows(
                            metric, margin, backend_a, backend_b, (dataset, model), arm, eps,
                            side_a, side_b, alpha)
                        same = False
                    rows.append(row), details.append(detail), row_notes.append(rnotes)
                    identical.append(same)

    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in
                                        ("p_equivalence_adj", "p_difference_adj", "verdict", "note")])
    table["p_equivalence_adj"] = stats.adjust_pvalues(table["p_equivalence"].to_numpy(float), correction)
    table["p_difference_adj"] = stats.adjust_pvalues(table["p_difference"].to_numpy(float), correction)
    verdicts, final_notes = [], []
    for i, row in enumerate(table.to_dict("records")):
        verdict, extra = _verdict(row, identical[i], alpha, correction)
        verdicts.append(verdict)
        final_notes.append("; ".join([*row_notes[i], *extra]))
    table["verdict"] = verdicts
    table["note"] = final_notes
    table["seeds_needed"] = table["seeds_needed"].astype("Int64")
    table["n"] = table["n"].astype(np.int64)
    table = table[list(COLUMNS)]
    keys = ["metric", "backend", "dataset", "model", "smoothing", "arm_a", "arm_b"]
    details_df = pd.concat([table[keys].reset_index(drop=True), pd.DataFrame(details)], axis=1) \
        if details else pd.DataFrame(columns=keys)

    paired_none = table[(table["arm_a"] == "none") & ~_cross(table)]
    sensitivity = pd.DataFrame({
        "metric": paired_none["metric"], "backend": paired_none["backend"],
        "dataset": paired_none["dataset"], "model": paired_none["model"],
        "smoothing": paired_none["smoothing"], "arm": paired_none["arm_b"],
        "gain": -paired_none["mean_diff"], "p_difference_adj": paired_none["p_difference_adj"],
        "detected": paired_none["p_difference_adj"] < alpha, "verdict": paired_none["verdict"],
    }).reset_index(drop=True)

    return Comparisons(
        table=table.reset_index(drop=True),
        details=details_df,
        floor=_floor(df, list(used)),
        sensitivity=sensitivity,
        notes=tuple(dict.fromkeys(notes)),
        margins=MappingProxyType(used),
        alpha=float(alpha),
        correction=correction,
    )


def power_curves(
    comparisons: Comparisons,
    *,
    arms: tuple[str, str] | None = ("explicit", "loss"),
    n_max: int = 40,
) -> pd.DataFrame:
    """TOST power against seed count at each row's margin and observed SD.

    arms: keep only rows comparing these arms (None: every row). Returns a long
    DataFrame with columns ``label, metric, n, power, sd, margin, design`` for
    n = 2..n_max (Welch rows use the two-sample design, n per backend).
    """
    t, d = comparisons.table, comparisons.details
    keep = np.ones(len(t), dtype=bool)
    if arms is not None:
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
            where = _label("-", row["dataset"], row["model"], row["smoothing"])
            label = f"{row['backend']} · {where} · {row['arm_a']}"
        else:
            where = _label(row["backend"], row["dataset"], row["model"], row["smoothing"])
            label = f"{where} · {row['arm_a']} vs {row['arm_b']}"
        out.extend(dict(label=label, metric=row["metric"], n=int(k), power=float(p), sd=sd,
                        margin=float(row["margin"]), design=design) for k, p in zip(ns, power))
    return pd.DataFrame(out, columns=["label", "metric", "n", "power", "sd", "margin", "design"])


# --------------------------------------------------------------------------- markdown

_METRIC_NAMES = {"accuracy": "accuracy", "ece": "ECE", "nll": "NLL", "brier": "Brier score"}
_ARM_NAMES = {"none": "no smoothing", "explicit": "explicit", "loss": "loss"}


def _scale(metric: str) -> float:
    return 100.0 if metric == "accuracy" else 1.0


def _decimals(metric: str, margin: float) -> int:
    if metric == "accuracy":
        return 2
    return max(2, int(math.ceil(-math.log10(margin))) + 2)


def _num(x: float, metric: str, margin: float, *, signed: bool = True) -> str:
    if not np.isfinite(x):
        return "n/a"
    text = f"{x * _scale(metric):{'+' if signed else ''}.{_decimals(metric, margin)}f}"
    return text.replace("-", "−")


def _amount(x: float, metric: str, margin: float, *, signed: bool = True) -> str:
    unit = " pp" if metric == "accuracy" else ""
    return _num(x, metric, margin, signed=signed) + ("" if not np.isfinite(x) else unit)


def _margin_text(metric: str, margin: float) -> str:
    return f"±{_amount(margin, metric, margin, signed=False)} {_METRIC_NAMES.get(metric, metric)}"


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _pair_phrase(a: str, b: str) -> str:
    if a == "none":
        return f"no smoothing and {b} smoothing"
    return f"{a} and {b} smoothing"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(row: Mapping, conf: int, corr: str) -> str:
    metric, margin = row["metric"], row["margin"]
    pair = _pair_phrase(row["arm_a"], row["arm_b"])
    name = _METRIC_NAMES.get(metric, metric)
    ci = (f"{conf}% CI [{_num(row['ci_low'], metric, margin)}, "
          f"{_num(row['ci_high'], metric, margin)}]")
    core = f"mean difference {_amount(row['mean_diff'], metric, margin)}, {ci}"
    test = row["test"].replace("_", " ")
    verdict = row["verdict"]
    if verdict == "identical":
        return f"{pair} gave identical {name} on all {row['n']} seeds (every paired difference is exactly zero)"
    if verdict == "equivalent":
        text = (f"{pair} are equivalent within {_margin_text(metric, margin)} ({core}, "
                f"TOST {_p(row['p_equivalence_adj'])} ({corr}), n = {row['n']})")
        if "different but practically equivalent" in row["note"]:
            text += (f"; the difference is statistically significant ({test} "
                     f"{_p(row['p_difference_adj'])}, {corr}) but practically negligible")
        return text
    if verdict == "different":
        return (f"{pair} differ in {name} by more than the margin ({core}, outside "
                f"{_margin_text(metric, margin)}; {test} {_p(row['p_difference_adj'])} ({corr}), "
                f"n = {row['n']})")
    reason = f"; {row['note']}" if row["note"] else ""
    return (f"it is not settled whether {pair} are equivalent within {_margin_text(metric, margin)} "
            f"({core}, TOST {_p(row['p_equivalence_adj'])}, {test} {_p(row['p_difference_adj'])} "
            f"({corr}), n = {row['n']}{reason})")


def _sensitivity_clause(rows: dict, metric: str, margin: float, alpha: float, corr: str) -> tuple[str, str]:
    """(clause appended to the main sentence, assay-sensitivity sentence)."""
    arms = [arm for arm in ("explicit", "loss") if ("none", arm) in rows]
    if not arms:
        return "", "Assay sensitivity cannot be judged here: there is no `none` arm to compare with."
    higher = HIGHER_IS_BETTER.get(metric)
    found = {}
    for arm in arms:
        row = rows[("none", arm)]
        gain = -row["mean_diff"]  # arm minus none
        detected = row["p_difference_adj"] < alpha
        found[arm] = (gain, detected, row)
    def direction(g):
        if higher is None:
            return "differs from"
        return "beats" if (g > 0) == higher else "is worse than"
    detected_arms = [a for a in arms if found[a][1]]
    dirs = {direction(found[a][0]) for a in arms}
    if len(arms) == 2 and len(detected_arms) == 2 and len(dirs) == 1:
        d = dirs.pop()
        verb = {"beats": "beat", "is worse than": "are worse than", "differs from": "differ from"}[d]
        least = min(abs(found[a][0]) for a in arms)
        clause = f"both {verb} no smoothing by ≥ {_amount(least, metric, margin, signed=False)}"
    else:
        parts = []
        for arm in arms:
            gain, detected, row = found[arm]
            if detected:
                parts.append(f"{arm} {direction(gain)} no smoothing by "
                             f"{_amount(abs(gain), metric, margin, signed=False)} "
                             f"({_p(row['p_difference_adj'])}, {corr})")
            elif row["verdict"] == "equivalent":
                parts.append(f"{arm} is equivalent to no smoothing within {_margin_text(metric, margin)} "
                             f"(TOST {_p(row['p_equivalence_adj'])}, {corr})")
            else:
                parts.append(f"{arm} does not differ detectably from no smoothing "
                             f"({_p(row['p_difference_adj'])}, {corr})")
        clause = "; ".join(parts)
    if len(detected_arms) == len(arms):
        which = "both smoothing arms differ" if len(arms) == 2 else f"{arms[0]} differs"
        assay = f"Assay sensitivity: {which} from no smoothing, so this design detects effects of this size."
    elif detected_arms:
        assay = (f"Assay sensitivity: only {detected_arms[0]} differs detectably from no smoothing; "
                 f"read an equivalence verdict here with that in mind.")
    else:
        assay = ("Assay sensitivity is weak: no smoothing arm differs detectably from no smoothing, "
                 "so an equivalence verdict here says little.")
    return clause, assay


def _power_sentence(row: Mapping, sd: float, alpha: float) -> str:
    metric, margin = row["metric"], row["margin"]
    needed = row["seeds_needed"]
    if pd.isna(needed):
        if not np.isfinite(sd):
            return "Power: too few pairs to estimate the SD of the differences."
        return (f"Power: with the observed SD of the paired differences "
                f"({_amount(sd, metric, margin, signed=False)}), more than 100000 seeds would be "
                f"needed for {TARGET_POWER:.0%} power at {_margin_text(metric, margin)}.")
    return (f"Power: with the observed SD of the paired differences "
            f"({_amount(sd, metric, margin, signed=False)}), {int(needed)} seeds give "
            f"{TARGET_POWER:.0%} power to show equivalence within {_margin_text(metric, margin)} "
            f"at α = {alpha:g} ({row['n']} were used).")


def _floor_sentence(floor: pd.DataFrame, key, eps, metric, margin, mean_abs) -> str:
    if floor.empty:
        return ""
    f = floor[(floor["backend"] == key[0]) & (floor["dataset"] == key[1]) & (floor["model"] == key[2])
              & (floor["metric"] == metric)
              & ((floor["arm"] == "none") | (floor["smoothing"] == eps))]
    if f.empty:
        return ""
    pairs = int(f["n_pairs"].sum())
    mean = float((f["mean_abs_diff"] * f["n_pairs"]).sum() / pairs)
    text = (f"Nondeterminism floor: re-running a seed with the same arm changed "
            f"{_METRIC_NAMES.get(metric, metric)} by {_amount(mean, metric, margin, signed=False)} "
            f"on average (max {_amount(float(f['max_abs_diff'].max()), metric, margin, signed=False)}, "
            f"{pairs} re-runs)")
    if np.isfinite(mean_abs):
        text += f"; explicit and loss differ by {_amount(mean_abs, metric, margin, signed=False)} on average"
    return text + "."


def markdown(
    comparisons: Comparisons,
    *,
    alpha: float | None = None,
    correction: Correction | None = None,
) -> str:
    """The comparisons section of report.md, as Markdown text.

    One heading per backend / dataset / model / smoothing group and one bullet per
    metric: the explicit-vs-loss verdict as a sentence with its numbers, how each
    smoothing arm compares with ``none`` (assay sensitivity), ``seeds_needed`` and the
    nondeterminism floor when seeds were repeated; then the cross-backend (Welch) rows
    and the notes. Accuracy is shown in percentage points, other metrics in their
    units. ``alpha`` and ``correction`` default to the ones the table was built with;
    passing different ones is an error, because the verdicts depend on them.
    """
    for name, given, built in (("alpha", alpha, comparisons.alpha),
                               ("correction", correction, comparisons.correction)):
        if given is not None and given != built:
            raise InputError(f"`{name}` = {given!r} differs from the {built!r} the comparisons "
                             f"were built with; call compare_runs again with it")
    alpha, corr = comparisons.alpha, _CORRECTION_NAME[comparisons.correction]
    conf = int(round(100 * (1 - 2 * alpha)))
    t, d = comparisons.table, comparisons.details
    margins = ", ".join(_margin_text(m, v) for m, v in comparisons.margins.items())
    lines = ["## Comparisons", "",
             f"Equivalence margins: {margins}. α = {alpha:g}; p-values are adjusted by {corr} over "
             f"all {len(t)} rows of comparisons.csv, separately for equivalence (TOST) and "
             f"difference tests. Intervals are {conf}% t-intervals of the paired difference "
             f"(first arm minus second); equivalence holds when the interval lies inside the margin.",
             ""]
    if t.empty:
        lines += ["No comparison could be made from these runs.", ""]
    paired = t[~_cross(t)]
    groups = paired[["backend", "dataset", "model", "smoothing"]].drop_duplicates()
    for key_row in groups.itertuples(index=False):
        key, eps = (key_row.backend, key_row.dataset, key_row.model), key_row.smoothing
        lines += [f"### {_label(*key, eps)}", ""]
        in_group = paired[(paired["backend"] == key[0]) & (paired["dataset"] == key[1])
                          & (paired["model"] == key[2]) & (paired["smoothing"] == eps)]
        for metric in dict.fromkeys(in_group["metric"]):
            sub = in_group[in_group["metric"] == metric]
            rows = {(r["arm_a"], r["arm_b"]): r for r in sub.to_dict("records")}
            idx = {(r.arm_a, r.arm_b): i for i, r in zip(sub.index, sub.itertuples())}
            margin = float(sub["margin"].iloc[0])
            clause, assay = _sensitivity_clause(rows, metric, margin, alpha, corr)
            name = _METRIC_NAMES.get(metric, metric)
            if ("explicit", "loss") in rows:
                main = rows[("explicit", "loss")]
                i = idx[("explicit", "loss")]
                text = f"On {_label(*key)}, " + _sentence(main, conf, corr)
                text += f"; {clause}." if clause else "."
                extra = [assay, _power_sentence(main, float(d["sd_diff"].iloc[i]), alpha),
                         _floor_sentence(comparisons.floor, key, eps, metric, margin,
                                         float(d["mean_abs_diff"].iloc[i]))]
            else:
                text = (f"On {_label(*key)} there is no explicit-vs-loss pair for {name}"
                        + (f"; {clause}." if clause else "."))
                extra = [assay] + [_capital(_sentence(r, conf, corr)) + "." for r in rows.values()]
            lines.append(f"- **{name}**: " + text + " " + " ".join(e for e in extra if e))
        lines.append("")
    for heading, rows_here in (("Across backends (paired: shared initial weights)",
                                t[_cross(t) & (t["test"] != "welch_t")]),
                               ("Across backends (unpaired, Welch)", t[t["test"] == "welch_t"])):
        lines += _across_lines(heading, rows_here, conf, corr)
    if comparisons.notes:
        lines += ["### Notes", ""] + [f"- {n}" for n in comparisons.notes] + [""]
    return "\n".join(lines)


def _across_lines(heading: str, rows: pd.DataFrame, conf: int, corr: str) -> list[str]:
    """One bullet per backend-vs-backend row, paired (shared weights) or Welch."""
    lines: list[str] = []
    if not rows.empty:
        lines += [f"### {heading}", ""]
        for r in rows.to_dict("records"):
            backends = r["backend"].split(" vs ")
            metric, margin = r["metric"], r["margin"]
            where = _label("-", r["dataset"], r["model"], r["smoothing"] if r["arm_a"] != "none" else None)
            subject = f"{backends[0]} vs {backends[1]} ({r['arm_a']} arm)"
            ci = (f"{conf}% CI [{_num(r['ci_low'], metric, margin)}, {_num(r['ci_high'], metric, margin)}]")
            welch = r["test"] == "welch_t"
            test = "Welch" if welch else r["test"].replace("_", " ")
            nums = (f"mean difference {backends[0]} − {backends[1]} {_amount(r['mean_diff'], metric, margin)}, "
                    f"{ci}, TOST {_p(r['p_equivalence_adj'])}, {test} {_p(r['p_difference_adj'])} ({corr})")
            state = {"identical": "identical on every seed",
                     "equivalent": f"equivalent within {_margin_text(metric, margin)}",
                     "different": f"different by more than {_margin_text(metric, margin)}",
                     }.get(r["verdict"], f"inconclusive at {_margin_text(metric, margin)}")
            counts = (r["note"].split(";")[0].removeprefix("unpaired (Welch): ") if welch
                      else f"{r['n']} seed pairs from shared initial weights")
            lines.append(f"- **{_METRIC_NAMES.get(metric, metric)}**, {where}: {subject}: {state} "
                         f"({nums}; {counts}).")
        lines.append("")
    return lines
