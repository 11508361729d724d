"""Per-run figures: a metric by arm and backend, and training curves."""

from __future__ import annotations

from ablate.analysis.figures._style import arm_order, arm_palette, style

_LABELS = {"accuracy": "test accuracy", "ece": "test ECE (15 bins, L1)", "nll": "test NLL",
           "ece_ts": "test ECE after temperature scaling", "brier": "test Brier score"}


def _arm_label(frame):
    """Smoothed arms with several eps get their eps in the label; an arm never smoothed stays as is."""
    smoothed = set(frame.loc[frame["smoothing"] != 0, "arm"])
    eps = sorted(frame.loc[frame["arm"].isin(smoothed), "smoothing"].unique())
    if len(eps) < 2:
        return frame["arm"]
    return frame.apply(lambda r: r["arm"] if r["arm"] not in smoothed else f"{r['arm']} {r['smoothing']:g}",
                       axis=1)


def metric_by_arm(runs, metric: str, ax=None):
    """Box per arm and backend plus one point per seed. runs: DataFrame, one row per completed run."""
    import seaborn as sns

    with style():
        frame = runs.copy()
        frame["arm_label"] = _arm_label(frame)
        order = arm_order(frame["arm"])
        labels = [lab for arm in order for lab in sorted(frame.loc[frame["arm"] == arm, "arm_label"].unique())]
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
            sns.boxplot(data=sub, x="arm_label", y=metric, hue="backend", order=labels, ax=axis,
                        fliersize=0, boxprops={"alpha": 0.35})
            sns.stripplot(data=sub, x="arm_label", y=metric, hue="backend", order=labels, ax=axis, dodge=True,
                          size=4.5, alpha=0.9, legend=False, jitter=0.12)
            axis.set_xlabel("arm")
            axis.set_ylabel(_LABELS.get(metric, metric))
            axis.set_title(f"{dataset} / {model}: {_LABELS.get(metric, metric)} (one point per seed)", fontsize=10)
            if axis.get_legend() is not None:
                axis.legend(title="backend", fontsize=8, title_fontsize=8)
        fig.tight_layout()
        return fig


def training_curves(histories):
    """Train and validation NLL and accuracy per epoch, mean over seeds with a 95% band.

    histories: long DataFrame with columns backend, dataset, model, arm, smoothing, seed, epoch,
    split (train/val), quantity (objective/nll/accuracy) and value.
    """
    import seaborn as sns

    with style():
        frame = histories[histories["quantity"].isin(["objective", "nll", "accuracy"])].copy()
        labels = _arm_label(frame)
        colours = arm_palette(frame["arm"])
        hue_order = [lab for arm in colours for lab in sorted(labels[frame["arm"] == arm].unique())]
        base = {lab: arm for arm in colours for lab in labels[frame["arm"] == arm].unique()}
        frame["arm"] = labels
        palette = {lab: colours[base[lab]] for lab in hue_order}
        frame["panel"] = frame["backend"] + " / " + frame["dataset"] + " / " + frame["model"]
        grid = sns.relplot(data=frame, x="epoch", y="value", hue="arm", hue_order=hue_order,
                           palette=palette, style="split", row="panel", col="quantity",
                           col_order=["objective", "nll", "accuracy"], kind="line", errorbar=("ci", 95),
                           height=2.8, aspect=1.3, facet_kws={"sharey": False})
        grid.set_titles("{row_name}: {col_name}", size=9)
        from matplotlib.ticker import MaxNLocator

        for axis in grid.axes.flat:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        grid.figure.suptitle("Training curves: optimiser objective, NLL on hard labels, accuracy "
                             "(mean over seeds, 95% band)", y=1.01, fontsize=10)
        return grid.figure
