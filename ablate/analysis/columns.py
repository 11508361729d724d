"""The runs table's column names, kept apart from :mod:`ablate.analysis.table` so that modules
which only name columns (the report's layout, the variance components) do not import pandas."""

from __future__ import annotations

REQUIRED = ("arm", "seed")
# The seed of each source of randomness in a factorial design (`seeds: {init: 4, ...}`).
SOURCE_COLUMNS = ("init", "order", "augment", "split")
KNOWN_METRICS = ("accuracy", "ece", "nll", "brier")
RUN_KEY = ("backend", "dataset", "model", "arm", "smoothing", "seed", "repeat")
CELL = ("backend", "dataset", "model", "arm", "smoothing")
