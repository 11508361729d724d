"""Per-run figures: a metric by arm and backend, and training curves (drawing only).

The per-seed points' sideways spread comes from :func:`ablate.analysis.figure_data.seed_points`
and the training-curve bands from :func:`ablate.analysis.figure_data.training_bands`.
"""

from __future__ import annotations

from ablate.analysis.figures._style import arm_order, arm_palette, strip, style

_LABELS = {"accuracy": "test accuracy", "ece": "test ECE (15 bins, L1)", "nll": "test NLL",
           "ece_ts": "test ECE after temperature scaling", "brier": "test Brier score"}
_SPLIT_STYLES = {"train": "-", "val": "--"}


def metric_by_arm(points, metric: str, ax=None):
    """Box per arm and backend plus one point per seed.

    points: :func:`ablate.analysis.figure_data.seed_points` of the completed runs (one row per
    run, with ``arm_label`` and ``jitter``). Returns the figure.
    """
    import seaborn as sns

    with style():
        frame = points
        order = arm_order(frame["arm"])
        labels = [lab for arm in order for lab in sorted(frame.loc[frame["arm"] == arm, "arm_label"].unique())]
        backends = sorted(frame["backend"].astype(str).unique())
        palette = dict(zip(backends, sns.color_palette(n_colors=max(len(backends), 1))))
        panels = sorted(frame[["dataset", "model"]].drop_duplicates().itertuples(index=False))
        if ax is None:
            import matplotlib.pyplot as plt

            fig, axes = plt.subplots(1, len(panels), figsize=(max(5.5, 1.6 * len(labels) + 2) * len(panels), 4.2),
                                     squeeze=False)
            axes = axes[0]
        else:
            fig, axes = ax.figure, [ax]
        for axis, (dataset, model) in zip(axes, panels):
            sub = frame[(frame["dataset"] == dataset) & (frame["model"] == model)]
            sns.boxplot(data=sub, x="arm_label", y=metric, hue="backend", order=labels, hue_order=backends,
                        palette=palette, ax=axis, fliersize=0, boxprops={"alpha": 0.35})
            strip(axis, sub, x="arm_label", y=metric, hue="backend", order=labels, hue_order=backends,
                  palette=palette, jitter=0.12, size=4.5, alpha=0.9, zorder=3)
            axis.set_xlabel("arm")
            axis.set_ylabel(_LABELS.get(metric, metric))
            axis.set_title(f"{dataset} / {model}: {_LABELS.get(metric, metric)} (one point per seed)", fontsize=10)
            if axis.get_legend() is not None:
                axis.legend(title="backend", fontsize=8, title_fontsize=8)
        fig.tight_layout()
        return fig


def training_curves(bands):
    """Train and validation objective, NLL and accuracy per epoch: mean over seeds with a 95% band.

    bands: :func:`ablate.analysis.figure_data.training_bands` (one row per backend, dataset, model,
    arm label, split, quantity and epoch, with ``mean``, ``low`` and ``high``). One row of panels
    per backend / dataset / model, one column per quantity. Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from ablate.analysis.figure_data import QUANTITIES

    with style():
        colours = arm_palette(bands["arm"])
        hue_order = [lab for arm in colours for lab in sorted(bands.loc[bands["arm"] == arm, "arm_label"].unique())]
        base = dict(zip(bands["arm_label"], bands["arm"]))
        palette = {lab: colours[base[lab]] for lab in hue_order}
        panels = sorted(bands[["backend", "dataset", "model"]].drop_duplicates().itertuples(index=False))
        fig, axes = plt.subplots(len(panels), len(QUANTITIES), figsize=(3.64 * len(QUANTITIES), 2.8 * len(panels)),
                                 squeeze=False)
        for r, panel in enumerate(panels):
            here = bands[(bands["backend"] == panel[0]) & (bands["dataset"] == panel[1])
                         & (bands["model"] == panel[2])]
            for c, quantity in enumerate(QUANTITIES):
                axis = axes[r, c]
                for label in hue_order:
                    for split, ls in _SPLIT_STYLES.items():
                        line = here[(here["arm_label"] == label) & (here["split"] == split)
                                    & (here["quantity"] == quantity)].sort_values("epoch")
                        if not len(line):
                            continue
                        axis.plot(line["epoch"], line["mean"], ls=ls, lw=1.5, color=palette[label])
                        axis.fill_between(line["epoch"], line["low"], line["high"], color=palette[label],
                                          alpha=0.2, lw=0)
                axis.set_title(f"{' / '.join(panel)}: {quantity}", fontsize=9)
                axis.set_xlabel("epoch")
                axis.set_ylabel("value" if c == 0 else "")
                axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles = [Line2D([], [], color=palette[lab], lw=1.5, label=lab) for lab in hue_order]
        handles += [Line2D([], [], color="0.3", ls=ls, lw=1.5, label=split) for split, ls in _SPLIT_STYLES.items()]
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", frameon=False)
        fig.suptitle("Training curves: optimiser objective, NLL on hard labels, accuracy "
                     "(mean over seeds, 95% t-interval)", y=1.01, fontsize=10)
        fig.tight_layout()
        return fig
