"""Shared styling, applied only inside a context manager."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

ARM_ORDER = ("none", "explicit", "loss")
ARM_PALETTE = {"none": "#7f7f7f", "explicit": "#1f77b4", "loss": "#d62728"}


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
