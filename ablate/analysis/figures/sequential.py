"""Group-sequential comparisons: the estimate and repeated intervals at each look (plotting only).

Everything drawn comes from :func:`ablate.analysis.sequential.sequential_comparisons`
(its ``looks`` table); nothing is computed here.
"""

from __future__ import annotations

import math

from ablate.analysis.figures._style import style

MAX_PANELS = 24


def sequential_paths(seq, *, max_panels: int = MAX_PANELS):
    """One panel per comparison (at most ``max_panels``, in table order).

    x: seeds at each look; a dot at the mean difference with the repeated (1 − 2α)
    equivalence interval as a thick bar and the repeated (1 − α) difference interval as
    a thin one; the shaded band is ±margin, the dashed line 0 and the dotted vertical
    line the deciding look. Returns the figure.
    """
    import matplotlib.pyplot as plt

    keys = ["metric", "backend", "dataset", "model", "smoothing", "arm_a", "arm_b"]
    rows = seq.table.head(max_panels).to_dict("records")
    n = max(len(rows), 1)
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    with style():
        fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
        for ax in axes.ravel()[len(rows):]:
            ax.set_visible(False)
        for ax, row in zip(axes.ravel(), rows):
            path = seq.looks
            for key in keys:
                path = path[path[key] == row[key]]
            margin = float(row["margin"])
            ax.axhspan(-margin, margin, color="#2ca02c", alpha=0.15, lw=0, label="±margin")
            ax.axhline(0.0, color="#555555", lw=0.8, ls="--")
            x = path["n"].to_numpy(float)
            est = path["estimate"].to_numpy(float)
            ax.vlines(x, path["diff_low"], path["diff_high"], color="#1f77b4", lw=1.0,
                      label="repeated (1−α) interval")
            ax.vlines(x, path["eq_low"], path["eq_high"], color="#1f77b4", lw=4.0, alpha=0.6,
                      label="repeated (1−2α) interval")
            ax.plot(x, est, "o-", color="#d62728", ms=4, lw=1, label="mean difference")
            if row["decided_at"] is not None and not _missing(row["decided_at"]):
                ax.axvline(float(row["decided_at"]), color="#333333", lw=1, ls=":")
            where = " / ".join(p for p in (row["backend"], row["dataset"], row["model"]) if p != "-")
            eps = f" ε={row['smoothing']:g}" if row["smoothing"] else ""
            ax.set_title(f"{row['metric']}: {row['arm_a']} − {row['arm_b']}{eps}\n{where} → {row['decision']}"
                         if where else f"{row['metric']}: {row['arm_a']} − {row['arm_b']}{eps} → {row['decision']}",
                         fontsize=9)
            ax.set_xticks(list(seq.looks_planned))
            ax.set_xlabel("seeds")
            # Keep the band visible even when early intervals are very wide.
            finite = path[["eq_low", "eq_high"]].to_numpy(float)
            finite = finite[abs(finite) < 1e300]
            span = max([3 * margin] + [abs(v) for v in finite if abs(v) < 20 * margin])
            ax.set_ylim(-1.1 * span, 1.1 * span)
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False,
                       bbox_to_anchor=(0.5, -0.02))
        fig.suptitle(f"Group-sequential comparisons ({seq.spending} spending, looks at "
                     f"{', '.join(map(str, seq.looks_planned))} seeds)", fontsize=10)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def _missing(value) -> bool:
    try:
        return bool(value != value) or value is None or str(value) == "<NA>"
    except TypeError:
        return True
