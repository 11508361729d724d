"""Power of the equivalence test against the number of seeds (plotting only).

The curves come from :func:`ablate.analysis.compare.power_curves`, which calls
:func:`ablate.analysis.stats.tost_power`; nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ablate.analysis.compare import TARGET_POWER, Comparisons, power_curves
from ablate.analysis.figures._style import new_axes, style


def power_curve(
    comparisons: Comparisons,
    *,
    arms: tuple[str, str] | None = ("explicit", "loss"),
    metrics: Sequence[str] | None = None,
    n_max: int = 40,
    ax=None,
    pairs=None,
):
    """Plot TOST power against seed count, one line per group and metric.

    Each line uses its row's margin and observed SD of the paired differences (pooled
    SD, seeds per backend, for cross-backend rows). ``arms`` picks the rows (default
    explicit vs loss; None: all rows; ``pairs``, a list of arm pairs, overrides it) and
    ``metrics`` the metrics (default all). A
    dashed line marks the 80% target and a dot each row's ``seeds_needed``. Returns the
    figure (``ax``'s figure when given).
    """
    curves = power_curves(comparisons, arms=arms, n_max=n_max, pairs=pairs)
    if metrics is not None:
        curves = curves[curves["metric"].isin(list(metrics))]
    with style():
        fig, ax = new_axes(ax)
        for (label, metric), line in curves.groupby(["label", "metric"], sort=False):
            (handle,) = ax.plot(line["n"], line["power"], lw=1.5, label=f"{label} · {metric}")
            reached = line[line["power"] >= TARGET_POWER]
            if len(reached):
                first = reached.iloc[0]
                ax.plot([first["n"]], [first["power"]], "o", ms=4, color=handle.get_color())
        ax.axhline(TARGET_POWER, ls="--", lw=1, color="0.4")
        ax.set_xlabel("seeds (pairs)")
        ax.set_ylabel(f"TOST power at ±margin (α = {comparisons.alpha:g})")
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


def power_overview(comparisons: Comparisons, *, metric: str = "accuracy", n_max: int = 40):
    """Two panels for one metric: the main pairs (e.g. explicit vs loss), and each reference
    arm (e.g. none) against the other arms.

    When two arms agree bitwise their curve is flat at 1, so the second panel is what
    tells how many seeds a design needs.
    """
    import matplotlib.pyplot as plt

    refs = set(comparisons.references)
    main = [p for p in comparisons.pairs if (p[0] in refs) == (p[1] in refs)]
    links = [p for p in comparisons.pairs if (p[0] in refs) != (p[1] in refs)]
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        power_curve(comparisons, pairs=main, metrics=[metric], n_max=n_max, ax=axes[0])
        names = ", ".join(f"{a} vs {b}" for a, b in main[:3]) + (" …" if len(main) > 3 else "")
        axes[0].set_title(f"{names or 'no main pair'}: seeds to show equivalence ({metric})", fontsize=10)
        power_curve(comparisons, pairs=links, metrics=[metric], n_max=n_max, ax=axes[1])
        ref = ", ".join(sorted(refs)) or "no reference arm"
        axes[1].set_title(f"{ref} vs the other arms: seeds to show equivalence ({metric})", fontsize=10)
        fig.tight_layout()
    return fig
