"""ablate.analysis.figures.power: the TOST power curve figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ablate.analysis import stats  # noqa: E402
from ablate.analysis.compare import compare_runs, power_curves  # noqa: E402
from ablate.analysis.figure_data import power_overview  # noqa: E402
from ablate.analysis.figures import power as power_figs  # noqa: E402
from ablate.analysis.figures.power import power_curve  # noqa: E402


def _runs(backends=("keras", "torch"), seeds=6) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for backend in backends:
        for s in range(seeds):
            base = 0.9 + rng.normal(0, 0.004)
            for arm, eps, gain in (("none", 0.0, 0.0), ("explicit", 0.1, 0.02), ("loss", 0.1, 0.02)):
                rows.append(dict(backend=backend, dataset="digits", model="mlp", arm=arm,
                                 smoothing=eps, seed=s, accuracy=base + gain + rng.normal(0, 0.002),
                                 ece=0.03 + rng.normal(0, 0.003)))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def comp():
    return compare_runs(_runs(), n_boot=200)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_power_curves_use_stats_tost_power(comp):
    curves = power_curves(comp, n_max=12)
    # explicit vs loss: 2 backends x 2 metrics, n = 2..12.
    assert curves.groupby(["label", "metric"]).ngroups == 4
    assert sorted(curves.n.unique()) == list(range(2, 13))
    row = curves.iloc[5]
    assert row.power == pytest.approx(stats.tost_power(int(row.n), row.sd, row.margin))
    everything = power_curves(comp, arms=None, n_max=5)
    assert everything.groupby(["label", "metric"]).ngroups == len(comp.table)
    assert set(everything.design) == {"paired", "two-sample"}


def test_power_curve_draws_one_line_per_group_and_metric(comp):
    fig = power_curve(power_curves(comp, n_max=12), alpha=comp.alpha)
    ax = fig.axes[0]
    labelled = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(labelled) == 4
    assert all(" · " in line.get_label() for line in labelled)
    assert ax.get_ylim() == (0.0, 1.02)
    assert "seeds" in ax.get_xlabel()


def test_power_curve_on_given_axes_and_metric_filter(comp):
    fig, ax = plt.subplots()
    out = power_curve(power_curves(comp, n_max=8), alpha=comp.alpha, metrics=["accuracy"], ax=ax)
    assert out is fig
    labelled = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(labelled) == 2 and all(line.get_label().endswith("accuracy") for line in labelled)


def test_power_curve_without_estimable_rows_still_draws(comp):
    tiny = compare_runs(_runs(backends=("torch",), seeds=1), n_boot=200)
    fig = power_curve(power_curves(tiny), alpha=tiny.alpha)
    assert fig.axes[0].texts


def test_style_does_not_leak(comp):
    before = dict(plt.rcParams)
    power_curve(power_curves(comp, n_max=6), alpha=comp.alpha)
    assert dict(plt.rcParams) == before


def test_power_overview_is_computed_in_analysis_and_only_drawn(comp):
    overview = power_overview(comp, metric="accuracy", n_max=10)
    refs = set(comp.references)
    assert refs == {"none"} and overview.references == ("none",)
    assert all((a in refs) == (b in refs) for a, b in overview.main_pairs)
    assert set(overview.main["metric"]) == set(overview.links["metric"]) == {"accuracy"}
    assert overview.main["n"].max() == 10
    # The links panel holds every reference-vs-other row of power_curves, and nothing else.
    everything = power_curves(comp, arms=None, n_max=10)
    links = everything[everything["label"].str.contains(" · none vs ")
                       & (everything["metric"] == "accuracy")]
    assert len(overview.links) == len(links) and len(links)
    fig = power_figs.power_overview(overview)
    drawn = [line for line in fig.axes[1].get_lines() if not line.get_label().startswith("_")]
    assert len(drawn) == overview.links.groupby(["label", "metric"]).ngroups
