"""``python -m ablate report``: stored runs -> runs.csv, summary.csv, comparisons.csv, report.md, figures.

Metrics are recomputed here from the stored probabilities (so the ECE binning can change
without retraining), temperature scaling is fitted per run on its validation split, and the
statistics come from :mod:`ablate.analysis.compare`. Figures are drawn by :mod:`ablate.analysis.figures`,
which computes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ablate import files
from ablate.analysis import calibration, escape
from ablate.analysis.columns import CELL, SOURCE_COLUMNS
from ablate.config import DEFAULT_MARGINS, SD_RATIO_KEY
from ablate.errors import ConfigError
from ablate.statuses import COMPLETED, STATUSES, UNSUCCESSFUL

RUNS_COLUMNS = ("run_id", "status", "backend", "dataset", "model", "arm", "smoothing", "seed",
                "accuracy", "ece", "nll", "brier", "started_at", "finished_at", "seconds")
EXTRA_RUN_COLUMNS = ("method", "repeat", "attempt", "rms_ce", "mce", "classwise_ece", "mean_confidence",
                     "overconfidence", "temperature", "temperature_at_bound", "ece_ts", "nll_ts", "accuracy_ts", "error", "pairing",
                     "params", "trick", "classes", "init", "order", "augment", "split")
SUMMARY_METRICS = ("accuracy", "ece", "nll", "brier", "ece_ts", "nll_ts")
TS_METRICS = ("accuracy_ts", "ece_ts", "nll_ts")
# Numbers of a run that are bookkeeping, not metrics to compare.
BOOKKEEPING = ("attempt", "temperature", "seconds")


@dataclass(frozen=True)
class Skipped:
    """A stored record the report could not use, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class LoadedStudy:
    runs: Any  # pandas DataFrame, one row per readable record
    histories: Any  # pandas DataFrame, long format: run, epoch, split, quantity, value
    reliability: Mapping[tuple, calibration.ReliabilityData]  # (backend, dataset, model, arm, eps) -> pooled bins
    corrupt: tuple[Skipped, ...] = field(default_factory=tuple)
    arm_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # arm -> train keys it differs in


def check_options(*, alpha: float | None = None, ece_bins: int | None = None) -> None:
    """Refuse out-of-range report options with one line (None: not given)."""
    if alpha is not None and not (isinstance(alpha, (int, float)) and 0.0 < alpha < 0.5):
        raise ConfigError(f"--alpha: expected a number in (0, 0.5), but got {alpha!r}")
    if ece_bins is not None and not (isinstance(ece_bins, int) and ece_bins >= 1):
        raise ConfigError(f"--ece-bins: expected an integer >= 1, but got {ece_bins!r}")


def check_margin_metrics(margins: Mapping[str, float] | None, runs) -> None:
    """Every metric given a margin by the user must be a metric of the runs (no silent ignore)."""
    from ablate.analysis.table import NON_METRIC

    margins = {m: v for m, v in (margins or {}).items() if m != SD_RATIO_KEY}
    if not margins:
        return
    skip = NON_METRIC | {"attempt", "temperature"}
    columns = [str(c) for c in runs.columns if c not in skip]
    absent = [m for m in margins if m not in columns]
    if absent:
        raise ConfigError(f"--margin: no metric {', '.join(map(repr, absent))} in these runs; "
                          f"metrics: {', '.join(columns)}")


# ------------------------------------------------------------------------------ temperature bound
def at_bound(runs):
    """(n,) bool Series: the run's fitted temperature sits at its search bound (a completed run only)."""
    import pandas as pd

    from ablate.analysis.table import truthy

    if "temperature_at_bound" not in runs:
        return pd.Series(False, index=runs.index)
    flags = runs["temperature_at_bound"].map(truthy).astype(bool)
    return flags & (runs["status"] == COMPLETED) if "status" in runs else flags


def mask_at_bound(runs):
    """A copy of the runs table with the temperature-scaled metrics (:data:`TS_METRICS`) left empty for
    every run whose temperature sits at its search bound; runs.csv keeps them, marked."""
    flags = at_bound(runs)
    if not flags.any():
        return runs
    out = runs.copy()
    for metric in TS_METRICS:
        if metric in out:
            out.loc[flags, metric] = math.nan
    return out


def measured_runs(runs):
    """The runs table as the comparisons see it: bound temperatures masked, bookkeeping dropped."""
    masked = mask_at_bound(runs)
    return masked.drop(columns=[c for c in BOOKKEEPING if c in masked])


def temperature_bound_note(runs) -> str:
    """One sentence on how many runs' temperature hit its search bound, and why that matters.

    "" when no run has a fitted temperature (or a ``temperature_at_bound`` column) at all.
    """
    flags = at_bound(runs)
    n = int(flags.sum())
    fitted = runs["temperature"].notna() if "temperature" in runs else flags
    if "status" in runs:
        fitted = fitted & (runs["status"] == COMPLETED)
    low, high = calibration.TEMPERATURE_BOUNDS
    if not n:
        if "temperature_at_bound" not in runs or not fitted.any():
            return ""
        return (f"0 of {int(fitted.sum())} run(s) hit the temperature search bound (T = {low:g} or {high:g}), "
                f"so every run's temperature-scaled values are used.")
    where = ""
    if "temperature" in runs:
        temps = runs.loc[flags, "temperature"].astype(float)
        n_low = int((temps <= low * (1 + 1e-6)).sum())
        where = (f" ({n_low} at T = {low:g}, {n - n_low} at T = {high:g})" if n_low != n
                 else f" (all at T = {low:g})")
    return (f"{n} of {int(fitted.sum())} run(s) hit the temperature search bound{where}: the fit found no "
            f"optimum because the validation split was classified perfectly (the NLL keeps falling as T → 0) "
            f"or is too small to fix T. Their temperature-scaled values (ECE, NLL and accuracy after TS) are "
            f"left out of this table, the temperature-scaling figure and every `*_ts` comparison; runs.csv keeps "
            f"them, marked in `temperature_at_bound`. A larger `val_fraction` gives the fit more to work with.")


# ------------------------------------------------------------------------------ tables
def summary_table(runs, metrics: Sequence[str] = SUMMARY_METRICS):
    """Per cell and metric: n, mean, std and the 95% t-interval of the mean (completed runs only)."""
    import pandas as pd

    from ablate.analysis.stats import t_interval

    done = runs[runs["status"] == COMPLETED]
    if "repeat" in done:
        done = done[done["repeat"].fillna(0) == 0]
    out = []
    for cell, group in done.groupby(list(CELL), sort=True, dropna=False):
        for metric in metrics:
            if metric not in group:
                continue
            values = group[metric].dropna().to_numpy(dtype=float)
            if not len(values):
                continue
            interval = t_interval(values, confidence=0.95)
            out.append({**dict(zip(CELL, cell)), "metric": metric, "n": len(values),
                        "mean": float(values.mean()),
                        "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                        "ci_low": interval.low, "ci_high": interval.high})
    return pd.DataFrame(out, columns=list(CELL) + ["metric", "n", "mean", "std", "ci_low", "ci_high"])


def write_csv(table, path: Path) -> Path:
    """One of the report's CSV tables, atomically, with formula-like text cells neutralised
    (:func:`ablate.analysis.escape.csv_table`; read back with :func:`ablate.analysis.escape.read_csv`)."""
    return files.write_text(path, escape.csv_table(table).to_csv(index=False))


# ------------------------------------------------------------------------------ entry points
def report_from_table(path: str | Path, *, out: str | Path, margins: Mapping[str, float] | None = None,
                      alpha: float | None = None, correction: str | None = None,
                      figures: bool = True, sequential: Sequence[int] | None = None,
                      spending: str | None = None, pairs=None, latex: bool = False) -> list[Path]:
    """Analyse a per-run CSV made by other tools (``ablate report --runs FILE.csv``).

    sequential: looks (seeds) at which to analyse the table as a group-sequential design
    (:mod:`ablate.analysis.sequential`); spending: its alpha-spending function.
    pairs: ``(arm_a, arm_b)`` pairs to compare (None: every pair of arms in the table).
    latex: also write comparisons.tex and summary.tex.
    """
    from ablate.analysis.table import load_runs_table

    check_options(alpha=alpha)
    return report_from_frame(load_runs_table(path), out=out, title=f"Runs table `{Path(path).name}`",
                             margins=margins, alpha=alpha, correction=correction, figures=figures,
                             sequential=sequential, spending=spending, pairs=pairs, latex=latex)


def report_from_frame(runs, *, out: str | Path, title: str, margins: Mapping[str, float] | None = None,
                      alpha: float | None = None, correction: str | None = None, figures: bool = True,
                      sequential: Sequence[int] | None = None, spending: str | None = None, pairs=None,
                      latex: bool = False, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                      write_runs: bool = False, source: str | None = None) -> list[Path]:
    """Analyse a per-run table read elsewhere (``--runs`` CSV, ``--mlflow`` runs) as ``report_from_table``.

    overrides: arm -> {setting: value} that differ between arms (listed as possible confounds);
    write_runs: also write the table itself as runs.csv (its own columns), for a table the user has
    no file of; source: one sentence on where the table came from (report.md and report.html).
    """
    check_options(alpha=alpha)
    if "status" not in runs:
        runs = runs.assign(status=COMPLETED)  # a table made elsewhere lists finished runs
    check_margin_metrics(margins, runs)
    return write_report(runs, out=Path(out), title=title, margins={**DEFAULT_MARGINS, **(margins or {})},
                        alpha=alpha if alpha is not None else 0.05,
                        correction=correction or "holm", histories=None, reliability={}, corrupt=(),
                        overrides=overrides or {}, binning=None, figures=figures, external=True,
                        sequential=sequential, spending=spending, pairs=pairs, latex=latex,
                        runs_table=write_runs, context={"source": source} if source else None)


def write_report(runs, *, out: Path, title: str, margins: Mapping[str, float], alpha: float, correction: str,
                  histories, reliability, corrupt, overrides, binning, figures: bool,
                  external: bool = False, sequential: Sequence[int] | None = None,
                  spending: str | None = None, pairs: Sequence[tuple[str, str]] | None = None,
                  context: Mapping[str, Any] | None = None, latex: bool = False,
                  runs_table: bool = False) -> list[Path]:
    from ablate.analysis import compare, html, prose
    from ablate.analysis import latex as tex
    from ablate.analysis import sequential as seq_mod

    looks = seq_mod.check_looks(sequential, "sequential") if sequential else None
    spending = seq_mod.check_spending(spending if spending is not None else seq_mod.SPENDINGS[0])

    metrics = [m for m in margins if m in runs.columns]
    # Bookkeeping columns are numbers too, but not metrics to compare; a temperature at its
    # search bound leaves that run's *_ts values out of every table, figure and comparison.
    measured = measured_runs(runs)
    analysed = mask_at_bound(runs)
    ts_note = temperature_bound_note(runs)
    # Compare before writing anything: a refused table or option leaves no folder behind.
    sd_margin = {SD_RATIO_KEY: margins[SD_RATIO_KEY]} if SD_RATIO_KEY in margins else {}
    comparisons = compare.compare_runs(measured, margins={**{m: margins[m] for m in metrics}, **sd_margin},
                                       alpha=alpha,
                                       correction=correction, rng=np.random.default_rng(0), pairs=pairs)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    summary = summary_table(analysed, [m for m in SUMMARY_METRICS if m in runs.columns] +
                            [m for m in metrics if m not in SUMMARY_METRICS])
    from ablate.analysis import variance as var_mod

    components = var_mod.components_table(runs, metrics, rng=np.random.default_rng(0))
    seq, comparisons_csv = None, comparisons.table
    if looks:
        seq = seq_mod.sequential_comparisons(measured, looks=looks, margins={m: margins[m] for m in metrics},
                                             pairs=pairs, alpha=alpha,
                                             spending=spending)
        # Rows only the sequential analysis has (arms the fixed table does not pair) are appended.
        comparisons_csv = seq_mod.with_decisions(comparisons.table, seq)
        write_csv(seq.looks, out / "sequential.csv")
        written.append(out / "sequential.csv")

    if not external:
        runs_csv = out / "runs.csv"
        write_csv(runs[list(RUNS_COLUMNS) + [c for c in EXTRA_RUN_COLUMNS if c in runs]], runs_csv)
        written.append(runs_csv)
    elif runs_table:
        write_csv(runs, out / "runs.csv")
        written.append(out / "runs.csv")
    for name, table in (("summary.csv", summary), ("comparisons.csv", comparisons_csv)):
        write_csv(table, out / name)
        written.append(out / name)
    if len(components):
        write_csv(components, out / "variance.csv")
        written.append(out / "variance.csv")

    figure_paths: dict[str, Path] = {}
    if figures:
        figure_paths = _draw_figures(analysed, histories, reliability, comparisons, out, metrics, components)
        if seq is not None and len(seq.looks):
            from ablate.analysis.figures import sequential as seq_figs
            from ablate.analysis.figures._style import save_figure

            figure_paths["sequential"] = out / "figures" / "sequential.png"
            save_figure(seq_figs.sequential_paths(seq), figure_paths["sequential"])
        written.extend(figure_paths.values())

    md = _markdown(runs, summary, comparisons, title=title, alpha=alpha, correction=correction,
                   corrupt=corrupt, overrides=overrides, binning=binning, figures=figure_paths, out=out,
                   ts_note=ts_note, source=(context or {}).get("source"))
    sources_md = variance_markdown(components, runs, external=external)
    if sources_md:
        md = md.replace("\n## Summary per cell", "\n" + sources_md + "\n## Summary per cell", 1)
    if seq is not None:
        md = md.replace("\n## Summary per cell", prose.sequential_markdown(seq) + "\n## Summary per cell", 1)
    # Names are free text: neutralise HTML and link syntax in the whole page (see analysis.escape).
    files.write_text(out / "report.md", escape.markdown_document(md))
    written.append(out / "report.md")
    written.append(html.write_html(out / "report.html", title=title, runs=runs, summary=summary,
                                   comparisons=comparisons, figures=figure_paths, corrupt=corrupt,
                                   overrides=overrides, binning=binning, context=context, ts_note=ts_note,
                                   variance_md=sources_md))
    if latex:
        written.extend(tex.write_tables(out, comparisons=comparisons, summary=summary, arms=arm_tricks(runs)))
    return written


def figure_makers(runs, histories, reliability, comparisons, metrics, components=None) -> dict[str, Any]:
    """name -> a function of no arguments that draws that figure of the report and returns it.

    The report saves each one; ``Study.figure(name)`` draws one and hands it back. Figures draw what
    is computed here (analysis.figure_data); the points' spread comes from one seeded generator.
    """
    from ablate.analysis import figure_data
    from ablate.analysis.figures import calibration as cal_figs
    from ablate.analysis.figures import power as power_figs
    from ablate.analysis.figures import runs as run_figs

    makers: dict[str, Any] = {}
    done = figure_data.seed_points(runs[runs["status"] == COMPLETED],
                                   np.random.default_rng(figure_data.JITTER_SEED))
    for metric in ("accuracy", "ece", "nll", "ece_ts"):
        if metric in done and done[metric].notna().any():
            makers[f"{metric}_by_arm"] = lambda m=metric: run_figs.metric_by_arm(done, m)
    bands = figure_data.training_bands(histories) if histories is not None and len(histories) else None
    if bands is not None and len(bands):
        makers["training_curves"] = lambda: run_figs.training_curves(bands)
    if reliability:
        for (backend, dataset, model), cells in _group_reliability(reliability).items():
            slug = escape.slug(f"{backend}_{dataset}_{model}".replace("/", "-"))
            title = f"{backend} / {dataset} / {model}: test-set reliability, pooled over seeds"
            makers[f"reliability_{slug}"] = lambda c=cells, t=title: cal_figs.reliability_diagrams(c, title=t)
    if "ece_ts" in done and done["ece_ts"].notna().any():
        makers["temperature_scaling"] = lambda: cal_figs.temperature_effect(done)
    if len(comparisons.table):
        overview = figure_data.power_overview(comparisons, metric=metrics[0] if metrics else "accuracy")
        makers["power"] = lambda: power_figs.power_overview(overview)
    if components is not None and len(components):
        from ablate.analysis.figures import variance as var_figs

        makers["variance_components"] = lambda: var_figs.source_shares(components)
    return makers


def _draw_figures(runs, histories, reliability, comparisons, out: Path, metrics, components=None) -> dict[str, Path]:
    from ablate.analysis.figures._style import save_figure

    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, make in figure_makers(runs, histories, reliability, comparisons, metrics, components).items():
        paths[name] = fig_dir / f"{name}.png"
        save_figure(make(), paths[name])
    return paths


def _share(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "–"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{100 * value:.0f}%"
    return f"{100 * value:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def variance_markdown(components, runs, *, external: bool = False) -> str:
    """The report.md section on the sources of randomness: the variance components as a table
    (share of each source, with its 95% interval, per cell, arm and metric), or, for a plain
    `seeds: N` study, which sources that design randomises. "" for a table made elsewhere
    without source columns."""

    lines = ["## Where the spread comes from (sources of randomness)", ""]
    has_sources = any(c in runs and runs[c].notna().any() for c in SOURCE_COLUMNS)
    if not len(components):
        if external and not has_sources:
            return ""
        if has_sources:
            lines.append("The runs name their sources of randomness, but no cell is a complete balanced "
                         "factorial with a source of two or more seeds, so no variance components are estimated.")
        else:
            lines.append("This study's `seeds: N` draws one seed per run that drives the initial weights, the "
                         "batch order and the augmentation together (init, order and augment), and holds the "
                         "train/validation split fixed (split seed 0). Its seed-to-seed spread mixes those "
                         "three sources and leaves out the data split. To separate them, name the sources: "
                         "`seeds: {init: 4, order: 4, split: 3}`.")
        return "\n".join(lines + [""])
    factors = [s for s in components["source"].unique() if ":" not in s and "+" not in s and s != "residual"]
    lines.append(f"Randomised sources: {', '.join(factors)}; each is crossed with the others (a full factorial). "
                 "Shares are balanced-ANOVA variance components (negative estimates count as 0), with "
                 "95% generalized confidence intervals; `variance.csv` holds the variances and their intervals. "
                 "With one run per cell the top interaction cannot be told from the residual (the "
                 "nondeterminism floor): it is shown as `… + residual`.")
    lines.append("")
    sources = list(dict.fromkeys(components["source"]))
    keys = ["backend", "dataset", "model", "arm", "smoothing", "metric"]
    lines.append("| " + " | ".join(["setting", "arm", "metric", "total SD", *sources]) + " |")
    lines.append("|" + "---|" * (4 + len(sources)))
    for key, group in components.groupby(keys, sort=False):
        backend, dataset, model, arm, eps, metric = key
        setting = " / ".join(str(p) for p in (backend, dataset, model) if p != "-") or "all runs"
        if eps:
            setting += f", ε = {eps:g}"
        total = float(group["variance"].clip(lower=0).sum())
        scale, unit = (100.0, " pp") if metric == "accuracy" else (1.0, "")
        cells = []
        for source in sources:
            row = group[group["source"] == source]
            cells.append(_share(*row[["share", "share_low", "share_high"]].iloc[0]) if len(row) else "–")
        lines.append(f"| {setting} | {arm} | {metric} | {scale * math.sqrt(total):.3g}{unit} | " + " | ".join(cells) + " |")
    top = (components.sort_values("share", ascending=False).groupby(["arm", "metric"], sort=False).head(1))
    leaders = sorted({f"{r.metric}: {r.source} ({100 * r.share:.0f}%, {r.arm})" for r in top.itertuples()})
    lines += ["", "Largest share per arm and metric: " + "; ".join(leaders) + "."]
    return "\n".join(lines + [""])


def _group_reliability(reliability) -> dict[tuple, dict[str, Any]]:
    """(backend, dataset, model) -> {arm label: bins}; one panel per arm (and eps)."""
    out: dict[tuple, dict[str, Any]] = {}
    smoothed = {cell[3] for cell in reliability if cell[4] != 0}
    eps_values = {cell[4] for cell in reliability if cell[3] in smoothed}
    for (backend, dataset, model, arm, eps), bins in sorted(reliability.items()):
        label = arm if arm not in smoothed or len(eps_values) < 2 else f"{arm} eps={eps:g}"
        out.setdefault((backend, dataset, model), {})[label] = bins
    return out


# ------------------------------------------------------------------------------ report.md
def _failed_line(row) -> str:
    """One failed/diverged run; a table made elsewhere may lack run_id, error or the cell columns."""
    def text(column):
        value = row.get(column)
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()

    where = " ".join(v for v in (text("backend"), text("dataset"), text("model"), text("arm")) if v and v != "-")
    eps = row.get("smoothing")
    if isinstance(eps, (int, float)) and not math.isnan(eps):
        where += f" eps={eps:g}"
    where += f" seed={text('seed')}"
    head = f"`{text('run_id')}` " if text("run_id") else ""
    error = text("error")
    return f"- {head}{row['status']}: {where.strip()}" + (f" — {error}" if error else "")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape.md_cell(value)  # a name: no pipe, backslash or line break can break the table


def _md_table(df, columns: Sequence[str], digits: int = 4) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], digits) for c in columns) + " |")
    return "\n".join(lines)


def arm_descriptions(runs) -> dict[str, str]:
    """arm -> what its trick does, from the tricks registry (a grid's own trick: its parts), with its params.

    runs: the runs table; its ``method``, ``params`` and ``trick`` columns are used where present.
    """
    from ablate import tricks

    out: dict[str, str] = {}
    if "arm" not in runs:
        return out
    for arm in dict.fromkeys(runs["arm"].astype(str)):
        rows = runs[runs["arm"].astype(str) == arm]

        def first(column: str) -> str:
            if column not in rows:
                return ""
            found = rows[column].dropna().astype(str)
            found = found[found != ""]
            return found.iloc[0] if len(found) else ""

        method, params, parts = first("method") or arm, first("params"), first("trick")
        if parts:
            text = f"user trick `{method}` ({parts})"
        elif method in tricks.TRICKS:
            text = tricks.get(method).description
        else:
            out[arm] = ""
            continue
        text = f"{text}; {params}" if params else text
        out[arm] = text if method == arm else f"trick `{method}`: {text}"
    return out


def _override_caveat(keys: Mapping[str, Any]) -> str:
    """What an arm's own settings mean for a comparison: a trick's params (``params.X``) are part
    of what the arm is; any other setting is a possible confound."""
    from ablate.analysis.html import only_trick_params

    if only_trick_params(keys):
        return "These are its trick's params: part of what the arm tests, not a confound."
    return "A difference between arms may come from this, not from their tricks."


def arm_tricks(runs) -> dict[str, str]:
    """arm -> its trick and params in plain ASCII words ("trick mixup, alpha = 0.2"), for LaTeX captions.

    runs: the runs table; arms without a ``method`` column entry are left out.
    """
    out: dict[str, str] = {}
    if "arm" not in runs or "method" not in runs:
        return out
    for arm, rows in runs.groupby(runs["arm"].astype(str), sort=False):
        method = rows["method"].dropna().astype(str)
        if not len(method) or not method.iloc[0]:
            continue
        params = rows["params"].dropna().astype(str) if "params" in rows else []
        params = params[params != ""] if len(params) else params
        out[arm] = f"trick {method.iloc[0]}" + (f", {params.iloc[0]}" if len(params) else "")
    return out


def _arms_line(runs) -> str:
    """One line naming each arm and what its trick does (from the tricks registry)."""
    described = arm_descriptions(runs)
    if not described:
        return ""
    return "Arms: " + "; ".join(f"`{arm}` = {text}" if text else f"`{arm}`"
                                for arm, text in described.items()) + "."


def _markdown(runs, summary, comparisons, *, title, alpha, correction, corrupt, overrides, binning,
              figures, out: Path, ts_note: str = "", source: str | None = None) -> str:
    from ablate.analysis import prose

    counts = runs["status"].value_counts().to_dict() if "status" in runs else {}
    parts = [f"# {title}: ablation report", ""]
    shown = list(STATUSES) + sorted(set(map(str, counts)) - set(STATUSES))
    parts.append(f"{len(runs)} run(s): " + ", ".join(f"{counts.get(s, 0)} {s}" for s in shown) + ".")
    if source:
        parts.append(source)
    if binning:
        parts.append(f"Metrics are recomputed from the stored test-set probabilities; ECE uses {binning[0]} "
                     f"{'equal-width' if binning[1] == 'uniform' else 'equal-mass'} bins on top-label confidence (L1).")
    parts.append(_arms_line(runs))
    overrides = {arm: keys for arm, keys in (overrides or {}).items() if keys}
    if overrides:
        parts += ["", "## Per-arm settings (possible confounds)", "",
                  "Read from the run records themselves, so a confound cannot drop out of the report when the "
                  "grid file changes.", ""]
        for arm, keys in overrides.items():
            parts.append(f"- `{arm}` trains with " + ", ".join(f"{k} = {v}" for k, v in keys.items()) +
                         ", unlike the other arms. " + _override_caveat(keys))
    parts += ["", prose.markdown(comparisons, alpha=alpha, correction=correction)]

    parts += ["", "## Summary per cell (mean ± std, 95% t-interval of the mean)", ""]
    if len(summary):
        shown = summary[summary["metric"].isin(["accuracy", "ece", "nll", "brier"])]
        parts.append(_md_table(shown, ["backend", "dataset", "model", "arm", "smoothing", "metric", "n", "mean",
                                       "std", "ci_low", "ci_high"]))
    if "ece_ts" in summary["metric"].values:
        parts += ["", "## Calibration after temperature scaling", "",
                  "One temperature per run is fitted on its validation split (held out from the training data) "
                  "by minimising NLL; test metrics are then recomputed. If smoothing's ECE advantage over `none` "
                  "disappears here, a post-hoc temperature buys the same calibration.", ""]
        if ts_note:
            parts += [f"**{ts_note}**" if at_bound(runs).any() else ts_note, ""]
            ts_note = ""
        ts = summary[summary["metric"].isin(["ece", "ece_ts", "nll", "nll_ts"])]
        wide = ts.pivot_table(index=list(CELL), columns="metric", values="mean").reset_index()
        parts.append(_md_table(wide, [c for c in list(CELL) + ["ece", "ece_ts", "nll", "nll_ts"] if c in wide]))

    if ts_note and at_bound(runs).any():  # every fitted temperature is at its bound: no table to put it under
        parts += ["", "## Calibration after temperature scaling", "", f"**{ts_note}**"]
    bad = runs[runs["status"] != COMPLETED] if "status" in runs else runs.iloc[:0]
    if len(bad):
        others = sorted(set(bad["status"].astype(str)) - set(UNSUCCESSFUL))
        parts += ["", "## Failed and diverged runs" if not others else
                  f"## Runs not analysed ({', '.join(sorted(set(bad['status'].astype(str))))})", ""]
        for _, row in bad.iterrows():
            parts.append(_failed_line(row))
    if corrupt:
        parts += ["", "## Skipped records", ""]
        parts += [f"- `{c.path}`: {c.reason}" for c in corrupt]
    if figures:
        parts += ["", "## Figures", ""]
        for name, path in figures.items():
            parts.append(escape.figure_line(name, path.relative_to(out).as_posix()))
    parts += ["", "Tables: `runs.csv` (one row per run), `summary.csv` (per cell), `comparisons.csv` "
                  "(paired tests; columns documented in the README).", ""]
    return "\n".join(parts)
