"""``report --latex``: ``comparisons.tex`` and ``summary.tex``, booktabs tables for a paper.

Rendered from the tables the report already computed; nothing is recomputed. Each file is
one ``table`` environment that needs only ``\\usepackage{booktabs}``. Accuracy is shown in
percentage points (differences) and percent (means), other metrics in their own units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MARKS = {"equivalent": r"$\approx$ equivalent", "different": r"$\neq$ different",
         "inconclusive": "? inconclusive", "identical": "$=$ identical"}
METRIC_NAMES = {"accuracy": "Accuracy", "ece": "ECE", "nll": "NLL", "brier": "Brier"}
PM = "\\pm "
CORRECTIONS = {"holm": "Holm", "bh": "Benjamini--Hochberg"}
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: Any) -> str:
    """Plain text -> LaTeX text (the ten special characters escaped)."""
    return "".join(_SPECIAL.get(c, c) for c in str(text))


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _decimals(metric: str, margin: float) -> int:
    if metric == "accuracy":
        return 2
    return max(2, int(math.ceil(-math.log10(margin))) + 2) if _finite(margin) and margin > 0 else 4


def _num(x: Any, metric: str, margin: float, *, signed: bool = True, prefix: str = "") -> str:
    if not _finite(x):
        return "n/a"
    scale = 100.0 if metric == "accuracy" else 1.0
    return f"${prefix}{float(x) * scale:{'+' if signed else ''}.{_decimals(metric, margin)}f}$"


def _table(columns: str, header: Sequence[str], rows: Sequence[Sequence[str]], caption: str, label: str) -> str:
    lines = ["% Needs \\usepackage{booktabs}. Written by ablate report --latex.",
             "\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
             f"\\begin{{tabular}}{{{columns}}}", "\\toprule", " & ".join(header) + " \\\\", "\\midrule"]
    lines += [" & ".join(row) + " \\\\" for row in rows]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _where(row) -> str:
    parts = [str(row[c]) for c in ("backend", "dataset", "model") if str(row[c]) != "-"]
    return escape(" / ".join(parts) or "all runs")


def comparisons_tex(comparisons) -> str:
    """``comparisons`` is :class:`ablate.analysis.compare.Comparisons`; one row per comparison."""
    t = comparisons.table
    conf = round(100 * (1 - 2 * comparisons.alpha))
    margins = ", ".join(f"{_num(v, m, v, signed=False, prefix=PM)}{' pp' if m == 'accuracy' else ''} "
                        f"{escape(METRIC_NAMES.get(m, m))}" for m, v in comparisons.margins.items())
    caption = (f"Paired comparisons of arms: mean difference (first arm minus second; across "
               f"backends, first backend minus second) with its {conf}\\% t-interval; accuracy in percentage "
               f"points. Equivalence margins {margins}; $\\alpha = {comparisons.alpha:g}$; p-values adjusted by "
               f"{CORRECTIONS.get(comparisons.correction, escape(comparisons.correction))} over all {len(t)} "
               f"comparisons. $\\approx$: equivalent (interval inside the margin, adjusted TOST $p < \\alpha$); "
               f"$\\neq$: different by more than the margin; ?: inconclusive; $=$: identical.")
    rows = []
    for r in t.to_dict("records"):
        metric, margin = r["metric"], float(r["margin"])
        welch = r["test"] == "welch_t"
        pair = (f"{escape(r['arm_a'])}: {escape(r['backend'])}" if welch
                else f"{escape(r['arm_a'])} vs {escape(r['arm_b'])}")
        where = _where({**r, "backend": "-"}) if welch else _where(r)
        estimate = (f"{_num(r['mean_diff'], metric, margin)} [{_num(r['ci_low'], metric, margin)}, "
                    f"{_num(r['ci_high'], metric, margin)}]")
        n = str(int(r["n"])) if _finite(r["n"]) else "--"
        needed = str(int(r["seeds_needed"])) if _finite(r["seeds_needed"]) else "--"
        rows.append([escape(METRIC_NAMES.get(metric, metric)), where,
                     f"{float(r['smoothing']):g}" if _finite(r["smoothing"]) else "--", pair, estimate,
                     n, needed, MARKS.get(r["verdict"], escape(r["verdict"]))])
    header = ["Metric", "Setting", "$\\varepsilon$", "Comparison", "Difference [CI]", "$n$", "Seeds needed",
              "Verdict"]
    return _table("lllllrrl", header, rows, caption, "tab:ablate-comparisons")


def summary_tex(summary, metrics: Sequence[str] = ("accuracy", "ece", "nll", "brier"),
                arms: Mapping[str, str] | None = None) -> str:
    """``summary`` is the report's summary table (long: one row per cell and metric).

    arms: arm -> its trick and params in words (:func:`ablate.analysis.report.arm_tricks`), for the caption.
    """
    shown = [m for m in metrics if m in set(summary["metric"])]
    cell = ["backend", "dataset", "model", "arm", "smoothing"]
    rows = []
    for key, group in summary.groupby(cell, sort=False, dropna=False):
        row = dict(zip(cell, key))
        by_metric = {r["metric"]: r for r in group.to_dict("records")}
        values = []
        for m in shown:
            r = by_metric.get(m)
            if r is None or not _finite(r["mean"]):
                values.append("--")
                continue
            scale, digits = (100.0, 2) if m == "accuracy" else (1.0, 4)
            std = f" \\pm {float(r['std']) * scale:.{digits}f}" if _finite(r["std"]) else ""
            values.append(f"${float(r['mean']) * scale:.{digits}f}{std}$")
        n = max(int(r["n"]) for r in by_metric.values())
        rows.append([_where(row), escape(row["arm"]), f"{float(row['smoothing']):g}", str(n), *values])
    header = ["Setting", "Arm", "$\\varepsilon$", "$n$"] + [
        escape(METRIC_NAMES.get(m, m)) + (" (\\%)" if m == "accuracy" else "") for m in shown]
    caption = ("Test-set metrics per arm: mean $\\pm$ standard deviation over $n$ seeds (completed runs); "
               "the 95\\% t-intervals of the means are in summary.csv.")
    if arms:
        caption += " Arms: " + "; ".join(f"{escape(arm)}: {escape(text)}" for arm, text in arms.items()) + "."
    return _table("lllr" + "r" * len(shown), header, rows, caption, "tab:ablate-summary")


def write_tables(out: str | Path, *, comparisons, summary, arms: Mapping[str, str] | None = None) -> list[Path]:
    """Write ``comparisons.tex`` and ``summary.tex`` into ``out``; returns their paths."""
    out = Path(out)
    paths = [out / "comparisons.tex", out / "summary.tex"]
    from ablate import files

    files.write_text(paths[0], comparisons_tex(comparisons))
    files.write_text(paths[1], summary_tex(summary, arms=arms))
    return paths
