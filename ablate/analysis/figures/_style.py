"""Shared styling, applied only inside a context manager."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# Fixed places and colours for the built-in arm names; any other arm comes after them, in
# order of appearance, with the next colour of EXTRA_COLOURS.
ARM_ORDER = ("none", "explicit", "loss")
ARM_PALETTE = {"none": "#7f7f7f", "explicit": "#1f77b4", "loss": "#d62728"}
EXTRA_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e", "#393b79")


def arm_order(arms) -> list[str]:
    """Arms to draw, in order: the built-in names in ARM_ORDER first, then the others as they appear."""
    arms = [str(a) for a in dict.fromkeys(arms)]
    return [a for a in ARM_ORDER if a in arms] + [a for a in arms if a not in ARM_ORDER]


def arm_palette(arms) -> dict[str, str]:
    """{arm: colour} for any arm names: built-in colours, then EXTRA_COLOURS in order (cycled)."""
    others = [a for a in arm_order(arms) if a not in ARM_PALETTE]
    colours = {a: EXTRA_COLOURS[i % len(EXTRA_COLOURS)] for i, a in enumerate(others)}
    return {a: ARM_PALETTE.get(a) or colours[a] for a in arm_order(arms)}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Apply ablate's seaborn theme for the duration of the block, then restore rcParams."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with plt.rc_context():
        sns.set_theme(context="notebook", style="whitegrid")
        yield


def new_axes(ax=None, figsize=(6.0, 4.0)):
    """Return ``(fig, ax)``: the given axes' figure, or a fresh figure."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def save_figure(fig, path, *, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` and release it (report runs draw many figures)."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def detached(draw):
    """``draw()``'s figure, released by pyplot (which opened it) but whole: a figure handed to a
    caller who owns it, with pyplot's list of open figures as it was before."""
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    fig = draw()
    for number in set(plt.get_fignums()) - before:
        plt.close(number)
    return fig
