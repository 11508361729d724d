"""ablate.analysis.figure_data: what the figures draw, computed (and seeded) in analysis."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from ablate.analysis.figure_data import BAND_COLUMNS, arm_labels, seed_points, training_bands

FIGURES = Path(__file__).resolve().parents[1] / "ablate" / "analysis" / "figures"


def _runs():
    return pd.DataFrame({"arm": ["none", "loss", "loss", "mix"], "smoothing": [0.0, 0.1, 0.2, 0.0],
                         "backend": ["torch"] * 4, "accuracy": [0.9, 0.91, 0.92, 0.93]})


def test_seed_points_jitter_comes_from_the_given_generator():
    a = seed_points(_runs(), np.random.default_rng(5))
    b = seed_points(_runs(), np.random.default_rng(5))
    assert a["jitter"].tolist() == b["jitter"].tolist()
    assert a["jitter"].tolist() == np.random.default_rng(5).uniform(-1, 1, 4).tolist()
    assert a["jitter"].between(-1, 1).all()
    assert a["arm_label"].tolist() == ["none", "loss 0.1", "loss 0.2", "mix"]
    with pytest.raises(TypeError, match="np.random.Generator"):
        seed_points(_runs(), 5)


def test_arm_labels_keep_names_when_one_eps():
    frame = pd.DataFrame({"arm": ["none", "loss"], "smoothing": [0.0, 0.1]})
    assert arm_labels(frame).tolist() == ["none", "loss"]


def test_training_bands_are_mean_and_t_interval_over_seeds():
    values = {0: 1.0, 1: 1.4, 2: 0.9}
    rows = [dict(backend="torch", dataset="digits", model="mlp", arm="none", smoothing=0.0, seed=s, epoch=1,
                 split="val", quantity="nll", value=v) for s, v in values.items()]
    rows.append(dict(rows[0], quantity="lr", value=0.1))  # not a drawn quantity
    rows.append(dict(rows[0], seed=9, value=float("nan")))  # a missing value is left out, not averaged
    bands = training_bands(pd.DataFrame(rows))
    assert list(bands.columns) == BAND_COLUMNS and len(bands) == 1
    row = bands.iloc[0]
    x = np.array(list(values.values()))
    half = st.t.ppf(0.975, 2) * x.std(ddof=1) / np.sqrt(3)
    assert row["n"] == 3 and row["mean"] == pytest.approx(x.mean())
    assert (row["low"], row["high"]) == pytest.approx((x.mean() - half, x.mean() + half))


def test_the_figures_package_draws_no_random_numbers_and_computes_no_statistics():
    """No generator, no seaborn estimator or bootstrap, no call into the statistics."""
    for path in FIGURES.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(tree)
                 if isinstance(n, (ast.Attribute, ast.Name))}
        banned = {"random", "default_rng", "stripplot", "power_curves", "tost_power_curve", "t_interval",
                  "lineplot", "relplot"}
        assert not names & banned, (path.name, names & banned)
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            for kw in call.keywords:
                if kw.arg == "errorbar":
                    assert isinstance(kw.value, ast.Constant) and kw.value.value is None, path.name
