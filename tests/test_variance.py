"""Variance components of factorial seed designs: a hand-worked case and statsmodels' MixedLM."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from ablate.analysis import variance
from ablate.errors import InputError


def test_hand_worked_two_by_two_with_repeats():
    # y[a, b, repeat]; cell means 2, 3, 6, 11, grand mean 5.5.
    y = np.array([[[1, 3], [2, 4]], [[5, 7], [10, 12]]], dtype=float)
    ms, residual = variance.mean_squares(y)
    # MS_A = 2*2*((2.5-5.5)^2 + (8.5-5.5)^2) = 72; MS_B = 4*((4-5.5)^2 + (7-5.5)^2) = 18;
    # interaction effects +-1, MS_AB = 2*4 = 8; within-cell deviations +-1, MS_e = 8/4 = 2.
    assert ms[(0,)] == pytest.approx((72.0, 1.0))
    assert ms[(1,)] == pytest.approx((18.0, 1.0))
    assert ms[(0, 1)] == pytest.approx((8.0, 1.0))
    assert residual == pytest.approx((2.0, 4.0))
    res = variance.variance_components(y, ["a", "b"], rng=np.random.default_rng(0))
    # var_A = (72 - 8) / 4 = 16, var_B = (18 - 8) / 4 = 2.5, var_AB = (8 - 2) / 2 = 3, residual 2.
    assert res.as_dict() == pytest.approx({"a": 16.0, "b": 2.5, "a:b": 3.0, "residual": 2.0})
    assert res.total == pytest.approx(23.5)
    shares = {c.source: c.share for c in res.components}
    assert shares["a"] == pytest.approx(16 / 23.5) and sum(shares.values()) == pytest.approx(1.0)
    for c in res.components:
        assert 0 <= c.ci_low <= c.ci_high and 0 <= c.share_low <= c.share_high <= 1


def test_one_run_per_cell_merges_the_top_interaction_with_the_residual():
    y = np.array([[1.0, 2.0], [5.0, 10.0]])[..., None]
    res = variance.variance_components(y, ["init", "order"], rng=np.random.default_rng(0))
    assert [c.source for c in res.components] == ["init", "order", "init:order + residual"]
    # MS_init = 2*((1.5-4.5)^2 + (7.5-4.5)^2) = 36, MS_order = 2*((3-4.5)^2 + (6-4.5)^2) = 9,
    # MS_io = (interaction effects +-1) 4; var_init = (36-4)/2 = 16, var_order = (9-4)/2 = 2.5.
    assert res.as_dict() == pytest.approx({"init": 16.0, "order": 2.5, "init:order + residual": 4.0})


def _mixedlm(frame, vc, formula="y ~ 1"):
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.MixedLM.from_formula(formula, groups="g", re_formula="0", vc_formula=vc,
                                      data=frame.assign(g=1)).fit(reml=True)
    return dict(zip(fit.model.exog_vc.names, fit.vcomp)), fit.scale


def test_two_factors_with_repeats_match_mixedlm():
    rng = np.random.default_rng(3)
    a, b, r = 6, 5, 2
    y = (rng.normal(0, 1.0, a)[:, None, None] + rng.normal(0, 0.7, b)[None, :, None]
         + rng.normal(0, 0.5, (a, b))[..., None] + rng.normal(0, 0.3, (a, b, r)))
    frame = pd.DataFrame([dict(init=i, order=o, y=y[i, o, k]) for i in range(a) for o in range(b) for k in range(r)])
    reml, scale = _mixedlm(frame, {"init": "0 + C(init)", "order": "0 + C(order)",
                                   "io": "0 + C(init):C(order)"})
    res = variance.variance_components(y, ["init", "order"], rng=np.random.default_rng(0)).as_dict()
    assert min(res.values()) > 0  # where every ANOVA estimate is positive, REML agrees
    assert res["init"] == pytest.approx(reml["init"], rel=2e-3)
    assert res["order"] == pytest.approx(reml["order"], rel=2e-3)
    assert res["init:order"] == pytest.approx(reml["io"], rel=2e-3)
    assert res["residual"] == pytest.approx(scale, rel=2e-3)


def test_three_factors_one_run_per_cell_match_mixedlm():
    rng = np.random.default_rng(11)
    sizes = (5, 4, 3)
    sd = {(0,): 1.0, (1,): 0.8, (2,): 0.9, (0, 1): 0.5, (0, 2): 0.45, (1, 2): 0.5}
    y = np.zeros(sizes)
    for axes, s in sd.items():
        shape = [sizes[i] if i in axes else 1 for i in range(3)]
        y = y + rng.normal(0, s, shape)
    y = (y + rng.normal(0, 0.3, sizes))[..., None]
    names = ("init", "order", "split")
    frame = pd.DataFrame([dict(zip(names, idx), y=y[idx][0]) for idx in itertools.product(*map(range, sizes))])
    vc = {"init": "0 + C(init)", "order": "0 + C(order)", "split": "0 + C(split)",
          "io": "0 + C(init):C(order)", "is": "0 + C(init):C(split)", "os": "0 + C(order):C(split)"}
    reml, scale = _mixedlm(frame, vc)
    res = variance.variance_components(y, names, rng=np.random.default_rng(0)).as_dict()
    assert min(res.values()) > 0
    for ours, theirs in (("init", "init"), ("order", "order"), ("split", "split"), ("init:order", "io"),
                         ("init:split", "is"), ("order:split", "os")):
        assert res[ours] == pytest.approx(reml[theirs], rel=5e-3), ours
    assert res["init:order:split + residual"] == pytest.approx(scale, rel=5e-3)


def test_intervals_cover_the_truth_in_a_simulation():
    """Generalized intervals of a main effect: coverage near nominal (95%) in a 2-factor design."""
    rng = np.random.default_rng(5)
    hits, sims = 0, 300
    for _ in range(sims):
        y = rng.normal(0, 1.0, (8, 1, 1)) + rng.normal(0, 0.5, (8, 6, 1))
        y = np.broadcast_to(y, (8, 6, 1)) + rng.normal(0, 0.4, (1, 6, 1))
        res = variance.variance_components(y, ["init", "order"], rng=rng, n_draws=2000)
        c = res.components[0]
        hits += c.ci_low <= 1.0 <= c.ci_high
    assert 0.88 <= hits / sims <= 0.995


def test_components_table_from_runs():
    rows = []
    rng = np.random.default_rng(0)
    init_fx, order_fx = rng.normal(0, 0.01, 3), rng.normal(0, 0.004, 2)
    for arm in ("none", "loss"):
        for i, o, s in itertools.product(range(3), range(2), range(2)):
            rows.append(dict(backend="torch", dataset="d", model="m", arm=arm, smoothing=0.0, seed=0,
                             init=i, order=o, augment=o, split=s, repeat=0, status="completed",
                             accuracy=0.9 + init_fx[i] + order_fx[o] + rng.normal(0, 0.002)))
    runs = pd.DataFrame(rows)
    table = variance.components_table(runs, ["accuracy"], rng=np.random.default_rng(0))
    assert tuple(table.columns) == variance.TABLE_COLUMNS
    assert set(table["arm"]) == {"none", "loss"}
    sources = list(table[table.arm == "none"]["source"])
    assert "augment" not in " ".join(sources)  # it follows order: aliased, not a factor
    assert sources[:3] == ["init", "order", "split"] and sources[-1] == "init:order:split + residual"
    assert table.groupby("arm")["share"].sum().to_numpy() == pytest.approx([1.0, 1.0])
    # A missing run leaves the cell unbalanced: no rows for it.
    assert variance.components_table(runs.iloc[1:], ["accuracy"], rng=np.random.default_rng(0))["arm"].tolist() \
        .count("none") == 0


def test_refusals():
    with pytest.raises(InputError, match="levels"):
        variance.variance_components(np.zeros((1, 3, 1)), ["a", "b"], rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="axis"):
        variance.variance_components(np.zeros((2, 3)), ["a", "b"], rng=np.random.default_rng(0))


def test_report_writes_variance_csv_table_and_figure(tmp_path):
    """report --runs on a factorial table: variance.csv, the report.md table, the figure, the html table."""
    from tests.helpers import run_cli

    rng = np.random.default_rng(1)
    init_fx, split_fx = np.array([-0.01, 0.0, 0.01]), np.array([-0.001, 0.001])
    rows = []
    for cell, (i, o, s) in enumerate(itertools.product(range(3), range(2), range(2))):
        shared = init_fx[i] + split_fx[s] + rng.normal(0, 0.002)
        for arm, shift in (("none", 0.0), ("loss", 0.002)):
            rows.append(dict(arm=arm, seed=cell, init=i, order=o, split=s,
                             accuracy=0.9 + shift + shared + rng.normal(0, 0.001),
                             ece=0.05 + rng.normal(0, 0.003)))
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "out"
    proc = run_cli("report", "--runs", path, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pd.read_csv(out / "variance.csv")
    assert {"arm", "metric", "source", "variance", "share", "ci_low", "ci_high"} <= set(table.columns)
    assert set(table["source"]) >= {"init", "order", "split", "init:order:split + residual"}
    init = table[(table.arm == "none") & (table.metric == "accuracy") & (table.source == "init")].iloc[0]
    assert init["share"] == table[(table.arm == "none") & (table.metric == "accuracy")]["share"].max()
    text = (out / "report.md").read_text()
    assert "## Where the spread comes from" in text and "| setting | arm | metric | total SD |" in text
    assert (out / "figures" / "variance_components.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert '<table class="variance">' in html
    comp = pd.read_csv(out / "comparisons.csv")
    assert comp["note"].str.contains("factorial implies").any()


def test_runs_table_pairs_on_source_columns_without_a_seed(tmp_path):
    from ablate.analysis.compare import compare_runs
    from ablate.analysis.table import load_runs_table
    from ablate.errors import InputError

    rng = np.random.default_rng(2)
    rows = []
    for i, o in itertools.product(range(3), range(3)):
        base = 0.9 + 0.01 * i + rng.normal(0, 0.002)
        rows += [dict(arm="a", init=i, order=o, accuracy=base + rng.normal(0, 0.001)),
                 dict(arm="b", init=i, order=o, accuracy=base + 0.001 + rng.normal(0, 0.001))]
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(path, index=False)  # any row order
    table = load_runs_table(path)
    assert sorted(table["seed"].unique()) == list(range(9))
    # Each seed is one (init, order) cell, the same for both arms.
    assert (table.groupby("seed")[["init", "order"]].nunique() == 1).all().all()
    comp = compare_runs(table, margins={"accuracy": 0.01})
    assert comp.table["n"].iloc[0] == 9
    assert set(variance.components_table(table.assign(status="completed"), ["accuracy"],
                                         rng=np.random.default_rng(0))["source"]) == {"init", "order",
                                                                                      "init:order + residual"}
    bad = pd.DataFrame(rows).assign(seed=0)
    bad.to_csv(path, index=False)
    with pytest.raises(InputError, match="seed"):
        load_runs_table(path)
    neg = pd.DataFrame(rows).assign(init=-1)
    neg.to_csv(path, index=False)
    with pytest.raises(InputError, match="source column `init`"):
        load_runs_table(path)


def test_mlflow_params_carry_the_sources():
    from ablate.export.mlflow import run_params

    params = run_params({"backend": "torch", "arm": "none", "seed": 3,
                         "sources": {"init": 1, "order": 0, "augment": 0, "split": 2},
                         "dataset": {"name": "digits", "bootstrap": False}})
    assert (params["init"], params["order"], params["augment"], params["split"]) == ("1", "0", "0", "2")
    assert "sources.init" not in params
