"""The comparisons table (``comparisons.csv``) and its report.md section.

:func:`compare_runs` turns a per-run table (one row per run; columns ``backend,
dataset, model, arm, smoothing, seed``, optional ``repeat`` and ``status``, plus
metric columns) into one row per comparison, with the statistics of
:mod:`ablate.analysis.stats`. The rows, per metric that has a margin:

* **paired** (within one backend / dataset / model / smoothing, paired by seed, repeat
  0 only), one row per pair of arms ``(arm_a, arm_b)``. Arm names are free text; the
  pairs are given (``pairs=``, ``report --compare A:B``) or default to every pair of
  arms present, reference arms first (see below), then the others, each in sorted
  order; ``arm_a`` is the earlier. An arm whose rows all have smoothing 0 is
  *flat*: it is paired with every smoothing value of the other arm, and the row carries
  that value. Two smoothed arms are paired at each smoothing value both have. Seeds
  missing from one side are dropped with a note. ``p_difference`` comes from the paired
  t-test or, under the rule of :func:`ablate.analysis.stats.choose_difference_test`,
  the Wilcoxon signed-rank test.
* **reference arms** (the baseline that assay sensitivity is judged against): the
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
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from ablate import tricks
from ablate.analysis import stats
from ablate.config import CORRECTIONS, PAIRINGS
from ablate.errors import InputError

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
REQUIRED = ("arm", "seed")
OPTIONAL_DEFAULTS: Mapping[str, object] = MappingProxyType(
    {"backend": "-", "dataset": "-", "model": "-", "smoothing": 0.0, "repeat": 0,
     "pairing": "within-backend"})
CROSS_PAIRED_NOTE = "paired by seed: both backends started from shared initial weights (pairing: cross-backend)"
# Columns of runs.csv that are bookkeeping, never metrics.
# The seed of each source of randomness in a factorial design (`seeds: {init: 4, ...}`).
SOURCE_COLUMNS = ("init", "order", "augment", "split")
NON_METRIC = frozenset({*REQUIRED, *OPTIONAL_DEFAULTS, *SOURCE_COLUMNS, "status", "run_id", "started_at",
                        "finished_at", "seconds", "error", "method", "params", "trick", "_row",
                        "temperature_at_bound", "classes"})
# The word every at-chance note and sentence carries (see _chance_note).
CHANCE = "chance"
# A run whose fitted temperature sits at its search bound has these left empty by the report.
BOUND_NOTE = "temperature at its search bound"
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


def _where(df: pd.DataFrame, index) -> str:
    """Where a row is, for messages: its 1-based data row (CSV line - 1), arm and seed."""
    row = df.loc[index]
    place = int(row["_row"]) if "_row" in df.columns else df.index.get_loc(index) + 1
    parts = [f"arm {str(row['arm']).strip()!r}" if "arm" in df.columns and pd.notna(row["arm"]) else "",
             f"seed {row['seed']}" if "seed" in df.columns else ""]
    extra = ", ".join(p for p in parts if p)
    return f"data row {place}" + (f" ({extra})" if extra else "")


def _text_columns(df: pd.DataFrame) -> dict[str, str]:
    """Columns that are neither bookkeeping nor numeric -> an example of a non-number and where."""
    out = {}
    for column in df.columns:
        if column in NON_METRIC or pd.api.types.is_numeric_dtype(df[column]):
            continue
        bad = pd.to_numeric(df[column], errors="coerce").isna() & df[column].notna()
        if bad.any():
            first = df.index[bad][0]
            out[column] = f"{df.loc[first, column]!r} in {_where(df, first)}"
    return out


def _metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in NON_METRIC and pd.api.types.is_numeric_dtype(df[c])]


def _normalise(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Validated copy with every optional column present and typed."""
    df = df.rename(columns=lambda c: str(c).strip())
    allowed = (f"required: {', '.join(REQUIRED)} and at least one numeric metric column; "
               f"optional: {', '.join([*OPTIONAL_DEFAULTS, 'status'])}")
    if "seed" not in df.columns and any(c in df.columns for c in SOURCE_COLUMNS):
        df = df.assign(seed=np.nan)  # the cells of the source columns become the seeds (_source_cells)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        _fail(source, f"missing column(s) {', '.join(missing)}; {allowed}; "
                      f"got {', '.join(map(str, df.columns)) or 'no columns'}")
    dupes = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dupes:
        _fail(source, f"duplicate column(s) {', '.join(dupes)}; {allowed}")
    df = df.reset_index(drop=True)  # unique labels, so a row can be named in messages
    for column, default in OPTIONAL_DEFAULTS.items():
        if column not in df.columns:
            df[column] = default
    for column in ("backend", "dataset", "model"):
        df[column] = df[column].fillna("-").astype(str).str.strip().replace("", "-")
    blank = df["arm"].isna() | (df["arm"].astype(str).str.strip() == "")
    if blank.any():
        _fail(source, f"column `arm` must name an arm on every row; {_where(df, df.index[blank][0])} "
                      f"has none")
    df["arm"] = df["arm"].astype(str).str.strip()
    df["pairing"] = df["pairing"].fillna("within-backend").astype(str).str.strip()
    bad_pairing = sorted(set(df["pairing"]) - set(PAIRINGS))
    if bad_pairing:
        _fail(source, f"column `pairing` has unknown value(s) {_listing(bad_pairing)}; "
                      f"allowed: {', '.join(PAIRINGS)}")
    df = _source_cells(df, source)
    df["seed"] = _as_number(df, "seed", source, integer=True)
    df["repeat"] = _as_number(df, "repeat", source, integer=True)
    if (df["repeat"] < 0).any():
        given = _listing(df.loc[df["repeat"] < 0, "repeat"].unique())
        _fail(source, f"column `repeat` must be >= 0; got {given}")
    # An empty smoothing cell means no smoothing (e.g. a baseline arm's row).
    df["smoothing"] = _as_number(df.assign(smoothing=df["smoothing"].fillna(0.0)), "smoothing", source,
                                 integer=False)
    out_of_range = (df["smoothing"] < 0) | (df["smoothing"] >= 1)
    if out_of_range.any():
        given = _listing(df.loc[out_of_range, "smoothing"].unique())
        _fail(source, f"column `smoothing` must be in [0, 1); got {given}")
    if "status" in df.columns:
        df["status"] = df["status"].astype(str).str.strip()
    for column in [c for c in df.columns if c not in NON_METRIC]:
        if pd.api.types.is_numeric_dtype(df[column]):
            continue
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() & df[column].notna()
        if not bad.any():  # numbers stored as text, or an empty column
            df[column] = values.astype(np.float64)
        elif column in KNOWN_METRICS:
            _fail(source, f"metric column `{column}` must be numeric; got {_listing(df.loc[bad, column].unique())}"
                          f" (e.g. {_where(df, df.index[bad][0])})")
    if not _metric_columns(df):
        _fail(source, f"no numeric metric column (e.g. {', '.join(KNOWN_METRICS)}); {allowed}; "
                      f"got {', '.join(map(str, df.columns))}")
    return df


def normalise_runs(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """A per-run table read elsewhere (e.g. from MLflow), validated as :func:`load_runs_table` does."""
    return _normalise(df, source)
def _source_cells(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check the source columns (init, order, augment, split) of a table that has them.

    They must hold integers >= 0 on every row. Without a ``seed`` column each distinct
    combination becomes one cell, numbered in sorted order as ``seed``, so arms pair on
    the whole cell; with one, ``seed`` must name one combination.
    """
    present = [c for c in SOURCE_COLUMNS if c in df.columns and df[c].notna().any()]
    if not present:
        return df
    for column in present:
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() | (values != np.round(values)) | (values < 0)
        if bad.any():
            _fail(source, f"source column `{column}` must hold integer seeds >= 0 on every row; got "
                          f"{_listing(df.loc[bad, column].unique())} ({_where(df, df.index[bad][0])})")
        df[column] = values.astype(np.int64)
    if df["seed"].isna().all():
        cells = df[present].drop_duplicates().sort_values(present).reset_index(drop=True)
        cells["seed"] = np.arange(len(cells))
        return df.drop(columns=["seed"]).merge(cells, on=present, how="left")
    per_seed = df.groupby(df["seed"].astype(str))[present].nunique()
    split = per_seed[(per_seed > 1).any(axis=1)]
    if len(split):
        _fail(source, f"column `seed` must name one cell of the source columns {', '.join(present)}, but seed "
                      f"{split.index[0]} has several; leave `seed` out to pair arms on the sources")
    return df


def load_runs_table(path) -> pd.DataFrame:
    """Read a user-made per-run CSV for ``ablate report --runs FILE.csv``.

    Required columns: ``arm`` (any name, on every row), ``seed`` (integers) and at least
    one numeric metric column. Optional: ``backend, dataset, model`` (default "-"),
    ``smoothing`` (default 0, an empty cell is 0, in [0, 1)), ``repeat`` (default 0) and
    ``status`` (only "completed" rows are analysed). Columns holding text are kept (the
    comparison notes them as not compared). Any problem raises :class:`InputError` with one line
    naming the file, the columns, what is allowed and what was given.
    """
    from ablate.analysis.escape import read_csv

    path = Path(path)
    try:
        df = read_csv(path)  # cells ablate neutralised for spreadsheets read back to the names
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


def _check_finite_moments(df: pd.DataFrame, metric: str) -> None:
    """Refuse a metric whose mean or spread overflows in some cell and arm (e.g. values of ±1e308).

    Each value is finite, yet their sum or squares are not: every statistic built on them would
    be inf or NaN and read as "too few pairs". One line names the metric, the arm and the cell.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        for cell, group in df.groupby(list(CELL), sort=True, dropna=False):
            values = group[metric].dropna().to_numpy(dtype=np.float64)
            if not len(values):
                continue
            mean = float(np.mean(values))
            spread = float(np.std(values)) if math.isfinite(mean) else math.nan
            if math.isfinite(mean) and math.isfinite(spread):
                continue
            what = "mean" if not math.isfinite(mean) else "standard deviation"
            value = mean if not math.isfinite(mean) else spread
            where = _label(*cell[:3], cell[4] if cell[4] else None)
            raise InputError(f"runs table: the {what} of `{metric}` for arm {cell[3]!r} ({where}) is {value} "
                             f"although each value is finite (largest |value| {np.max(np.abs(values)):.3g}); "
                             f"metric values this large overflow: rescale the column")


def _label(backend: str, dataset: str, model: str, smoothing: float | None = None) -> str:
    parts = [p for p in (backend, dataset, model) if p != "-"]
    text = " / ".join(parts) if parts else "all runs"
    return text if smoothing is None else f"{text}, ε = {smoothing:g}"


def _by_seed(frame: pd.DataFrame, metric: str) -> pd.Series:
    return frame.set_index("seed")[metric].sort_index()


def _at_bound(side: pd.DataFrame, seeds) -> np.ndarray:
    """(len(seeds),) bool: the side's run at each seed has ``temperature_at_bound`` set."""
    if "temperature_at_bound" not in side:
        return np.zeros(len(seeds), bool)
    flags = side.set_index("seed")["temperature_at_bound"].map(truthy)
    return flags.reindex(seeds).fillna(False).to_numpy(dtype=bool)


def truthy(value) -> bool:
    """A flag cell as written to runs.csv and read back: True/False, "True"/"False", 1/0, empty."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False


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


def _cross(table: pd.DataFrame) -> pd.Series:
    """Rows comparing two backends (``backend`` holds "<a> vs <b>"), paired or Welch."""
    return table["backend"].astype(str).str.contains(" vs ", regex=False)


def _verdict(row, identical: bool, alpha: float, correction: str,
             constant: bool = False) -> tuple[str, list[str]]:
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
    if correction not in _CORRECTION_NAME:
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
    metric_cols = _metric_columns(df)
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


def _arm_roles(df: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
    """(arms with references first, reference arms, flat arms) of an analysed table."""
    seen = sorted(set(df["arm"]))  # sorted: the table's row order must not matter
    flat = [a for a in seen if (df.loc[df["arm"] == a, "smoothing"] == 0).all()]
    references_by_trick = tricks.reference_names()  # the registry marks them (plain cross-entropy)
    if "method" in df and df["method"].isin(references_by_trick).any():
        # ablate's own runs name each arm's trick: the reference is plain cross-entropy, however many
        # other arms (mixup, focal, ...) also leave the labels unsmoothed.
        references = [a for a in seen if df.loc[df["arm"] == a, "method"].isin(references_by_trick).all()]
    elif len(flat) < len(seen):
        references = flat
    else:  # nothing is smoothed: only a name can say which arm is the baseline
        references = [a for a in seen if a in references_by_trick]
    return references + [a for a in seen if a not in references], references, flat


def _check_pairs(pairs, arms: list[str], known: list[str]) -> list[tuple[str, str]]:
    if pairs is None:
        return [(a, b) for i, a in enumerate(arms) for b in arms[i + 1:]]
    out = []
    for pair in pairs:
        try:
            a, b = (str(x).strip() for x in pair)
        except (TypeError, ValueError):
            raise InputError(f"--compare: expected a pair of arms A:B, but got {pair!r}") from None
        for arm in (a, b):
            if arm not in known:
                raise InputError(f"--compare {a}:{b}: no arm {arm!r} in the runs table; "
                                 f"arms: {', '.join(known)}")
        if a == b:
            raise InputError(f"--compare {a}:{b}: expected two different arms")
        out.append((a, b))
    return list(dict.fromkeys(out))


def _pair_sides(group: pd.DataFrame, a: str, b: str, flat: set[str]):
    """(eps, rows of a, rows of b) for each smoothing value at which a and b are paired."""
    side_a, side_b = group[group["arm"] == a], group[group["arm"] == b]
    if side_a.empty or side_b.empty:
        return []
    if a in flat and b in flat:
        return [(0.0, side_a, side_b)]
    if a in flat:
        return [(e, side_a, side_b[side_b["smoothing"] == e]) for e in sorted(side_b["smoothing"].unique())]
    if b in flat:
        return [(e, side_a[side_a["smoothing"] == e], side_b) for e in sorted(side_a["smoothing"].unique())]
    common = sorted(set(side_a["smoothing"]) & set(side_b["smoothing"]))
    return [(e, side_a[side_a["smoothing"] == e], side_b[side_b["smoothing"] == e]) for e in common]


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
    df = _normalise(pd.DataFrame(runs), "runs table")
    df["_row"] = np.arange(1, len(df) + 1)
    text = _text_columns(df)
    known = list(dict.fromkeys(df["arm"]))
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
    margins, sd_margin = _sd_margin(margins)
    used = _resolve_margins(df, margins, notes, text)
    for metric in _metric_columns(df):  # all of them: the summary table reads more than `used`
        infinite = np.isinf(df[metric].to_numpy(dtype=np.float64))
        if infinite.any():
            first = df.index[infinite][0]
            raise InputError(f"runs table: column `{metric}` holds {df.loc[first, metric]} in "
                             f"{_where(df, first)}; metric values must be finite "
                             f"(leave the cell empty for a missing value)")
        _check_finite_moments(df, metric)
    arms, references, flat = _arm_roles(df)
    chosen = _check_pairs(pairs, arms, known)
    base = df[df["repeat"] == 0]

    rows, details, row_notes, identical, constant = [], [], [], [], []
    acc_margin = used.get("accuracy", DEFAULT_MARGINS["accuracy"])
    for metric, margin in used.items():
        for key, cell in base.groupby(["backend", "dataset", "model"], sort=True):
            tasks = [(eps, i, a, b, sa, sb) for i, (a, b) in enumerate(chosen)
                     for eps, sa, sb in _pair_sides(cell, a, b, set(flat))]
            for eps, _, arm_a, arm_b, side_a, side_b in sorted(tasks, key=lambda t: (t[0], t[1])):
                if side_a.empty or side_b.empty:
                    continue
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
    links = (~_cross(table) & (ref_a != ref_b)).to_numpy()
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


def _arm_name(arm: str) -> str:
    """An arm named after a reference trick is called by the trick's phrase ("no smoothing");
    any other arm by its name."""
    return tricks.get(arm).phrase if arm in tricks.reference_names() else arm


def _smoothing_arms() -> frozenset[str]:
    """Arm names that pair as "A and B smoothing": smoothing tricks whose phrase is "<name> smoothing"."""
    return frozenset(n for n in tricks.smoothing_names() if tricks.get(n).phrase == f"{n} smoothing")


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
    smoothing = _smoothing_arms()
    if a in smoothing and b in smoothing:
        return f"{a} and {b} smoothing"
    if a in tricks.reference_names() and b in smoothing:
        return f"{_arm_name(a)} and {b} smoothing"
    return f"{_arm_name(a)} and {_arm_name(b)}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(row: Mapping, conf: int, corr: str) -> str:
    """One comparison in words; the words follow the verdict (no claim without one)."""
    metric, margin = row["metric"], row["margin"]
    pair = _pair_phrase(row["arm_a"], row["arm_b"])
    name = _METRIC_NAMES.get(metric, metric)
    ci = (f"{conf}% CI [{_num(row['ci_low'], metric, margin)}, "
          f"{_num(row['ci_high'], metric, margin)}]")
    core = f"mean difference {_amount(row['mean_diff'], metric, margin)}, {ci}"
    test = row["test"].replace("_", " ")
    verdict = row["verdict"]
    vacuous = _vacuous(row)
    if verdict == "identical":
        return (f"{pair} gave identical {name} on all {row['n']} seeds (every paired difference is zero)"
                + vacuous)
    if row["n"] < MIN_PAIRS:
        return (f"with only {row['n']} pair(s) (fewer than {MIN_PAIRS}) there is no verdict on {pair} "
                f"({core}; no test is interpreted, n = {row['n']})")
    if row.get("constant"):
        where = "inside" if verdict == "equivalent" else "outside"
        state = "are equivalent" if verdict == "equivalent" else f"differ in {name} by more than the margin"
        return (f"{pair} {state}: every seed gives the same difference, "
                f"{_amount(row['mean_diff'], metric, margin)} ({where} {_margin_text(metric, margin)}; zero "
                f"variance, so no test and no effect size, n = {row['n']})"
                + (vacuous if verdict == "equivalent" else ""))
    if verdict == "equivalent":
        text = (f"{pair} are equivalent within {_margin_text(metric, margin)} ({core}, "
                f"TOST {_p(row['p_equivalence_adj'])} ({corr}), n = {row['n']})")
        if "different but practically equivalent" in row["note"]:
            text += (f"; the difference is statistically significant ({test} "
                     f"{_p(row['p_difference_adj'])}, {corr}) but practically negligible")
        return text + vacuous
    if verdict == "different":
        tested = f"{test} {_p(row['p_difference_adj'])} ({corr}), n = {row['n']}"
        if _beyond(row):
            return (f"{pair} differ in {name} by more than the margin ({core}, outside "
                    f"{_margin_text(metric, margin)}; {tested})")
        return (f"{pair} differ in {name} ({core}; {tested}); the CI reaches inside "
                f"{_margin_text(metric, margin)}, so the difference may be smaller than the margin")
    reason = f"; {row['note']}" if row["note"] else ""
    return (f"it is not settled whether {pair} are equivalent within {_margin_text(metric, margin)} "
            f"({core}, TOST {_p(row['p_equivalence_adj'])}, {test} {_p(row['p_difference_adj'])} "
            f"({corr}), n = {row['n']}{reason})")


def _vacuous(row: Mapping) -> str:
    """The clause that follows an equivalent or identical verdict of two arms at chance accuracy."""
    if f"at {CHANCE} accuracy" not in str(row.get("note", "")):
        return ""
    return (f", but both arms sit at {CHANCE} accuracy (see the note), so the models did not learn and "
            f"this agreement says nothing about the arms")
def _band(row: Mapping) -> str:
    m = row["sd_margin"]
    return f"[{1 / m:.2f}, {m:g}]"


def _ratio_text(x: float) -> str:
    return "n/a" if not np.isfinite(x) else ("∞" if math.isinf(x) else f"{x:.2f}")


def _spread_state(row: Mapping, corr: str) -> str:
    """The spread verdict of one row in words (no claim without a verdict)."""
    verdict, band = row["sd_verdict"], _band(row)
    test = "Pitman–Morgan" if row["sd_test"] == "pitman_morgan" else "F test"
    if row["n"] < MIN_PAIRS:
        return f"no verdict with fewer than {MIN_PAIRS} pairs"
    if verdict == "identical":
        if row["sd_a"] == 0 and row["sd_b"] == 0 or not np.isfinite(row["sd_ratio"]):
            return "identical: neither arm varies across seeds"
        return "identical: the paired values are equal"
    if verdict == "equivalent":
        return f"equal within {band} (TOST {_p(row['p_sd_equivalence_adj'])}, {corr})"
    if verdict == "different":
        if row["sd_ratio_low"] >= row["sd_margin"] or row["sd_ratio_high"] <= 1 / row["sd_margin"]:
            return f"different: the whole interval lies outside {band} ({test} {_p(row['p_sd_difference_adj'])}, {corr})"
        return (f"different ({test} {_p(row['p_sd_difference_adj'])}, {corr}), though the interval reaches "
                f"inside {band}")
    return (f"not settled within {band} (TOST {_p(row['p_sd_equivalence_adj'])}, {test} "
            f"{_p(row['p_sd_difference_adj'])}, {corr})")


def _spread_numbers(row: Mapping, conf: int, a: str, b: str) -> str:
    metric, margin = row["metric"], row["margin"]
    how = "Pitman–Morgan, paired" if row["sd_test"] == "pitman_morgan" else "F, unpaired"
    return (f"seed-to-seed SD {_amount(row['sd_a'], metric, margin, signed=False)} ({a}) vs "
            f"{_amount(row['sd_b'], metric, margin, signed=False)} ({b}), ratio {_ratio_text(row['sd_ratio'])} "
            f"({conf}% CI [{_ratio_text(row['sd_ratio_low'])}, {_ratio_text(row['sd_ratio_high'])}], {how})")


def _spread_sentence(row: Mapping, conf: int, corr: str) -> str:
    """The spread of a main pair, then what mean and spread say together."""
    text = (f"Spread: {_spread_numbers(row, conf, row['arm_a'], row['arm_b'])}: "
            f"{_spread_state(row, corr)}.")
    mean_ok = row["verdict"] in ("equivalent", "identical")
    spread_ok = row["sd_verdict"] in ("equivalent", "identical")
    pair = _pair_phrase(row["arm_a"], row["arm_b"])
    if row["n"] < MIN_PAIRS:
        return text
    if mean_ok and spread_ok:
        return text + f" So {pair} have equal means and equal spread within the margins."
    if mean_ok:
        state = "differs" if row["sd_verdict"] == "different" else "is not shown to be equal"
        return text + (f" The means are equivalent but the spread {state}, so equal means alone do not "
                       f"make {pair} interchangeable.")
    return text


def _beyond(row: Mapping) -> bool:
    """The whole CI lies beyond the margin: only then is 'more than the margin' a claim."""
    return bool(row["ci_low"] >= row["margin"] or row["ci_high"] <= -row["margin"])


def _detected(row: Mapping, alpha: float) -> bool:
    """A difference from the reference counts only with a verdict behind it (>= MIN_PAIRS)."""
    if row["n"] < MIN_PAIRS or row["verdict"] == "identical":
        return False
    if row.get("constant"):
        return row["mean_diff"] != 0
    return bool(row["p_difference_adj"] < alpha)


def _sensitivity_clause(rows: dict, references, metric: str, margin: float, alpha: float,
                        corr: str, smoothed: bool = True) -> tuple[str, str]:
    """(clause appended to the main sentence, assay-sensitivity sentence).

    rows: {(arm_a, arm_b): row} of one group and metric; the links are the rows with
    exactly one reference arm (either side). smoothed: whether any arm is smoothed
    (without one, the missing reference is not worth a sentence).
    """
    links = [k for k in rows if (k[0] in references) != (k[1] in references)]
    # (reference, other arm, gain = other minus reference) per link
    role = {k: (k[0], k[1], -rows[k]["mean_diff"]) if k[0] in references
            else (k[1], k[0], rows[k]["mean_diff"]) for k in links}
    if not links:
        if not smoothed:
            return "", ""
        return "", ("Assay sensitivity cannot be judged here: there is no arm without smoothing "
                    "to compare with.")
    refs = list(dict.fromkeys(role[k][0] for k in links))
    ref_text = _arm_name(refs[0]) if len(refs) == 1 else "the reference arms"
    higher = HIGHER_IS_BETTER.get(metric)

    def direction(g):
        if higher is None:
            return "differs from"
        return "beats" if (g > 0) == higher else "is worse than"

    found = {k: (role[k][2], _detected(rows[k], alpha), rows[k]) for k in links}
    detected = [k for k in links if found[k][1]]
    few = [k for k in links if rows[k]["n"] < MIN_PAIRS]
    dirs = {direction(found[k][0]) for k in links}
    if len(links) >= 2 and len(refs) == 1 and len(detected) == len(links) and len(dirs) == 1:
        d = dirs.pop()
        verb = {"beats": "beat", "is worse than": "are worse than", "differs from": "differ from"}[d]
        least = min(abs(found[k][0]) for k in links)
        which = "both" if len(links) == 2 else f"all {len(links)}"
        clause = f"{which} {verb} {ref_text} by ≥ {_amount(least, metric, margin, signed=False)}"
    else:
        parts = []
        for k in links:
            gain, hit, row = found[k]
            ref, arm = _arm_name(role[k][0]), role[k][1]
            if row["n"] < MIN_PAIRS:
                parts.append(f"{arm} vs {ref}: only {row['n']} pair(s), no verdict")
            elif row["verdict"] == "identical":
                parts.append(f"{arm} gives the same {_METRIC_NAMES.get(metric, metric)} as {ref}")
            elif hit and row.get("constant"):
                parts.append(f"{arm} {direction(gain)} {ref} by "
                             f"{_amount(abs(gain), metric, margin, signed=False)} on every seed")
            elif hit:
                parts.append(f"{arm} {direction(gain)} {ref} by "
                             f"{_amount(abs(gain), metric, margin, signed=False)} "
                             f"({_p(row['p_difference_adj'])}, {corr})")
            elif row["verdict"] == "equivalent":
                parts.append(f"{arm} is equivalent to {ref} within {_margin_text(metric, margin)} "
                             f"(TOST {_p(row['p_equivalence_adj'])}, {corr})")
            else:
                parts.append(f"{arm} does not differ detectably from {ref} "
                             f"({_p(row['p_difference_adj'])}, {corr})")
        clause = "; ".join(parts)
    compared = [role[k][1] for k in links]
    noun = "smoothing arms" if all(a in _smoothing_arms() for a in compared) else "compared arms"
    at_chance = [k for k in rows if f"at {CHANCE} accuracy" in str(rows[k].get("note", ""))]
    if at_chance:
        arms = list(dict.fromkeys(a for k in at_chance for a in k))
        assay = (f"Assay sensitivity fails here: {', '.join(arms)} sit at {CHANCE} accuracy (within the "
                 f"accuracy margin of 1/K), so the models did not learn and no equivalence or identity "
                 f"verdict of this group says anything about the arms.")
    elif few:
        n_few = min(rows[k]["n"] for k in few)
        assay = (f"Assay sensitivity cannot be judged here: only {n_few} pair(s) against {ref_text} "
                 f"(fewer than {MIN_PAIRS}).")
    elif len(detected) == len(links):
        which = (compared[0] + " differs" if len(links) == 1
                 else ("both " if len(links) == 2 else f"all {len(links)} ") + noun + " differ")
        assay = f"Assay sensitivity: {which} from {ref_text}, so this design detects effects of this size."
    elif detected:
        assay = (f"Assay sensitivity: only {', '.join(role[k][1] for k in detected)} differs detectably from "
                 f"{ref_text}; read an equivalence verdict here with that in mind.")
    else:
        assay = (f"Assay sensitivity is weak: no compared arm differs detectably from {ref_text}, "
                 f"so an equivalence verdict here says little.")
    return clause, assay


def _power_sentence(row: Mapping, sd: float, alpha: float) -> str:
    """seeds_needed and seeds_needed_observed in words, each with its assumption."""
    metric, margin = row["metric"], row["margin"]
    if not np.isfinite(sd):
        return "Power: too few pairs to estimate the SD of the differences."
    goal = f"{TARGET_POWER:.0%} power to show equivalence within {_margin_text(metric, margin)} at α = {alpha:g}"
    needed, observed = row["seeds_needed"], row.get("seeds_needed_observed")
    if pd.isna(needed):
        equal = f"if the arms were truly equal, more than 100000 seeds would be needed for {goal}"
    else:
        equal = f"if the arms were truly equal, {int(needed)} seeds give {goal}"
    diff = row["mean_diff"]
    shown = _amount(diff, metric, margin)
    if np.isfinite(diff) and abs(diff) >= margin:
        real = (f"if the true difference is the observed {shown}, equivalence is not reachable with "
                f"any number of seeds, since that is at or beyond the margin")
    elif observed is None or pd.isna(observed):
        real = f"if the true difference is the observed {shown}, more than 100000 seeds would be needed"
    else:
        real = f"if the true difference is the observed {shown}, {int(observed)} seeds would be needed"
    which = ("the SD of the paired differences that the factorial implies for a seed drawing every source "
             "anew" if "factorial implies" in str(row.get("note", "")) else "the observed SD of the paired differences")
    return (f"Power (planning, with {which}, "
            f"{_amount(sd, metric, margin, signed=False)}): {equal}; {real} ({row['n']} were used).")


def _floor_sentence(floor: pd.DataFrame, key, eps, metric, margin, mean_abs, pair, flat) -> str:
    if floor.empty:
        return ""
    f = floor[(floor["backend"] == key[0]) & (floor["dataset"] == key[1]) & (floor["model"] == key[2])
              & (floor["metric"] == metric)
              & (floor["arm"].isin(list(flat)) | (floor["smoothing"] == eps))]
    if f.empty:
        return ""
    pairs = int(f["n_pairs"].sum())
    mean = float((f["mean_abs_diff"] * f["n_pairs"]).sum() / pairs)
    text = (f"Nondeterminism floor: re-running a seed with the same arm changed "
            f"{_METRIC_NAMES.get(metric, metric)} by {_amount(mean, metric, margin, signed=False)} "
            f"on average (max {_amount(float(f['max_abs_diff'].max()), metric, margin, signed=False)}, "
            f"{pairs} re-runs)")
    if np.isfinite(mean_abs):
        text += f"; {pair[0]} and {pair[1]} differ by {_amount(mean_abs, metric, margin, signed=False)} on average"
    return text + "."


def markdown(
    comparisons: Comparisons,
    *,
    alpha: float | None = None,
    correction: Correction | None = None,
) -> str:
    """The comparisons section of report.md, as Markdown text.

    One heading per backend / dataset / model / smoothing group and, per metric, one
    bullet per *main* pair (not a reference arm against a non-reference one; e.g.
    explicit vs loss): its verdict as a sentence with its numbers, how each arm compares
    with the reference arm (assay sensitivity), ``seeds_needed`` and
    ``seeds_needed_observed`` with their assumptions, and the nondeterminism floor when
    seeds were repeated. Without a main pair the bullet lists the reference rows. Then
    the cross-backend (Welch) rows and the notes. Accuracy is shown in percentage points,
    other metrics in their units. ``alpha`` and ``correction`` default to the ones the
    table was built with; passing different ones is an error, because the verdicts
    depend on them.
    """
    for name, given, built in (("alpha", alpha, comparisons.alpha),
                               ("correction", correction, comparisons.correction)):
        if given is not None and given != built:
            raise InputError(f"`{name}` = {given!r} differs from the {built!r} the comparisons "
                             f"were built with; call compare_runs again with it")
    alpha, corr = comparisons.alpha, _CORRECTION_NAME[comparisons.correction]
    conf = int(round(100 * (1 - 2 * alpha)))
    t, d = comparisons.table, comparisons.details
    refs, flat = comparisons.references, comparisons.flat
    smoothed = len(flat) < len(comparisons.arms)
    margins = ", ".join(_margin_text(m, v) for m, v in comparisons.margins.items())
    lines = ["## Comparisons", "",
             f"Equivalence margins: {margins}. α = {alpha:g}; p-values are adjusted by {corr} over "
             f"all {len(t)} rows of comparisons.csv, separately for equivalence (TOST) and "
             f"difference tests. Intervals are {conf}% t-intervals of the paired difference "
             f"(first arm minus second); equivalence holds when the interval lies inside the margin. "
             f"With fewer than {MIN_PAIRS} pairs no verdict is drawn. Seed counts for "
             f"{TARGET_POWER:.0%} power are planning figures, not promises: `seeds_needed` assumes the "
             f"arms are truly equal, `seeds_needed_observed` that the true difference is the observed one. "
             f"Spread is the ratio of the two arms' seed-to-seed SDs (first over second), with its exact "
             f"{conf}% interval (Pitman–Morgan for paired arms, F for unpaired ones); it counts as equal when "
             f"that interval lies inside [{1 / comparisons.sd_margin:.2f}, {comparisons.sd_margin:g}] "
             f"(TOST on the ratio, adjusted the same way).",
             ""]
    if t.empty:
        lines += ["No comparison could be made from these runs.", ""]
    constant = d["constant"].to_numpy(dtype=bool) if "constant" in d and len(d) == len(t) \
        else np.zeros(len(t), dtype=bool)
    paired = t[~_cross(t)]
    groups = paired[["backend", "dataset", "model", "smoothing"]].drop_duplicates()
    for key_row in groups.itertuples(index=False):
        key, eps = (key_row.backend, key_row.dataset, key_row.model), key_row.smoothing
        lines += [f"### {_label(*key, eps)}", ""]
        in_group = paired[(paired["backend"] == key[0]) & (paired["dataset"] == key[1])
                          & (paired["model"] == key[2]) & (paired["smoothing"] == eps)]
        for metric in dict.fromkeys(in_group["metric"]):
            sub = in_group[in_group["metric"] == metric]
            rows, idx = {}, {}
            for i, r in zip(sub.index, sub.to_dict("records")):
                rows[(r["arm_a"], r["arm_b"])] = {**r, "constant": bool(constant[i])}
                idx[(r["arm_a"], r["arm_b"])] = i
            margin = float(sub["margin"].iloc[0])
            clause, assay = _sensitivity_clause(rows, refs, metric, margin, alpha, corr, smoothed)
            name = _METRIC_NAMES.get(metric, metric)
            mains = [k for k in rows if (k[0] in refs) == (k[1] in refs)]
            for j, pair in enumerate(mains):
                main, i = rows[pair], idx[pair]
                text = f"On {_label(*key)}, " + _sentence(main, conf, corr)
                text += f"; {clause}." if clause and j == 0 else "."
                extra = [assay if j == 0 else "", _spread_sentence(main, conf, corr),
                         _power_sentence(main, float(d["sd_diff"].iloc[i]), alpha),
                         _floor_sentence(comparisons.floor, key, eps, metric, margin,
                                         float(d["mean_abs_diff"].iloc[i]), pair, flat)]
                head = f"**{name}**" if len(mains) == 1 else f"**{name}**, {pair[0]} vs {pair[1]}"
                lines.append(f"- {head}: " + text + " " + " ".join(e for e in extra if e))
            if not mains:
                text = f"On {_label(*key)}" + (f", {clause}." if clause else ":")
                extra = [assay] + [_capital(_sentence(r, conf, corr)) + "." for r in rows.values()]
                lines.append(f"- **{name}**: " + text + " " + " ".join(e for e in extra if e))
            links = [r for k, r in rows.items() if (k[0] in refs) != (k[1] in refs)]
            if links:
                lines.append(f"- **{name}, spread against the reference**: " + "; ".join(
                    f"{r['arm_a']} vs {r['arm_b']}: {_spread_numbers(r, conf, r['arm_a'], r['arm_b'])}, "
                    f"{_spread_state(r, corr)}" for r in links) + ".")
        lines.append("")
    for heading, rows_here in (("Across backends (paired: shared initial weights)",
                                t[_cross(t) & (t["test"] != "welch_t")]),
                               ("Across backends (unpaired, Welch)", t[t["test"] == "welch_t"])):
        lines += _across_lines(heading, rows_here, conf, corr, set(comparisons.flat))
    if comparisons.notes:
        lines += ["### Notes", ""] + [f"- {n}" for n in comparisons.notes] + [""]
    return "\n".join(lines)


def _across_lines(heading: str, rows: pd.DataFrame, conf: int, corr: str, flat: set[str]) -> list[str]:
    """One bullet per backend-vs-backend row, paired (shared weights) or Welch."""
    lines: list[str] = []
    if not rows.empty:
        lines += [f"### {heading}", ""]
        for r in rows.to_dict("records"):
            backends = r["backend"].split(" vs ")
            metric, margin = r["metric"], r["margin"]
            where = _label("-", r["dataset"], r["model"], r["smoothing"] if r["arm_a"] not in flat else None)
            subject = f"{backends[0]} vs {backends[1]} ({r['arm_a']} arm)"
            ci = (f"{conf}% CI [{_num(r['ci_low'], metric, margin)}, {_num(r['ci_high'], metric, margin)}]")
            welch = r["test"] == "welch_t"
            test = "Welch" if welch else r["test"].replace("_", " ")
            nums = (f"mean difference {backends[0]} − {backends[1]} {_amount(r['mean_diff'], metric, margin)}, "
                    f"{ci}, TOST {_p(r['p_equivalence_adj'])}, {test} {_p(r['p_difference_adj'])} ({corr})")
            state = {"identical": "identical on every seed",
                     "equivalent": f"equivalent within {_margin_text(metric, margin)}",
                     "different": (f"different by more than {_margin_text(metric, margin)}" if _beyond(r)
                                   else f"different, though the CI reaches inside {_margin_text(metric, margin)}"),
                     }.get(r["verdict"], f"inconclusive at {_margin_text(metric, margin)}")
            if r["verdict"] == "inconclusive" and r["n"] < MIN_PAIRS:
                state = f"no verdict (fewer than {MIN_PAIRS} runs on a side)"
            counts = (r["note"].split(";")[0].removeprefix("unpaired (Welch): ") if welch
                      else f"{r['n']} seed pairs from shared initial weights")
            spread = (f"Spread: {_spread_numbers(r, conf, backends[0], backends[1])}: "
                      f"{_spread_state(r, corr)}.")
            lines.append(f"- **{_METRIC_NAMES.get(metric, metric)}**, {where}: {subject}: {state} "
                         f"({nums}; {counts}). {spread}")
        lines.append("")
    return lines
