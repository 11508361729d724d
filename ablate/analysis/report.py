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

from ablate.analysis import calibration
from ablate.config import DEFAULT_MARGINS
from ablate.errors import ConfigError

RUNS_COLUMNS = ("run_id", "status", "backend", "dataset", "model", "arm", "smoothing", "seed",
                "accuracy", "ece", "nll", "brier", "started_at", "finished_at", "seconds")
EXTRA_RUN_COLUMNS = ("repeat", "attempt", "rms_ce", "mce", "classwise_ece", "mean_confidence",
                     "overconfidence", "temperature", "ece_ts", "nll_ts", "accuracy_ts", "error", "pairing")
SUMMARY_METRICS = ("accuracy", "ece", "nll", "brier", "ece_ts", "nll_ts")
CELL = ("backend", "dataset", "model", "arm", "smoothing")


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


def parse_margins(items: Sequence[str]) -> dict[str, float]:
    """``["accuracy=0.005", ...]`` -> {metric: margin}."""
    out: dict[str, float] = {}
    for item in items:
        metric, sep, value = item.partition("=")
        try:
            margin = float(value)
            if not sep or not metric.strip() or not margin > 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--margin: expected METRIC=VALUE with VALUE > 0, e.g. accuracy=0.005, "
                              f"but got {item!r}") from None
        out[metric.strip()] = margin
    return out


# ------------------------------------------------------------------------------ tables
def summary_table(runs, metrics: Sequence[str] = SUMMARY_METRICS):
    """Per cell and metric: n, mean, std and the 95% t-interval of the mean (completed runs only)."""
    import pandas as pd

    from ablate.analysis.stats import t_interval

    done = runs[runs["status"] == "completed"]
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


# ------------------------------------------------------------------------------ entry points
def report_from_table(path: str | Path, *, out: str | Path, margins: Mapping[str, float] | None = None,
                      alpha: float | None = None, correction: str | None = None,
                      figures: bool = True) -> list[Path]:
    """Analyse a per-run CSV made by other tools (``ablate report --runs FILE.csv``)."""
    from ablate.analysis.compare import load_runs_table

    runs = load_runs_table(path)
    if "status" not in runs:
        runs = runs.assign(status="completed")  # a table made elsewhere lists finished runs
    return write_report(runs, out=Path(out), title=f"Runs table `{Path(path).name}`",
                         margins={**DEFAULT_MARGINS, **(margins or {})}, alpha=alpha or 0.05,
                         correction=correction or "holm", histories=None, reliability={}, corrupt=(),
                         overrides={}, binning=None, figures=figures, external=True)


def write_report(runs, *, out: Path, title: str, margins: Mapping[str, float], alpha: float, correction: str,
                  histories, reliability, corrupt, overrides, binning, figures: bool,
                  external: bool = False) -> list[Path]:
    from ablate.analysis import compare

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    metrics = [m for m in margins if m in runs.columns]
    # Bookkeeping columns are numbers too, but not metrics to compare.
    measured = runs.drop(columns=[c for c in ("attempt", "temperature", "seconds") if c in runs])
    comparisons = compare.compare_runs(measured, margins={m: margins[m] for m in metrics}, alpha=alpha,
                                       correction=correction, rng=np.random.default_rng(0))
    summary = summary_table(runs, [m for m in SUMMARY_METRICS if m in runs.columns] +
                            [m for m in metrics if m not in SUMMARY_METRICS])

    if not external:
        runs_csv = out / "runs.csv"
        runs[list(RUNS_COLUMNS) + [c for c in EXTRA_RUN_COLUMNS if c in runs]].to_csv(runs_csv, index=False)
        written.append(runs_csv)
    for name, table in (("summary.csv", summary), ("comparisons.csv", comparisons.table)):
        table.to_csv(out / name, index=False)
        written.append(out / name)

    figure_paths: dict[str, Path] = {}
    if figures:
        figure_paths = _draw_figures(runs, histories, reliability, comparisons, out, metrics)
        written.extend(figure_paths.values())

    md = _markdown(runs, summary, comparisons, title=title, alpha=alpha, correction=correction,
                   corrupt=corrupt, overrides=overrides, binning=binning, figures=figure_paths, out=out)
    (out / "report.md").write_text(md)
    written.append(out / "report.md")
    return written


def _draw_figures(runs, histories, reliability, comparisons, out: Path, metrics) -> dict[str, Path]:
    from ablate.analysis.figures import calibration as cal_figs
    from ablate.analysis.figures import power as power_figs
    from ablate.analysis.figures import runs as run_figs
    from ablate.analysis.figures._style import save_figure

    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(name: str, fig) -> None:
        paths[name] = fig_dir / f"{name}.png"
        save_figure(fig, paths[name])

    done = runs[runs["status"] == "completed"]
    for metric in ("accuracy", "ece", "nll", "ece_ts"):
        if metric in done and done[metric].notna().any():
            save(f"{metric}_by_arm", run_figs.metric_by_arm(done, metric))
    if histories is not None and len(histories):
        save("training_curves", run_figs.training_curves(histories))
    if reliability:
        for (backend, dataset, model), cells in _group_reliability(reliability).items():
            slug = f"{backend}_{dataset}_{model}".replace("/", "-")
            save(f"reliability_{slug}", cal_figs.reliability_diagrams(
                cells, title=f"{backend} / {dataset} / {model}: test-set reliability, pooled over seeds"))
    if "ece_ts" in done and done["ece_ts"].notna().any():
        save("temperature_scaling", cal_figs.temperature_effect(done))
    if len(comparisons.table):
        save("power", power_figs.power_overview(comparisons, metric=metrics[0] if metrics else "accuracy"))
    return paths


def _group_reliability(reliability) -> dict[tuple, dict[str, Any]]:
    """(backend, dataset, model) -> {arm label: bins}; one panel per arm (and eps)."""
    out: dict[tuple, dict[str, Any]] = {}
    eps_values = {cell[4] for cell in reliability if cell[3] != "none"}
    for (backend, dataset, model, arm, eps), bins in sorted(reliability.items()):
        label = arm if arm == "none" or len(eps_values) < 2 else f"{arm} eps={eps:g}"
        out.setdefault((backend, dataset, model), {})[label] = bins
    return out


# ------------------------------------------------------------------------------ report.md
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _md_table(df, columns: Sequence[str], digits: int = 4) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], digits) for c in columns) + " |")
    return "\n".join(lines)


def _markdown(runs, summary, comparisons, *, title, alpha, correction, corrupt, overrides, binning,
              figures, out: Path) -> str:
    from ablate.analysis import compare

    counts = runs["status"].value_counts().to_dict() if "status" in runs else {}
    parts = [f"# {title}: label-smoothing ablation report", ""]
    parts.append(f"{len(runs)} run(s): " + ", ".join(f"{counts.get(s, 0)} {s}"
                                                     for s in ("completed", "failed", "diverged")) + ".")
    if binning:
        parts.append(f"Metrics are recomputed from the stored test-set probabilities; ECE uses {binning[0]} "
                     f"{'equal-width' if binning[1] == 'uniform' else 'equal-mass'} bins on top-label confidence (L1).")
    parts.append("Arms: `none` = cross-entropy on one-hot labels; `explicit` = targets replaced by "
                 "y·(1−ε)+ε/K before training; `loss` = the framework's smoothed cross-entropy.")
    if overrides:
        parts += ["", "## Per-arm overrides (possible confounds)", ""]
        for arm, keys in overrides.items():
            parts.append(f"- `{arm}` trains with " + ", ".join(f"{k} = {v}" for k, v in keys.items()) +
                         "; every other arm uses the grid's `train` settings. A difference between arms may "
                         "come from this, not from how the labels are smoothed.")
    parts += ["", compare.markdown(comparisons, alpha=alpha, correction=correction)]

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
        ts = summary[summary["metric"].isin(["ece", "ece_ts", "nll", "nll_ts"])]
        wide = ts.pivot_table(index=list(CELL), columns="metric", values="mean").reset_index()
        parts.append(_md_table(wide, [c for c in list(CELL) + ["ece", "ece_ts", "nll", "nll_ts"] if c in wide]))

    bad = runs[runs["status"].isin(["failed", "diverged"])] if "status" in runs else runs.iloc[:0]
    if len(bad):
        parts += ["", "## Failed and diverged runs", ""]
        for _, row in bad.iterrows():
            parts.append(f"- `{row['run_id']}` {row['status']}: {row['backend']} {row['dataset']} {row['model']} "
                         f"{row['arm']} eps={row['smoothing']:g} seed={row['seed']} — {row.get('error', '')}")
    if corrupt:
        parts += ["", "## Skipped records", ""]
        parts += [f"- `{c.path}`: {c.reason}" for c in corrupt]
    if figures:
        parts += ["", "## Figures", ""]
        for name, path in figures.items():
            parts.append(f"![{name}]({path.relative_to(out).as_posix()})")
    parts += ["", "Tables: `runs.csv` (one row per run), `summary.csv` (per cell), `comparisons.csv` "
                  "(paired tests; columns documented in the README).", ""]
    return "\n".join(parts)
