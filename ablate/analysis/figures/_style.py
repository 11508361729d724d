"""Shared styling, applied only inside a context manager."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# An arm named after a trick takes that trick's place and colour (the tricks registry holds them);
# any other arm comes after them, in order of appearance, with the next unused colour here.
EXTRA_COLOURS = ("#e377c2", "#bcbd22", "#17becf", "#393b79", "#aec7e8", "#98df8a", "#c5b0d5", "#c49c94",
                 "#2ca02c", "#9467bd", "#8c564b", "#ff7f0e")


def arm_order(arms) -> list[str]:
    """Arms to draw, in order: those named after a trick in the registry's order, then the others as they appear."""
    from ablate import tricks

    arms = [str(a) for a in dict.fromkeys(arms)]
    known = tricks.colours()
    return [a for a in known if a in arms] + [a for a in arms if a not in known]


def arm_palette(arms) -> dict[str, str]:
    """{arm: colour} for any arm names: a trick's own colour, then the unused EXTRA_COLOURS in order (cycled)."""
    from ablate import tricks

    known = tricks.colours()
    order = arm_order(arms)
    taken = {known[a] for a in order if a in known}
    free = [c for c in EXTRA_COLOURS if c not in taken] or list(EXTRA_COLOURS)
    others = [a for a in order if a not in known]
    colours = {a: free[i % len(free)] for i, a in enumerate(others)}
    return {a: known.get(a) or colours[a] for a in order}


# Every label ablate draws is a name (an arm, a dataset, a model) or plain words, never a formula:
# mathtext is off, so a name holding `$` (e.g. "$x^$") is drawn as written instead of raising.
PLAIN_TEXT = {"text.parse_math": False}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Apply ablate's seaborn theme for the duration of the block, then restore rcParams."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with plt.rc_context():
        sns.set_theme(context="notebook", style="whitegrid")
        plt.rcParams.update(PLAIN_TEXT)
        yield


def new_axes(ax=None, figsize=(6.0, 4.0)):
    """Return ``(fig, ax)``: the given axes' figure, or a fresh figure."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def strip(ax, frame, *, x: str, y: str, hue: str, order, hue_order, palette, jitter: float = 0.1,
          width: float = 0.8, size: float = 5.0, **scatter) -> None:
    """One point per row at its ``x`` category, dodged by ``hue`` as seaborn's boxplot dodges it.

    Each point moves sideways by the row's ``jitter`` column (in [-1, 1], drawn in analysis by
    :func:`ablate.analysis.figure_data.seed_points`; 0 when absent) times ``jitter`` over the number of
    hue levels, so the figure uses no random numbers of its own. ``size`` is the marker diameter
    in points, like seaborn's stripplot.
    """
    import numpy as np

    position = {c: i for i, c in enumerate(order)}
    levels = list(hue_order)
    step = width / max(len(levels), 1)
    for j, level in enumerate(levels):
        sub = frame[(frame[hue] == level) & frame[x].isin(position)]
        if not len(sub):
            continue
        spread = sub["jitter"].to_numpy(dtype=float) if "jitter" in sub else np.zeros(len(sub))
        xs = sub[x].map(position).to_numpy(dtype=float) - width / 2 + (j + 0.5) * step + spread * jitter / len(levels)
        ax.scatter(xs, sub[y].to_numpy(dtype=float), s=size ** 2, color=palette[level], linewidths=0, **scatter)


def save_figure(fig, path, *, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` (atomically: a failed write leaves the old file) and release it."""
    import io

    import matplotlib.pyplot as plt

    from ablate import files

    # Tick labels are made while drawing: they too must be plain text.
    with plt.rc_context(PLAIN_TEXT):
        for text in fig.findobj(lambda a: hasattr(a, "set_parse_math")):
            text.set_parse_math(False)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    files.write_bytes(path, buffer.getvalue())


def detached(make):
    """Call ``make()`` (it draws and returns a Figure) and leave pyplot as it was: the figure
    belongs to the caller, and pyplot's list of open figures does not grow."""
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    fig = make()
    for number in set(plt.get_fignums()) - before:
        plt.close(number)  # pyplot forgets it; the Figure object stays whole
    return fig
