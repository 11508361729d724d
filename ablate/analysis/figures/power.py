"""Power of the equivalence test against the number of seeds (plotting only).

The curves come from :func:`ablate.analysis.compare.power_curves` (and, for the report's two
panels, :func:`ablate.analysis.figure_data.power_overview`); nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ablate.analysis.figures._style import new_axes, style


def power_curve(
    curves,
    *,
    alpha: float,
    target: float = 0.8,
    metrics: Sequence[str] | None = None,
    n_max: int | None = None,
    ax=None,
):
    """Plot TOST power against seed count, one line per group and metric.

    curves: the long table of :func:`ablate.analysis.compare.power_curves` (columns ``label,
    metric, n, power``); ``metrics`` keeps some of its metrics (default all); ``alpha`` and
    ``target`` label the axis and the dashed line; ``n_max``: the x range (default the
    table's largest n). A dot marks where each line first reaches ``target``. Returns the
    figure (``ax``'s figure when given).
    """
    if metrics is not None:
        curves = curves[curves["metric"].isin(list(metrics))]
    if n_max is None:
        n_max = int(curves["n"].max()) if len(curves) else 40
    with style():
        fig, ax = new_axes(ax)
        for (label, metric), line in curves.groupby(["label", "metric"], sort=False):
            (handle,) = ax.plot(line["n"], line["power"], lw=1.5, label=f"{label} · {metric}")
            reached = line[line["power"] >= target]
            if len(reached):
                first = reached.iloc[0]
                ax.plot([first["n"]], [first["power"]], "o", ms=4, color=handle.get_color())
        ax.axhline(target, ls="--", lw=1, color="0.4")
        ax.set_xlabel("seeds (pairs)")
        ax.set_ylabel(f"TOST power at ±margin (α = {alpha:g})")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(2, max(int(n_max), 3))
        ax.set_title("Seeds needed to show equivalence")
        if curves.empty:
            ax.text(0.5, 0.5, "no comparison with an estimable SD", ha="center", va="center",
                    transform=ax.transAxes)
        else:
            ax.legend(fontsize="x-small", loc="lower right")
        fig.tight_layout()
    return fig


def power_overview(overview):
    """Two panels for one metric: the main pairs (e.g. explicit vs loss), and each reference
    arm (e.g. none) against the other arms.

    overview: an :class:`ablate.analysis.figure_data.PowerOverview`. When two arms agree bitwise
    their curve is flat at 1, so the second panel is what tells how many seeds a design needs.
    """
    import matplotlib.pyplot as plt

    common = {"alpha": overview.alpha, "target": overview.target, "n_max": overview.n_max}
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        power_curve(overview.main, ax=axes[0], **common)
        main = overview.main_pairs
        names = ", ".join(f"{a} vs {b}" for a, b in main[:3]) + (" …" if len(main) > 3 else "")
        axes[0].set_title(f"{names or 'no main pair'}: seeds to show equivalence ({overview.metric})",
                          fontsize=10)
        power_curve(overview.links, ax=axes[1], **common)
        ref = ", ".join(overview.references) or "no reference arm"
        axes[1].set_title(f"{ref} vs the other arms: seeds to show equivalence ({overview.metric})", fontsize=10)
        fig.tight_layout()
    return fig
