"""What the report's figures draw, computed here so that :mod:`ablate.analysis.figures` only draws.

- :func:`seed_points`: one row per run with its arm label and a sideways spread (``jitter``)
  drawn from the generator it is given, so a strip of per-seed points is the same on every report;
- :func:`training_bands`: per epoch, the mean over seeds and its 95% t-interval;
- :func:`power_overview`: the TOST power curves of the power figure's two panels.

Nothing here imports matplotlib or seaborn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ablate.analysis import stats
from ablate.analysis.compare import TARGET_POWER, Comparisons, power_curves

JITTER_SEED = 0  # the report's generator for the sideways spread of per-seed points
QUANTITIES = ("objective", "nll", "accuracy")  # the training-curve panels, in order
BAND_COLUMNS = ["backend", "dataset", "model", "arm", "arm_label", "split", "quantity", "epoch", "n", "mean",
                "low", "high"]


def arm_labels(frame: pd.DataFrame) -> pd.Series:
    """An arm smoothed at several eps gets its eps in the label; any other arm keeps its name.

    frame: columns ``arm`` and ``smoothing``; returns one label per row.
    """
    smoothed = set(frame.loc[frame["smoothing"] != 0, "arm"])
    eps = sorted(frame.loc[frame["arm"].isin(smoothed), "smoothing"].unique())
    if len(eps) < 2:
        return frame["arm"].astype(str)
    return pd.Series([arm if arm not in smoothed else f"{arm} {s:g}"
                      for arm, s in zip(frame["arm"].astype(str), frame["smoothing"])], index=frame.index)


def seed_points(runs: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The runs with ``arm_label`` and ``jitter`` (uniform in [-1, 1], one draw per row, in row order).

    runs: one row per run (columns ``arm``, ``smoothing``, and whatever the figure plots).
    A figure moves each point sideways by ``jitter`` times its own strip half-width.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"Expected `rng` to be a np.random.Generator, but got {type(rng).__name__}")
    out = runs.copy()
    out["arm_label"] = arm_labels(out) if len(out) else pd.Series(dtype=str)
    out["jitter"] = rng.uniform(-1.0, 1.0, size=len(out))
    return out


def training_bands(histories: pd.DataFrame, *, confidence: float = 0.95) -> pd.DataFrame:
    """Mean over seeds per epoch and its t-interval, for the training-curve figure.

    histories: long table, one row per (run, epoch, split, quantity) with columns ``backend,
    dataset, model, arm, smoothing, seed, epoch, split, quantity, value``. Returns one row per
    (backend, dataset, model, arm label, split, quantity, epoch) with ``n`` seeds, ``mean`` and
    ``low``/``high`` (NaN where n < 2), sorted; columns :data:`BAND_COLUMNS`.
    """
    frame = histories[histories["quantity"].isin(QUANTITIES)]
    frame = frame[np.isfinite(frame["value"].to_numpy(dtype=float))].copy()
    if not len(frame):
        return pd.DataFrame(columns=BAND_COLUMNS)
    frame["arm_label"] = arm_labels(frame)
    keys = ["backend", "dataset", "model", "arm", "arm_label", "split", "quantity", "epoch"]
    rows = []
    for key, group in frame.groupby(keys, sort=True):
        interval = stats.t_interval(group["value"].to_numpy(dtype=float), confidence=confidence)
        rows.append((*key, len(group), interval.estimate, interval.low, interval.high))
    return pd.DataFrame(rows, columns=BAND_COLUMNS)


@dataclass(frozen=True)
class PowerOverview:
    """The power figure's two panels for one metric: the main pairs, and each reference arm against
    the other arms. ``main`` and ``links`` are :func:`ablate.analysis.compare.power_curves` tables
    (columns ``label, metric, n, power, sd, margin, design``)."""

    metric: str
    alpha: float
    n_max: int
    target: float  # the power a design aims for (a dashed line)
    main_pairs: tuple[tuple[str, str], ...]
    references: tuple[str, ...]
    main: pd.DataFrame
    links: pd.DataFrame


def power_overview(comparisons: Comparisons, *, metric: str = "accuracy", n_max: int = 40) -> PowerOverview:
    """Split the comparisons' pairs into main pairs (both or neither a reference arm) and links
    (one reference arm), and compute each panel's power curves for ``metric``."""
    refs = set(comparisons.references)
    main = [p for p in comparisons.pairs if (p[0] in refs) == (p[1] in refs)]
    links = [p for p in comparisons.pairs if (p[0] in refs) != (p[1] in refs)]

    def curves(pairs):
        table = power_curves(comparisons, pairs=pairs, n_max=n_max)
        return table[table["metric"] == metric].reset_index(drop=True)

    return PowerOverview(metric=metric, alpha=float(comparisons.alpha), n_max=int(n_max), target=TARGET_POWER,
                         main_pairs=tuple(map(tuple, main)), references=tuple(sorted(refs)),
                         main=curves(main), links=curves(links))
