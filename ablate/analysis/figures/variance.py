"""Where the seed-to-seed variance comes from: stacked shares per arm and metric (draws only)."""

from __future__ import annotations

from ablate.analysis.figures._style import arm_order, style

SOURCE_COLOURS = {"init": "#1f77b4", "order": "#ff7f0e", "augment": "#2ca02c", "split": "#9467bd",
                  "residual": "#7f7f7f"}
INTERACTION_COLOURS = ("#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d",
                       "#9edae5", "#c7c7c7")


def source_shares(table, ax=None):
    """Stacked bars of each source's share of the variance, one bar per arm, one panel per metric.

    table: variance.csv (:func:`ablate.analysis.variance.components_table`); settings
    (backend / dataset / model / ε) beyond the first are labelled in the bar's name.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns  # noqa: F401  (the theme comes from style())

    with style():
        frame = table.copy()
        many = len(frame[["backend", "dataset", "model"]].drop_duplicates()) > 1
        several_eps = frame.loc[frame["smoothing"] != 0, "smoothing"].nunique() > 1
        frame["bar"] = frame.apply(
            lambda r: str(r["arm"]) + (f" ε={r['smoothing']:g}" if several_eps and r["smoothing"] else "")
            + (f"\n{r['backend']} {r['dataset']} {r['model']}" if many else ""), axis=1)
        metrics = list(dict.fromkeys(frame["metric"]))
        sources = list(dict.fromkeys(frame["source"]))
        interactions = [s for s in sources if s not in SOURCE_COLOURS]
        colours = {**SOURCE_COLOURS, **{s: INTERACTION_COLOURS[i % len(INTERACTION_COLOURS)]
                                        for i, s in enumerate(interactions)}}
        order = [b for arm in arm_order(frame["arm"]) for b in dict.fromkeys(frame.loc[frame["arm"] == arm, "bar"])]
        if ax is None:
            fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.0, 0.9 * len(order) + 2.0) * len(metrics), 4.2),
                                     squeeze=False, sharey=True)
            axes = axes[0]
        else:
            fig, axes = ax.figure, [ax]
        for axis, metric in zip(axes, metrics):
            sub = frame[frame["metric"] == metric]
            bottom = np.zeros(len(order))
            for source in sources:
                values = np.array([sub.loc[(sub["bar"] == b) & (sub["source"] == source), "share"].sum()
                                   for b in order])
                axis.bar(range(len(order)), values, bottom=bottom, color=colours[source], label=source,
                         edgecolor="white", linewidth=0.5)
                bottom += values
            axis.set_xticks(range(len(order)), order, fontsize=8)
            axis.set_ylim(0, 1)
            axis.set_title(metric)
            axis.set_ylabel("share of the seed-to-seed variance")
        axes[-1].legend(title="source", fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
        fig.suptitle("Where the spread comes from (balanced ANOVA variance components)")
        fig.tight_layout()
    return fig
