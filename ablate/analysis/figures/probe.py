"""The divergence probe's figure: relative weight distance against optimiser step."""

from __future__ import annotations

from ablate.analysis.figures._style import new_axes, style

# Order and colours of the pair kinds (ablate.execution.probe.KINDS).
KIND_ORDER = ("explicit vs loss", "same run twice", "across backends", "none vs explicit")
KIND_PALETTE = {"explicit vs loss": "#1f77b4", "same run twice": "#2ca02c",
                "across backends": "#ff7f0e", "none vs explicit": "#7f7f7f"}
# Kinds that often lie on top of each other (both exactly 0 on the CPU) stay visible.
KIND_STYLE = {"explicit vs loss": {"linewidth": 3.0, "marker": "o", "markersize": 5},
              "same run twice": {"linewidth": 1.4, "linestyle": "--", "marker": "x", "markersize": 5}}
# A log axis cannot show 0; exact zeros are drawn on this floor, which the axis labels.
ZERO_FLOOR = 1e-12


def distance_by_step(table, ax=None):
    """One line per pair kind: the largest relative L2 weight distance among its pairs, per step.

    table: probe.csv as a DataFrame (columns step, kind, relative_distance, ...).
    """
    import numpy as np

    with style():
        fig, ax = new_axes(ax, figsize=(6.5, 4.0))
        kinds = [k for k in KIND_ORDER if k in set(table["kind"])] + \
                sorted(set(table["kind"]) - set(KIND_ORDER))
        any_zero = False
        for kind in kinds:
            worst = table[table["kind"] == kind].groupby("step")["relative_distance"].max().sort_index()
            values = worst.to_numpy(float)
            any_zero |= bool((values[worst.index > 0] == 0).any())
            look = {"marker": "o", "markersize": 3, "linewidth": 1.6, **KIND_STYLE.get(kind, {})}
            ax.plot(worst.index, np.maximum(values, ZERO_FLOOR), label=kind, color=KIND_PALETTE.get(kind), **look)
        ax.set_yscale("log")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("relative L2 distance of the weights")
        if any_zero:
            ax.axhline(ZERO_FLOOR, color="black", linewidth=0.6, linestyle=":")
            ax.text(ax.get_xlim()[1], ZERO_FLOOR, " exactly 0", va="center", ha="left", fontsize=8)
        ax.set_title("Where paired runs part (largest distance per pair kind)", fontsize=10)
        ax.legend(title="pair", fontsize=8, title_fontsize=8)
        fig.tight_layout()
        return fig
