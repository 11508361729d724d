"""Calibration figures: reliability diagrams per arm, and the temperature-scaling control.

Plots only: the numbers come from :mod:`ablate.analysis.calibration` (``ReliabilityData``) or from
the report's tables. matplotlib and seaborn are imported inside the functions and all
styling happens inside :func:`ablate.analysis.figures._style.style`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ablate.analysis.calibration import ReliabilityData
from ablate.errors import InputError
from ablate.analysis.figures._style import arm_order, arm_palette, new_axes, strip, style

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_BACKEND_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_STAGES = ("uncalibrated", "temperature-scaled")
_GAP_COLOUR = "#ff7f0e"


def _arm_order(arms) -> list[str]:
    """Arms named after a trick first, in the tricks registry's order, then the others as given."""
    return arm_order(arms)


def _arm_colours(arms: list[str]) -> dict[str, str]:
    return arm_palette(arms)


def reliability_diagrams(
    data_by_arm: Mapping[str, ReliabilityData], *, title: str | None = None
) -> Figure:
    """One reliability diagram per arm, side by side, with the bin counts underneath.

    Each panel shows the accuracy per bin as bars in the arm's colour, the gap to the
    bin's mean confidence as a hatched bar, and the diagonal of perfect calibration. A
    small histogram underneath shows how many examples fall in each bin (log scale).
    Empty bins are left blank.

    Args:
        data_by_arm: ``{arm: ReliabilityData}``, e.g. from
            :func:`ablate.analysis.calibration.reliability_bins` on one arm's pooled seeds.
            Panels are ordered none, explicit, loss (when present), then other arms.
        title: optional figure title.

    Returns:
        The figure (1 x n_arms panels, each with its count histogram).
    """
    if not data_by_arm:
        raise InputError("Expected `data_by_arm` to hold at least one arm, but got an empty mapping.")
    for arm, data in data_by_arm.items():
        if not isinstance(data, ReliabilityData):
            raise InputError(
                f"Expected `data_by_arm[{arm!r}]` to be a ReliabilityData, but got {type(data).__name__}."
            )
    arms = _arm_order(data_by_arm)
    colours = _arm_colours(arms)

    with style():
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(
            2,
            len(arms),
            figsize=(3.6 * len(arms), 4.8),
            sharex=True,
            sharey="row",
            squeeze=False,
            gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08},
        )
        for col, arm in enumerate(arms):
            _reliability_panel(axes[0, col], axes[1, col], data_by_arm[arm], arm, colours[arm])
            if col > 0:
                axes[0, col].set_ylabel("")
                axes[1, col].set_ylabel("")
        axes[0, 0].legend(loc="upper left", fontsize="small", frameon=True)
        if title is not None:
            fig.suptitle(title)
        fig.align_ylabels(axes[:, 0])
    return fig


def _reliability_panel(ax: Axes, ax_count: Axes, data: ReliabilityData, arm: str, colour: str) -> None:
    filled = data.count > 0
    lower, width = data.lower[filled], (data.upper - data.lower)[filled]
    acc, conf, count = data.accuracy[filled], data.confidence[filled], data.count[filled]

    ax.bar(lower, acc, width=width, align="edge", color=colour, edgecolor="white",
           linewidth=0.6, label="accuracy")
    ax.bar(lower, conf - acc, bottom=acc, width=width, align="edge", facecolor=_GAP_COLOUR,
           alpha=0.25, edgecolor=_GAP_COLOUR, hatch="//", linewidth=0.6,
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.2", linewidth=1.0, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{arm} (n = {int(data.count.sum())})")
    ax.set_ylabel("accuracy")

    ax_count.bar(lower, count, width=width, align="edge", color=colour, edgecolor="white",
                 linewidth=0.6)
    ax_count.set_yscale("log")
    ax_count.set_ylim(bottom=0.5)  # a bin holding one example stays visible
    ax_count.set_xlabel("confidence")
    ax_count.set_ylabel("count")


def temperature_effect(table: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Test ECE of every run before and after temperature scaling, per arm.

    The x axis has two stages (uncalibrated, temperature-scaled); each arm has its
    colour, one point per run (marker = backend) and a line joining the arm's mean
    ECE before and after scaling, so the plot shows whether smoothing still helps once
    a temperature is fitted.

    Args:
        table: one row per run with columns ``arm``, ``backend``, ``ece`` (test ECE
            before scaling) and ``ece_ts`` (test ECE after scaling); an optional ``jitter``
            column (from :func:`ablate.analysis.figure_data.seed_points`) spreads the points.
        ax: axes to draw on; a new figure when None.

    Returns:
        The figure holding ``ax``.
    """
    missing = [c for c in ("arm", "backend", "ece", "ece_ts") if c not in table.columns]
    if missing:
        raise InputError(
            f"Expected `table` to have columns ('arm', 'backend', 'ece', 'ece_ts'), "
            f"but column {missing[0]!r} is missing."
        )
    if len(table) == 0:
        raise InputError("Expected `table` to have at least one row (one per run), but got 0 rows.")

    import pandas as pd

    arms = _arm_order(table["arm"].astype(str))
    colours = _arm_colours(arms)
    backends = sorted(table["backend"].astype(str).unique())
    long = pd.DataFrame(
        {
            "arm": np.tile(table["arm"].astype(str).to_numpy(), 2),
            "backend": np.tile(table["backend"].astype(str).to_numpy(), 2),
            "stage": np.repeat(_STAGES, len(table)),
            "ECE": np.concatenate(
                [table["ece"].to_numpy(dtype=float), table["ece_ts"].to_numpy(dtype=float)]
            ),
            # the sideways spread drawn in analysis (figure_data.seed_points); none when absent
            "jitter": np.tile(table["jitter"].to_numpy(dtype=float) if "jitter" in table.columns
                              else np.zeros(len(table)), 2),
        }
    )

    with style():
        import seaborn as sns
        from matplotlib.lines import Line2D

        fig, ax = new_axes(ax, figsize=(6.0, 4.0))
        common = {"x": "stage", "y": "ECE", "hue": "arm", "order": _STAGES,
                  "hue_order": arms, "palette": colours, "ax": ax}
        for i, backend in enumerate(backends):
            strip(ax, long[long["backend"] == backend], x="stage", y="ECE", hue="arm", order=_STAGES,
                  hue_order=arms, palette=colours, jitter=0.08, alpha=0.55, size=5,
                  marker=_BACKEND_MARKERS[i % len(_BACKEND_MARKERS)])
        sns.pointplot(data=long, dodge=0.8 - 0.8 / len(arms), errorbar=None, markers="_",
                      markersize=14, linewidth=1.6, legend=False, **common)
        ax.set_xlabel("")
        ax.set_ylabel("test ECE")
        ax.set_ylim(bottom=0)

        handles = [Line2D([], [], color=colours[a], linewidth=1.6, label=a) for a in arms]
        if len(backends) > 1:
            handles += [
                Line2D([], [], linestyle="", marker=_BACKEND_MARKERS[i % len(_BACKEND_MARKERS)],
                       color="0.4", label=b)
                for i, b in enumerate(backends)
            ]
        ax.legend(handles=handles, fontsize="small", frameon=True)
        ax.set_title("ECE before and after temperature scaling (lines: arm means)")
    return fig
