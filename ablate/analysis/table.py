"""The runs table that every comparison reads: its columns, its validation, and one rule for pairs.

A runs table has one row per run: ``arm`` and ``seed`` (required), optional ``backend, dataset,
model`` (default "-"), ``smoothing`` (default 0), ``repeat`` (default 0), ``pairing``, ``status``
and the source columns of a factorial seed design, plus metric columns. :func:`load_runs_table`
reads one from a CSV and :func:`normalise_runs` validates one read elsewhere; both refuse a bad
table with one line naming the source, the column, what is allowed and what was given.

The pair rule, shared by the fixed comparisons (:mod:`ablate.analysis.compare`) and the
sequential ones (:mod:`ablate.analysis.sequential`) so that both compare the same pairs in the
same order: :func:`arm_roles` orders the arms (reference arms first, then the others, each
sorted), :func:`check_pairs` gives every pair of them in that order (or checks the pairs a user
named), and :func:`pair_sides` says at which smoothing values two arms are paired. An arm whose
rows all have smoothing 0 is *flat*: it is paired with every smoothing value of the other arm.
The reference arms are those the tricks registry marks (plain cross-entropy) when the table
names each arm's trick (``method``); else the flat arms when some arm is smoothed; else the
arms named after a reference trick.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from ablate import tricks
from ablate.analysis.columns import CELL, KNOWN_METRICS, REQUIRED, SOURCE_COLUMNS
from ablate.config import PAIRINGS
from ablate.errors import InputError

OPTIONAL_DEFAULTS: Mapping[str, object] = MappingProxyType(
    {"backend": "-", "dataset": "-", "model": "-", "smoothing": 0.0, "repeat": 0,
     "pairing": "within-backend"})
# Columns of runs.csv that are bookkeeping, never metrics.
NON_METRIC = frozenset({*REQUIRED, *OPTIONAL_DEFAULTS, *SOURCE_COLUMNS, "status", "run_id", "started_at",
                        "finished_at", "seconds", "error", "method", "params", "trick", "_row",
                        "temperature_at_bound", "classes"})


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


def row_where(df: pd.DataFrame, index) -> str:
    """Where a row is, for messages: its 1-based data row (CSV line - 1), arm and seed."""
    row = df.loc[index]
    place = int(row["_row"]) if "_row" in df.columns else df.index.get_loc(index) + 1
    parts = [f"arm {str(row['arm']).strip()!r}" if "arm" in df.columns and pd.notna(row["arm"]) else "",
             f"seed {row['seed']}" if "seed" in df.columns else ""]
    extra = ", ".join(p for p in parts if p)
    return f"data row {place}" + (f" ({extra})" if extra else "")


def text_columns(df: pd.DataFrame) -> dict[str, str]:
    """Columns that are neither bookkeeping nor numeric -> an example of a non-number and where."""
    out = {}
    for column in df.columns:
        if column in NON_METRIC or pd.api.types.is_numeric_dtype(df[column]):
            continue
        bad = pd.to_numeric(df[column], errors="coerce").isna() & df[column].notna()
        if bad.any():
            first = df.index[bad][0]
            out[column] = f"{df.loc[first, column]!r} in {row_where(df, first)}"
    return out


def metric_columns(df: pd.DataFrame) -> list[str]:
    """The numeric columns that are not bookkeeping (:data:`NON_METRIC`), in table order."""
    return [c for c in df.columns if c not in NON_METRIC and pd.api.types.is_numeric_dtype(df[c])]


def _normalise(df: pd.DataFrame, source: str, *, metrics: bool = True) -> pd.DataFrame:
    """Validated copy with every optional column present and typed (metrics: at least one
    numeric metric column is required; a plan of runs not yet made has none)."""
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
        _fail(source, f"column `arm` must name an arm on every row; {row_where(df, df.index[blank][0])} "
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
                          f" (e.g. {row_where(df, df.index[bad][0])})")
    if metrics and not metric_columns(df):
        _fail(source, f"no numeric metric column (e.g. {', '.join(KNOWN_METRICS)}); {allowed}; "
                      f"got {', '.join(map(str, df.columns))}")
    return df


def normalise_runs(df: pd.DataFrame, source: str, *, metrics: bool = True) -> pd.DataFrame:
    """A per-run table read elsewhere (e.g. from MLflow), validated as :func:`load_runs_table` does.

    metrics: False accepts a table without metric columns (the runs a grid plans to make).
    """
    return _normalise(df, source, metrics=metrics)


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
                          f"{_listing(df.loc[bad, column].unique())} ({row_where(df, df.index[bad][0])})")
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


def check_finite_moments(df: pd.DataFrame, metric: str) -> None:
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
            where = cell_label(*cell[:3], cell[4] if cell[4] else None)
            raise InputError(f"runs table: the {what} of `{metric}` for arm {cell[3]!r} ({where}) is {value} "
                             f"although each value is finite (largest |value| {np.max(np.abs(values)):.3g}); "
                             f"metric values this large overflow: rescale the column")


def cell_label(backend: str, dataset: str, model: str, smoothing: float | None = None) -> str:
    """A cell in words: "torch / digits / mlp, ε = 0.1" ("-" parts left out; none: "all runs")."""
    parts = [p for p in (backend, dataset, model) if p != "-"]
    text = " / ".join(parts) if parts else "all runs"
    return text if smoothing is None else f"{text}, ε = {smoothing:g}"


def truthy(value) -> bool:
    """A flag cell as written to runs.csv and read back: True/False, "True"/"False", 1/0, empty."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False



@dataclass(frozen=True)
class ArmRoles:
    """The arms of an analysed table and their roles (module doc).

    arms: every arm, reference arms first, then the others, each group sorted;
    references: the baseline arms (assay sensitivity is judged against them);
    flat: the arms with smoothing 0 on every row. Both are subsets of ``arms``.
    """

    arms: tuple[str, ...]
    references: tuple[str, ...]
    flat: tuple[str, ...]


def arm_roles(df: pd.DataFrame) -> ArmRoles:
    """The :class:`ArmRoles` of a normalised runs table (its ``arm``, ``smoothing`` and, if any, ``method``)."""
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
    arms = references + [a for a in seen if a not in references]
    return ArmRoles(arms=tuple(arms), references=tuple(references), flat=tuple(flat))


def check_pairs(pairs, arms, known) -> list[tuple[str, str]]:
    """The ``(arm_a, arm_b)`` pairs to compare: ``pairs`` checked against the ``known`` arms, or,
    when None, every pair of ``arms`` (an :attr:`ArmRoles.arms` order), the earlier one first."""
    arms, known = list(arms), list(known)
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


def pair_sides(group: pd.DataFrame, a: str, b: str, flat) -> list[tuple[float, pd.DataFrame, pd.DataFrame]]:
    """(eps, rows of a, rows of b) for each smoothing value at which a and b are paired in ``group``."""
    flat = set(flat)
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


def paired_units(df: pd.DataFrame, pairs, flat) -> Iterator[tuple[tuple, float, str, str, pd.DataFrame, pd.DataFrame]]:
    """Yield ``((backend, dataset, model), eps, arm_a, arm_b, rows of a, rows of b)`` for every
    within-backend comparison of ``pairs`` in ``df``: per cell in sorted order, then by smoothing
    value, then in the order of ``pairs``; a pair with no rows on a side is left out."""
    pairs = list(pairs)
    for key, cell in df.groupby(["backend", "dataset", "model"], sort=True):
        units = [(eps, i, a, b, sa, sb) for i, (a, b) in enumerate(pairs)
                 for eps, sa, sb in pair_sides(cell, a, b, flat)]
        for eps, _, a, b, side_a, side_b in sorted(units, key=lambda u: (u[0], u[1])):
            if not (side_a.empty or side_b.empty):
                yield key, eps, a, b, side_a, side_b
